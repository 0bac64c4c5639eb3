"""Scoring without TensorFlow: the checkout with TensorFlow, Keras, mtcnn and Matplotlib made
unimportable, and the light install (`pip install .`) in a fresh virtual environment, used from
another folder, then `pip install ".[train]"` over it."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

from conftest import REPO, write_video
from test_faces import _group_photo

# Run before the code under test: TensorFlow, Keras, mtcnn and Matplotlib cannot be imported, as after `pip install .`.
BLOCK = """
import sys, importlib.abc
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "mtcnn", "matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Blocked())
sys.path.insert(0, sys.argv.pop(1))
"""


def _blocked(code, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", BLOCK + code, REPO, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_photos_videos_and_the_api_are_scored_without_tensorflow(external_faces, tmp_path):
    places = _group_photo(external_faces, tmp_path / "group.jpg")
    write_video(tmp_path / "clip.mp4", 10, [os.path.join(external_faces, "happy", "feliz.jpg"),
                                             os.path.join(external_faces, "surprise", "surpreso.jpg")])
    code = """
import runpy
sys.argv = ["cnn_eval.py", "group.jpg", "clip.mp4", "--fps=5"]
runpy.run_path(sys.path[0] + "/cnn_eval.py", run_name="__main__")
import cnn_faces
faces = cnn_faces.detect_emotions("group.jpg")
frames = list(cnn_faces.video_emotions("clip.mp4", fps=5))
print("API", len(faces), len(frames), sum(len(f) for _, f in frames))
print("IMPORTED", sorted(m for m in ("tensorflow", "keras", "mtcnn", "matplotlib") if m in sys.modules))
"""
    result = _blocked(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IMPORTED []" in result.stdout
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model"].endswith("fer2013_int8.tflite") and report["detector"] == "yunet"
    photo, video = report["predictions"]
    assert [f["predicted"] for f in sorted(photo["faces"], key=lambda f: f["box"][0])] == ["happy", "surprise", "sad"]
    assert len(photo["faces"]) == len(places)
    assert video["n_frames"] == 10 and video["n_faces"] == 10          # 2 s at 5 frames a second, a face each
    assert os.path.isfile(tmp_path / video["timeline"]) and os.path.isfile(tmp_path / "annotated" / "group.jpg")
    assert re.search(r"^API 3 10 10$", result.stdout, re.M), result.stdout


def test_what_needs_tensorflow_says_what_to_install_in_one_line(external_faces, tmp_path):
    shutil.copy(os.path.join(external_faces, "happy", "feliz.jpg"), tmp_path / "face.jpg")
    for options, words in ((["--model=shipped"], 'fer2013.keras: a .keras model needs TensorFlow and Keras'),
                           (["--detector=mtcnn"], "the mtcnn detector needs TensorFlow and the mtcnn package")):
        result = _blocked("import runpy; sys.argv = ['cnn_eval.py', 'face.jpg', '--detect_faces=True', *sys.argv[1:]]; "
                          "runpy.run_path(sys.path[0] + '/cnn_eval.py', run_name='__main__')", *options, cwd=tmp_path)
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode != 0 and words in last and 'pip install ".[train]"' in last, result.stderr[-1500:]
        assert "Traceback" not in result.stderr


def test_a_missing_or_corrupt_detector_file_is_one_line_naming_it(external_faces, tmp_path):
    shutil.copy(os.path.join(external_faces, "happy", "feliz.jpg"), tmp_path / "face.jpg")
    (tmp_path / "junk.onnx").write_bytes(b"not a network" * 100)
    for model_file, words in ((tmp_path / "gone.onnx", "the yunet detector's model file is missing"),
                              (tmp_path / "junk.onnx", "not a face detector OpenCV can load")):
        code = (f"import runpy, cnn_faces; cnn_faces.YUNET = {str(model_file)!r}; "
                "sys.argv = ['cnn_eval.py', 'face.jpg', '--detect_faces=True']; "
                "runpy.run_path(sys.path[0] + '/cnn_eval.py', run_name='__main__')")
        result = _blocked(code, cwd=tmp_path)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {model_file}: {words}")


def _light_files(into):
    """What `pip install .` packs, copied out of the checkout so that the build writes nothing into it."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), into)
    for name in os.listdir(REPO):
        if name.startswith("cnn_") and name.endswith(".py"):
            shutil.copy(os.path.join(REPO, name), into)
    shutil.copytree(os.path.join(REPO, "pretrained"), os.path.join(into, "pretrained"),
                    ignore=shutil.ignore_patterns("__pycache__"))


