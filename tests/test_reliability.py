"""Nothing silently lost and no traceback: nested class folders, one run per out_dir,
SIGTERM, the wrong kind of path, and a full disk while saving."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import cnn_callbacks
import cnn_model
import cnn_storage
import cnn_run
from conftest import REPO, run_script, signal_after_epochs


def _small_set(folder, per_class=12):
    """Two classes of generated faces: dark and bright, easy and fast to learn."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 60), ("bright", 190)):
        os.makedirs(folder / "train" / name)
        for i in range(per_class):
            Image.fromarray(rng.integers(level - 40, level + 40, (48, 48)).astype(np.uint8)).save(
                folder / "train" / name / f"{i}.png")
    return folder


def test_faces_in_subfolders_of_a_class_folder_are_read_and_hidden_ones_left_out_with_a_word(tmp_path):
    data = _small_set(tmp_path / "data")
    session = data / "train" / "bright" / "session1"
    session.mkdir()
    for i in range(10):                                        # arranged by session, as users do
        shutil.copy(data / "train" / "bright" / f"{i}.png", session / f"s{i}.png")
    (data / "train" / "bright" / ".git").mkdir()
    shutil.copy(data / "train" / "bright" / "0.png", data / "train" / "bright" / ".git" / "x.png")
    (data / "train" / "dark" / ".DS_Store").write_bytes(b"\0\1")
    result = run_script("cnn_run.py", f"--data_dir={data}", f"--out_dir={tmp_path / 'log'}", "--epochs=1",
                        "--preset=dense", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train: using 34 of 34 files (0 skipped)" in result.stdout
    assert f"note: {data / 'train'}: 2 hidden files or folders (a name starting with '.') left out" in result.stdout
    splits = json.loads((tmp_path / "log" / "splits.json").read_text())
    assert sum("/session1/" in f for f in splits["train"] + splits["val"]) == 10


def test_a_second_run_on_a_busy_out_dir_stops_at_once_and_a_dead_runs_lock_is_taken_over(tmp_path):
    data, out = _small_set(tmp_path / "data"), tmp_path / "log"
    args = [f"--data_dir={data}", f"--out_dir={out}", "--epochs=1", "--preset=dense"]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        out.mkdir()
        (out / "run.lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                  "started": "2026-12-02 08:00:00"}))
        busy = run_script("cnn_run.py", *args, cwd=tmp_path)
        assert busy.returncode != 0 and "Traceback" not in busy.stderr
        assert busy.stderr.strip().splitlines()[-1] == (
            f"error: {out} is in use by the run of pid {holder.pid}, started 2026-12-02 08:00:00, still running; "
            "wait for it to end, or give another --out_dir")
        assert sorted(os.listdir(out)) == ["run.lock"]                    # nothing of the holder's touched
    finally:
        holder.kill()
        holder.wait()
    taken = run_script("cnn_run.py", *args, cwd=tmp_path)                 # the holder is gone now
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert f"note: {out / 'run.lock'}: left by pid {holder.pid} (started 2026-12-02 08:00:00), which is no longer " \
           "running; taking it over" in taken.stdout
    assert (out / "metrics.json").exists() and not (out / "run.lock").exists()   # released when the run ends


def test_sigterm_stops_like_ctrl_c_keeps_the_backup_and_says_how_to_resume(demo_dir, tmp_path):
    args = [f"--data_dir={demo_dir}", f"--out_dir={tmp_path}", "--epochs=40", "--augment_dataset=False"]
    run, out, err = signal_after_epochs(args, tmp_path, signal.SIGTERM)
    assert run.returncode not in (0, -signal.SIGTERM, 143), run.returncode     # not killed by it: stopped
    assert "Traceback" not in err
    assert "stopped by SIGTERM: the last finished epoch is saved in" in err and "run the same command again" in err
    done = cnn_model.finished_epochs(str(tmp_path))
    assert done >= 2 and (tmp_path / "model.keras").exists()
    assert not (tmp_path / "run.lock").exists()


def test_sigterm_and_ctrl_c_are_told_apart_by_the_callback():
    for sent in (signal.SIGINT, signal.SIGTERM):
        stop = cnn_callbacks.CtrlC()
        previous = {s: signal.signal(s, stop.press) for s in stop.SIGNALS}
        try:
            signal.raise_signal(sent)
            with pytest.raises(KeyboardInterrupt, match=signal.Signals(sent).name):
                stop.on_train_batch_end(0)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@pytest.mark.parametrize("kind", ["file_as_data_dir", "folder_as_csv", "folder_as_model", "file_as_images"])
def test_the_wrong_kind_of_path_is_named_as_such(kind, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "faces.csv").mkdir()
    (tmp_path / "models").mkdir()
    script, args, words = {
        "file_as_data_dir": ("cnn_run.py", [f"--data_dir={tmp_path / 'notes.txt'}"], "a file where a folder is expected"),
        "folder_as_csv": ("cnn_run.py", [f"--data_dir={tmp_path / 'faces.csv'}"], "a folder where a file is expected"),
        "folder_as_model": ("cnn_eval.py", [f"--model={tmp_path / 'models'}"], "a folder where a .keras model file is expected"),
        "file_as_images": ("cnn_eval.py", ["--model=" + os.path.join(REPO, "pretrained", "fer2013.keras"),
                                           f"--images={tmp_path / 'notes.txt'}"], "a file where a folder is expected"),
    }[kind]
    result = run_script(script, *args, f"--out_dir={tmp_path / 'log'}" if script == "cnn_run.py" else "--out=x.json",
                        cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and words in last, last


def test_a_full_disk_while_saving_keeps_the_last_epochs_files_and_stops_in_one_line(tmp_path, monkeypatch, capsys):
    data, out = _small_set(tmp_path / "data"), tmp_path / "log"
    args = [f"--data_dir={data}", f"--out_dir={out}", "--preset=dense", "--lr_schedule=constant", "--live_augment=False"]
    try:
        cnn_run.main([*args, "--epochs=1"])                              # a finished run: its files
        before = {name: (out / name).read_bytes() for name in ("model.keras", "metrics.json")}
        save, saved = cnn_storage.save_model, []

        def full_after_one(*a, **k):                                     # the disk fills after one more epoch's save
            if saved:
                raise OSError(errno.ENOSPC, "No space left on device")
            saved.append(save(*a, **k))
        monkeypatch.setattr(cnn_storage, "save_model", full_after_one)
        monkeypatch.setattr(cnn_callbacks.SaveBest, "on_epoch_end",     # every epoch "improves": each one saves
                            lambda self, epoch, logs=None: cnn_storage.save_model(self.model, self.path, self.classes, {}))
        with pytest.raises(SystemExit) as stop:
            cnn_run.main([*args, "--epochs=3", f"--out_dir={out}", "--fresh=True"])   # the finished run moves aside
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert str(stop.value).strip() == (f"error: no space left on the disk of {out}; its last finished epoch's files "
                                       "are kept as they were: free some space and run the same command again to resume")
    [earlier] = out.glob("earlier_*")
    assert (earlier / "metrics.json").read_bytes() == before["metrics.json"]  # the finished run's, untouched
    assert (earlier / "model.keras").read_bytes() == before["model.keras"]
    model, classes, _ = cnn_model.load_model(str(out / "model.keras"))     # epoch 1 of the new run: readable
    assert classes == ["bright", "dark"]
    assert cnn_model.finished_epochs(str(out)) == 1                         # the backup of that epoch
    assert not [f for f in os.listdir(out) if f.endswith(".tmp") or f.startswith("tmp")]


# ------------------------------------------------------------------ an exact resume

# Started in place of `python cnn_run.py ...`: the same run, which SIGKILLs itself at one point.
KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import cnn_callbacks, cnn_model, cnn_run
point, epoch = sys.argv[1], [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def on_epoch_begin(self, e, logs=None):
    epoch[0] = e
cnn_callbacks.CtrlC.on_epoch_begin = on_epoch_begin
if point == "mid_epoch":          # the second epoch's third batch
    after_batch = cnn_callbacks.CtrlC.on_train_batch_end
    def on_train_batch_end(self, batch, logs=None):
        if epoch[0] == 1 and batch == 2:
            die()
        after_batch(self, batch, logs)
    cnn_callbacks.CtrlC.on_train_batch_end = on_train_batch_end
if point == "between_epochs":     # the third epoch's history row and model.keras written, not its backup
    save = cnn_callbacks.AtomicBackup._save_model
    def _save_model(self):
        if epoch[0] == 2:
            die()
        save(self)
    cnn_callbacks.AtomicBackup._save_model = _save_model
if point == "evaluation":         # training finished; the saved model scored on the first split
    predict = cnn_model.predict
    def dying_predict(*args, **kwargs):
        predict(*args, **kwargs)
        die()
    evaluate = cnn_run.evaluate
    def dying_evaluate(*args, **kwargs):
        cnn_model.predict = dying_predict
        return evaluate(*args, **kwargs)
    cnn_run.evaluate = dying_evaluate
cnn_run.main(sys.argv[2:])
"""


def _outcome(out_dir):
    """What a run leaves that must not depend on being killed: the best model's weights,
    metrics.json but for its clock readings, and history.csv but for each epoch's seconds."""
    import csv
    model, _, _ = cnn_model.load_model(str(out_dir / "model.keras"))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for clock in ("wall_time_s", "training_time_s"):
        metrics.pop(clock)
    with open(out_dir / "history.csv") as f:
        history = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return model.get_weights(), metrics, history


def test_a_run_killed_anywhere_ends_as_the_unbroken_run_does(demo_dir, tmp_path):
    """One run SIGKILLed three times, mid-epoch (epoch 2), between two epochs (after epoch 3's
    history row and model.keras, before its backup) and during the final evaluation, and
    started again each time with the same command, ends with the very weights, metrics and
    history of the run never interrupted. The run has the randomness a run can have:
    shuffling, live augmentation, mixup, dropout, batch norm's moving statistics, and the
    plateau schedule (whose replay of the epochs before a resume a test in test_settings.py checks)."""
    args = [f"--data_dir={demo_dir}", "--preset=fer_sota_narrow", "--epochs=3", "--batch_size=32",
            "--augment_dataset=False", "--live_augment=True", "--mixup=0.2", "--learning_rate=0.01",
            "--lr_schedule=plateau", "--lr_patience=1", "--lr_factor=0.5"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    unbroken = run_script("cnn_run.py", *args, f"--out_dir={tmp_path / 'unbroken'}", cwd=tmp_path)
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    weights, metrics, history = _outcome(tmp_path / "unbroken")
    assert len(history) == 3
    out = tmp_path / "killed"
    said = ["", "resuming from {}: 1 of 3 epochs already done", "resuming from {}: 2 of 3 epochs already done",
            "training already finished"]
    for point, before in zip(("mid_epoch", "between_epochs", "evaluation"), said):
        killed = subprocess.run([sys.executable, "-c", KILLER.format(repo=REPO), point, *args, f"--out_dir={out}"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        assert before.format(out / "backup") in killed.stdout, (point, killed.stdout[-2000:])
        assert not (out / "metrics.json").exists()
    # Killed while it scored its model: another command would score that model as its own; it is refused.
    other = run_script("cnn_run.py", *[a for a in args if not a.startswith("--learning_rate")], "--learning_rate=0.02",
                       f"--out_dir={out}", cwd=tmp_path)
    assert other.returncode != 0 and other.stderr.strip().splitlines()[-1].startswith(
        f"error: {out} holds a run whose training finished (3 epochs) and whose evaluation did not, of other "
        f"settings: learning_rate 0.01 there, 0.02 here. Run its own command to evaluate it, or --fresh=True"), other.stderr[-2000:]
    assert not (out / "metrics.json").exists() and (out / "backup" / "finished.json").exists()
    resumed = run_script("cnn_run.py", *args, f"--out_dir={out}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert said[-1] in resumed.stdout
    again_weights, again_metrics, again_history = _outcome(out)
    assert again_history == history
    assert again_metrics == metrics
    assert all(np.array_equal(a, b) for a, b in zip(again_weights, weights))


def test_a_disk_that_fills_up_for_real_is_one_line_and_no_crash(demo_dir, tmp_path):
    """On a real 2 MB disk (a tmpfs, where the machine lets the tests mount one), the second epoch's
    saves find it full: one line, exit 1, no traceback from h5py, no crash at exit, no half-written
    file, and the first epoch's model and backup as they were."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("this machine does not let the tests mount a small disk")
    try:
        full = run_script("cnn_run.py", f"--data_dir={demo_dir}", f"--out_dir={disk / 'run'}", "--epochs=3",
                          "--augment_dataset=False", cwd=tmp_path)
        files = sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert full.returncode == 1, (full.returncode, full.stderr[-2000:])
    assert full.stderr.strip().splitlines()[-1] == (
        f"error: no space left on the disk of {disk / 'run'}; its last finished epoch's files are kept as they were: "
        f"free some space and run the same command again to resume")
    assert "Traceback" not in full.stderr and "Exception ignored" not in full.stderr, full.stderr[-2000:]
    assert not [f for f in files if "tmp" in os.path.basename(f)], files
    assert "run/model.keras" in files and "run/backup/latest.weights.h5" in files, files
