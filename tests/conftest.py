"""Shared fixtures: the repo's scripts run as a user types them, on real or generated data."""
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# FER-2013 (fer2013/fer2013.tar.gz) and the 8-class report's photos (external_faces/): never in the repository.
SHARED_DATA = os.environ.get("FER_TEST_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
sys.path.insert(0, REPO)


def missing(what):
    """Skip a test whose shared data is not here; under CI (CI=true, as .ci/run sets it) fail it instead:
    a green CI must have run every test, not skipped the ones on real faces."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{what} (CI=true: ../shared must sit beside the repo)")
    pytest.skip(what)


def require(module):
    """Import a module a test needs, as pytest.importorskip does, except that under CI (CI=true) a
    missing one fails the test: requirements-test.txt installs it there."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"{module} is not installed")


def run_script(script, *args, cwd=REPO, timeout=900):
    """Run `python <script> args...` the way a user does; returns the finished process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def signal_after_epochs(args, cwd, signum, epochs=2, history=None):
    """Start `python cnn_run.py args` as a user does, send it signum once `epochs` rows of its
    history.csv are written (history: that file, by default out_dir's in cwd), and return the
    finished process with its stdout and stderr."""
    import subprocess
    import time
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    run = subprocess.Popen([sys.executable, os.path.join(REPO, "cnn_run.py"), *args], cwd=cwd, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = history or os.path.join(cwd, "history.csv")
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        if os.path.exists(history) and len(open(history).read().splitlines()) >= epochs + 1:
            break
        time.sleep(0.05)
    run.send_signal(signum)
    out, err = run.communicate(timeout=120)
    return run, out, err


def write_video(path, frames_per_photo, photos, fps=10, size=320, fourcc="mp4v"):
    """A video of the photos one after another, each centred on a grey square for frames_per_photo frames."""
    import cv2
    import numpy as np
    from PIL import Image
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size, size))
    for photo in photos:
        picture = Image.new("RGB", (size, size), (200, 200, 190))
        face = Image.open(photo).convert("RGB")
        face.thumbnail((size - 40, size - 40))
        picture.paste(face, ((size - face.width) // 2, (size - face.height) // 2))
        frame = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)
        for _ in range(frames_per_photo):
            writer.write(frame)
    writer.release()


@pytest.fixture(scope="session")
def fer2013_dir(tmp_path_factory):
    """The real FER-2013 from ../shared, extracted once per test session (never committed)."""
    archive = os.path.join(SHARED_DATA, "fer2013", "fer2013.tar.gz")
    if not os.path.exists(archive):
        missing(f"{archive} not found")
    target = tmp_path_factory.mktemp("fer")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return str(target / "fer2013")


@pytest.fixture(scope="session")
def external_faces():
    folder = os.path.join(SHARED_DATA, "external_faces")
    if not os.path.isdir(folder):
        missing(f"{folder} not found")
    return folder


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    import cnn_demo
    return cnn_demo.make_demo_set(str(tmp_path_factory.mktemp("demo") / "demo"))


@pytest.fixture(scope="session")
def qider_dir(tmp_path_factory):
    """The stand-in for the 8-class report's QIDER: Table 1's 4,521 training faces and a val/ of 1,346."""
    import cnn_demo
    return cnn_demo.make_qider_set(str(tmp_path_factory.mktemp("qider") / "qider"))


def copy_slice(fer2013_dir, target, per_class):
    """The first files of each class of FER-2013: per_class = {"train": n, "test": m} (copied files)."""
    for split, n in per_class.items():
        for name in sorted(os.listdir(os.path.join(fer2013_dir, split))):
            src = os.path.join(fer2013_dir, split, name)
            os.makedirs(target / split / name)
            for f in sorted(os.listdir(src))[:n]:
                shutil.copy(os.path.join(src, f), target / split / name / f)
    return str(target)


@pytest.fixture(scope="session")
def fer_slice(fer2013_dir, tmp_path_factory):
    """A small real slice of FER-2013: 60 train and 15 test images per class."""
    return copy_slice(fer2013_dir, tmp_path_factory.mktemp("fer_slice"), {"train": 60, "test": 15})


@pytest.fixture(scope="session")
def fer_tiny(fer2013_dir, tmp_path_factory):
    """A tiny real slice, 16 train and 4 test images per class: two batches of 64 for the
    experiments whose networks cost seconds per batch on a CPU (VGG16 at 96x96, emulated bfloat16)."""
    return copy_slice(fer2013_dir, tmp_path_factory.mktemp("fer_tiny"), {"train": 16, "test": 4})