def _megabytes_on_disk(folder):
    """What `du -s` says of a folder, in MB (10^6 bytes): the blocks its files take."""
    return sum(os.lstat(os.path.join(root, name)).st_blocks * 512 for root, dirs, files in os.walk(folder)
               for name in files + dirs) / 1e6


def test_pip_install_gives_the_scorer_alone_that_works_from_any_folder(external_faces, tmp_path):
    """`pip install .` in a fresh virtual environment: no TensorFlow, no Matplotlib, every shipped
    model inside, site-packages under 400 MB, and `python -m cnn_eval PHOTO`, `import cnn_faces` and
    `python -m cnn_run` (one line: what to install) from a folder that is not the checkout; then
    `pip install ".[train]"` brings training back: `python -m cnn_run` trains the demo set there."""
    source, venv, work = tmp_path / "source", tmp_path / "venv", tmp_path / "work"
    source.mkdir(), work.mkdir()
    _light_files(source)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", str(source)], capture_output=True, text=True,
                               timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"fer-toolkit", "ai-edge-litert", "opencv-python-headless", "numpy", "pillow"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "mtcnn", "jax", "matplotlib"}, names
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    assert _megabytes_on_disk(site_packages) < 400, _megabytes_on_disk(site_packages)

    _group_photo(external_faces, work / "group.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = lambda *args: subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    scored = run("-m", "cnn_eval", "group.jpg")
    assert scored.returncode == 0, scored.stderr[-2000:]
    (entry,) = json.loads((work / "eval.json").read_text())["predictions"]
    assert len(entry["faces"]) == 3
    api = run("-c", "import cnn_faces, sys; faces = cnn_faces.detect_emotions('group.jpg'); "
                    "print(len(faces), cnn_faces.__file__, cnn_faces.FAST, 'tensorflow' in sys.modules)")
    count, module, model, tensorflow = api.stdout.split()
    assert api.returncode == 0 and count == "3" and tensorflow == "False", api.stderr[-2000:]
    assert str(venv) in module and str(venv) in model and not module.startswith(REPO)
    for args, words in ((["-m", "cnn_run", "--epochs=1"], "error: training needs keras, tensorflow and matplotlib"),
                        (["-m", "cnn_eval", "--model=shipped", "group.jpg"], "a .keras model needs TensorFlow")):
        refused = run(*args)
        last = refused.stderr.strip().splitlines()[-1]
        assert refused.returncode != 0 and words in last and 'pip install ".[train]"' in last, refused.stderr[-1500:]

    trainer = subprocess.run([python, "-m", "pip", "install", "-q", f"{source}[train]"], capture_output=True,
                             text=True, timeout=900)
    assert trainer.returncode == 0, trainer.stderr[-2000:]
    trained = run("-m", "cnn_run", "--epochs=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "training on the built-in demo set" in trained.stdout, trained.stdout[-1500:]
    metrics = json.loads((work / "log" / "metrics.json").read_text())
    assert metrics["test"]["n"] > 0 and (work / "log" / "model.keras").is_file() and (work / "log" / "loss.png").is_file()


def test_the_light_install_and_its_train_extra_are_what_requirements_txt_installs():
    """requirements.txt (the checkout's install) = pyproject.toml's dependencies + the train extra."""
    import tomllib
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    name = lambda spec: re.split(r"[<>=\[ ;]", spec.strip(), maxsplit=1)[0].lower()
    with open(os.path.join(REPO, "requirements.txt")) as f:
        required = {name(line.split("#")[0]) for line in f if line.split("#")[0].strip()}
    light = {name(d) for d in project["dependencies"]}
    assert "tensorflow" not in light and "keras" not in light
    assert light | {name(d) for d in project["optional-dependencies"]["train"]} == required
    modules = {f[:-3] for f in os.listdir(REPO) if f.startswith("cnn_") and f.endswith(".py")}
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        assert set(tomllib.load(f)["tool"]["setuptools"]["py-modules"]) == modules   # every module is installed


def test_the_api_gives_one_threads_answers_from_several_threads(external_faces):
    """Four threads calling detect_emotions at once, for each model kind, get exactly what one thread gets."""
    from concurrent.futures import ThreadPoolExecutor
    import cnn_faces
    pictures = [np.asarray(cnn_faces.read_picture(os.path.join(external_faces, c, f)))
                for c in sorted(os.listdir(external_faces)) for f in os.listdir(os.path.join(external_faces, c))]
    for model in ("fast", "fastest", "shipped"):
        alone = [cnn_faces.detect_emotions(p, model=model) for p in pictures]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda k: cnn_faces.detect_emotions(pictures[k % 8], model=model), range(48)))
        for k, answer in enumerate(together):
            assert answer == alone[k % 8], (model, k)
