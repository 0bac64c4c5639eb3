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


# A measured speed, quoted in prose: the number (with a decimal point: "15 frames a second" is a
# clip's setting, not a measurement) and the unit that says what it measures.
SPEEDS = {"ms a face": r"(\d+\.\d+) ms a face", "s a photo": r"(\d+\.\d+) s a photo",
          "frames a second": r"(\d+\.\d+) frames a second"}


def table_figures(unit):
    """Every number that stands alone in a cell (bold or not, a bracket after it allowed) of a table,
    on any page, whose header or the lines just above it (its caption) name the unit: the sources
    that prose may quote."""
    figures = set()
    for page in PAGES:
        header, above = None, []
        with open(os.path.join(REPO, page)) as f:
            for line in f:
                if not line.startswith("|"):
                    header, above = None, (above + [line])[-4:]
                    continue
                if header is None:
                    header = " ".join(above) + line
                    continue
                if unit in header.lower():
                    for cell in line.strip().strip("|").split("|"):
                        found = re.fullmatch(r"\s*\**(\d+(?:\.\d+)?)\**( \(.*\))?\s*", cell)
                        if found:
                            figures.add(found.group(1))
    return figures


def test_every_speed_quoted_in_prose_is_a_figure_of_a_table():
    """One source for every figure: a speed that the README or a guide page says in words ("6.08 ms a
    face") is a cell of a table that measures it (docs/speed.md, docs/scoring.md, the lab book), with
    its command, date and machine beside that table; a figure rounded or remembered is caught."""
    unsourced = []
    for unit, pattern in SPEEDS.items():
        sources = table_figures(unit)
        for page in ["README.md", "pretrained/README.md", *(p for p in PAGES if p.startswith("docs/") and "/lab/" not in p)]:
            with open(os.path.join(REPO, page)) as f:
                for number, line in enumerate(f, 1):
                    if line.startswith("|"):
                        continue
                    unsourced += [f"{page}:{number}: {m.group(0)}" for m in re.finditer(pattern, line)
                                  if m.group(1) not in sources]
    assert not unsourced, unsourced
    assert {"6.08", "1.26"} <= table_figures("ms a face")          # the tables themselves were read


def test_every_percentage_quoted_in_the_guide_is_a_figure_of_a_table():
    """The same for accuracies and shares (68.96 %, 90.47 %): a figure with a decimal point that the
    README or a guide page quotes in prose is in a table of the guide, the lab book or results.md.
    (The model card, pretrained/README.md, is a source of its own: its figures sit beside its commands.)"""
    sources = set()
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            for line in f:
                if line.startswith("|"):
                    sources |= set(re.findall(r"(\d+\.\d+) ?%", line)) | set(re.findall(r"\| \**(\d+\.\d+)\** ", line))
    unsourced = []
    for page in ["README.md", *(p for p in PAGES if p.startswith("docs/") and "/lab/" not in p)]:
        with open(os.path.join(REPO, page)) as f:
            for number, line in enumerate(f, 1):
                if not line.startswith("|"):
                    unsourced += [f"{page}:{number}: {m.group(0)}" for m in re.finditer(r"(\d+\.\d+) %", line)
                                  if m.group(1) not in sources]
    assert not unsourced, unsourced
    assert {"68.96", "90.47", "65.28"} <= sources


def test_no_page_speaks_our_own_words():
    """Words a stranger would not understand: the shipped model is "the shipped model", never "the
    box"; machines by what they are, never "the project's"; no issue numbers; no paths outside the repository."""
    said = []
    for page in PAGES + ["CHANGELOG.md", "samples/README.md", "pretrained/yunet/README.md"]:
        with open(os.path.join(REPO, page)) as f:
            for number, line in enumerate(f, 1):
                for words in ("model in the box", "issue #", "../shared", "FILES_AT", "project's"):
                    if words in line:
                        said.append(f"{page}:{number}: {words}")
                if re.search(r"\b[Tt]he box\b(?! (is|in|of|around)\b)", line) and "face" not in line:
                    said.append(f"{page}:{number}: the box")
    assert not said, said


def test_every_table_has_its_header_row():
    """A Markdown table renders only with a |---| line under its first row: without it the README's
    results table showed as plain text."""
    headless = []
    for page in PAGES + ["CHANGELOG.md", "samples/README.md"]:
        with open(os.path.join(REPO, page)) as f:
            lines = f.read().split("\n")
        in_code = False
        for k, line in enumerate(lines):
            in_code ^= line.startswith("```")
            starts = line.startswith("|") and (k == 0 or not lines[k - 1].startswith("|"))
            if starts and not in_code and not re.match(r"\|\s*:?-{3,}", lines[k + 1] if k + 1 < len(lines) else ""):
                headless.append(f"{page}:{k + 1}")
    assert not headless, headless
