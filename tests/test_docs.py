"""The front door and the lab book: the README stays short, every relative link resolves,
and the commands the README shows name parameters and experiments that exist."""
import glob
import os
import re

import cnn_params
from conftest import REPO

PAGES = ["README.md", "results.md", "pretrained/README.md", *sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))]


def anchors(path):
    """The #anchors of a Markdown page's headings, as GitHub makes them: lower case, punctuation
    dropped, spaces made dashes, a repeated heading numbered."""
    seen, found = {}, set()
    with open(path) as f:
        for line in f:
            if re.match(r"#{1,6} ", line):
                slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
                seen[slug] = seen.get(slug, 0) + 1
    return found


def test_the_readme_is_a_front_door_not_a_log():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    assert len(text) < 25_000, len(text)
    for page in ("docs/install.md", "docs/train.md", "docs/reports.md", "docs/scoring.md", "docs/api.md",
                 "docs/export.md", "docs/distribution.md", "docs/options.md", "docs/troubleshooting.md"):
        assert f"]({page})" in text, page


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            where = os.path.join(REPO, os.path.dirname(page), path) if path else os.path.join(REPO, page)
            if not os.path.exists(where):
                broken.append(f"{page}: {target}")
            elif anchor and where.endswith(".md") and anchor not in anchors(where):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, broken
    assert len(PAGES) >= 20


def test_the_readmes_commands_name_known_parameters_and_experiments():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    known = cnn_params.get_params([])
    commands = [line for line in text.splitlines() if line.startswith("python cnn_run.py")]
    assert len(commands) >= 4
    for line in commands:
        for name, value in re.findall(r"--(\w+)=(\S+)", line.split("#")[0]):
            assert name in known, line
            if name == "experiment":
                assert value in cnn_params.EXPERIMENTS, line
    for name in re.findall(r"^\| `(\w+)`", text, re.M):       # the experiments table's first column
        assert name in cnn_params.EXPERIMENTS or name in cnn_params.PRESETS, name


def test_every_option_is_in_the_option_reference_with_its_default():
    """docs/options.md lists every parameter of cnn_params.py and every option of cnn_eval.py with
    the default each has now, so a new option or a changed default without its line fails here."""
    import cnn_eval
    with open(os.path.join(REPO, "docs", "options.md")) as f:
        text = f.read()
    rows = dict(re.findall(r"^\| `--(\w+)` \| `([^`]*)` \|", text, re.M))
    for name, default in cnn_params.get_params([]).items():
        assert name in rows, name
        written = rows[name].replace("_", "") if isinstance(default, (int, float)) else rows[name].strip('"')
        assert str(default) == written or repr(default) == rows[name] or float(written) == default, (name, rows[name])
    # Each row says what cnn_params.py's comment says (its first line), so the two cannot drift apart.
    with open(os.path.join(REPO, "cnn_params.py")) as f:
        comments = dict(re.findall(r"^(\w+) = [^#\n]*# ?(.*)$", f.read(), re.M))
    for name, comment in comments.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `--{name}` |"))
        assert comment.strip().replace("|", "\\|") in row, (name, comment)
    for name, default in cnn_eval.OPTIONS.items():
        shown = default or '""'
        assert f"| `--{name}` | `{shown}` |" in text, name


def test_the_guides_commands_name_options_that_exist():
    import cnn_eval
    known = {"cnn_run.py": set(cnn_params.get_params([])), "cnn_eval.py": set(cnn_eval.OPTIONS),
             "cnn_export.py": {"model", "format", "out"}}
    checked = 0
    for page in PAGES:
        if page.startswith("docs/lab/"):
            continue                                   # the lab book keeps commands as they were run
        with open(os.path.join(REPO, page)) as f:
            for line in f:
                script = re.match(r"\s*(?:KERAS_BACKEND=\w+ )?python (cnn_\w+\.py)", line)
                if script and script.group(1) in known:
                    for name in re.findall(r"--(\w+)=", line.split("#")[0]):
                        assert name in known[script.group(1)], (page, line)
                    checked += 1
    assert checked >= 40, checked


def test_the_readmes_first_scoring_command_gives_what_the_readme_shows(tmp_path):
    """`python cnn_eval.py samples/astronaut.png`, as the README shows it: the same row, from a checkout."""
    import shutil
    from conftest import run_script
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    (shown,) = re.findall(r"^samples/astronaut\.png .*$", text, re.M)
    shutil.copytree(os.path.join(REPO, "samples"), tmp_path / "samples")
    result = run_script("cnn_eval.py", "samples/astronaut.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("samples/astronaut.png")]
    assert row.split() == shown.split()
