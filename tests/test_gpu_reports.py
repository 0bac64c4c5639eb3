"""bench/gpu_reports.sh, the reports' long runs on a GPU machine in one command, run here as it runs
there (Keras on JAX, no GPU needed to check it): FER-2013 unpacked from .gpu/ (here the demo set in
its place), one run per argument, all at once, each run's folder sent back as one archive without its
model, and a run that failed said in the exit status, its log sent back too."""
import json
import os
import shutil
import subprocess
import sys
import tarfile

from conftest import REPO


def test_each_argument_is_one_run_and_comes_back_as_one_archive(demo_dir, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".git", ".venv", ".gpu", "data", "runs", "log",
                                                              "tests", "__pycache__", "*.pyc"))
    (repo / ".gpu").mkdir()
    with tarfile.open(repo / ".gpu" / "fer2013.tar.gz", "w:gz") as tar:
        tar.add(demo_dir, arcname="fer2013")
    out = tmp_path / "out"
    out.mkdir()
    # python3 in the script is this Python, which has Keras, so no wheel is installed.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(["bash", "bench/gpu_reports.sh", "run", str(out), "dense --epochs=2", "dense --no_such_knob=1"],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 1, result.stdout + result.stderr          # the second run failed
    assert sorted(os.listdir(out)) == ["dense_epochs_2.tar.gz", "dense_no_such_knob_1.tar.gz"]
    with tarfile.open(out / "dense_epochs_2.tar.gz") as tar:
        names = tar.getnames()
        metrics = json.load(tar.extractfile("dense_epochs_2/metrics.json"))
        history = tar.extractfile("dense_epochs_2/history.csv").read().decode().splitlines()
    assert metrics["experiment"] == "dense" and metrics["epochs_run"] == 2 and len(history) == 3
    assert metrics["machine"].startswith("jax on ")                       # Keras on JAX, as on the GPU machine
    assert metrics["test"]["n"] == 240                                    # the demo set's test/, unpacked from .gpu/
    assert "dense_epochs_2.log" in names and not any(n.endswith(("model.keras", "backup")) for n in names)
    with tarfile.open(out / "dense_no_such_knob_1.tar.gz") as tar:
        log = tar.extractfile("dense_no_such_knob_1.log").read().decode()
    assert "unknown parameter --no_such_knob" in log
