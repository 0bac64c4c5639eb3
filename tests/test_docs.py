"""The front door and the lab book: the README stays short, every relative link resolves,
and the commands the README shows name parameters and experiments that exist."""
import glob
import os
import re

import cnn_params
from conftest import REPO

PAGES = ["README.md", "results.md", "pretrained/README.md", *sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))]


def test_the_readme_is_a_front_door_not_a_log():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    assert len(text) < 25_000, len(text)
    for page in ("docs/reports.md", "docs/accuracy.md", "docs/reliability.md", "docs/speed.md", "docs/gpu.md"):
        assert f"]({page})" in text, page


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path = target.split("#")[0]
            if path and not os.path.exists(os.path.join(REPO, os.path.dirname(page), path)):
                broken.append(f"{page}: {target}")
    assert not broken, broken
    assert len(PAGES) >= 10


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
