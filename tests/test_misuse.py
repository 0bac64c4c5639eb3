"""Bad values and bad files a user meets: each ends in one line that names it, or is skipped with
its reason; nothing of another run is reported as this one's."""
import json
import os
import re
import resource
import shutil
import socket
import struct
import zlib

import pytest

import cnn_data
import cnn_faces
import cnn_params
from conftest import run_script


def _last_line(result):
    return result.stderr.strip().splitlines()[-1]


def test_every_number_out_of_its_range_is_one_line_naming_it():
    cases = {"--batch_size=0": "--batch_size=0: expected a number at least 1",
             "--batch_size=-1": "--batch_size=-1: expected a number at least 1",
             "--img_height=0": "--img_height=0: expected a number at least 8 and at most 4096",
             "--img_width=-48": "--img_width=-48: expected a number at least 8 and at most 4096",
             "--channels=2": "--channels=2: expected a number of 1",
             "--epochs=-1": "--epochs=-1: expected a number at least 1",
             "--learning_rate=-1": "--learning_rate=-1: expected a number above 0.0",
             "--learning_rate=0": "--learning_rate=0: expected a number above 0.0",
             "--learning_rate=1e999": "--learning_rate=1e999: expected a finite number, above 0.0",
             "--max_minutes=-1": "--max_minutes=-1: expected a number at least 0.0",
             "--lr_factor=1": "--lr_factor=1: expected a number above 0.0 and below 1.0",
             "--mixup=1.5": "--mixup=1.5: expected a number at least 0.0 and at most 1.0",
             "--max_image_pixels=0": "--max_image_pixels=0: expected a number at least 1"}
    for arg, message in cases.items():
        with pytest.raises(ValueError) as error:
            cnn_params.get_params([arg])
        assert str(error.value) == message
    for name, value in cnn_params._defaults().items():       # every default lies in its own range
        if name in cnn_params.RANGES:
            assert cnn_params._in_range(name, value) is None, name


def test_a_refused_run_says_why_in_one_line_and_leaves_no_out_dir(tmp_path):
    for args, message in [(["--batch_size=0"], "error: --batch_size=0: expected a number at least 1"),
                          (["--img_height=20", "--img_width=20"],
                           "error: --img_height=20 --img_width=20: too small for the convolutions and poolings of "
                           "--preset=conv3; use larger images (48x48, as FER-2013)")]:
        result = run_script("cnn_run.py", *args, "--out_dir=run", cwd=tmp_path)
        assert result.returncode != 0 and _last_line(result) == message
        assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    # A folder of files that are no images: refused on its training files, after the out_dir was claimed.
    for split in ("train", "test"):
        for label in ("happy", "sad"):
            (tmp_path / "junk" / split / label).mkdir(parents=True)
            for i in range(3):
                (tmp_path / "junk" / split / label / f"{i}.jpg").write_text("not an image")
    result = run_script("cnn_run.py", "--data_dir=junk", "--out_dir=run", "--lr_schedule=cosine", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert _last_line(result) == ("error: junk: none of its training files could be read as an image (each is named "
                                  "above); nothing to train on")
    assert "skipped junk/train/sad/2.jpg: not an image file" in result.stdout and not (tmp_path / "run").exists()


def _png_bomb(path, side=100_000):
    """A PNG of a few kilobytes that declares side x side grey pixels (10 billion by default)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) +
                     chunk(b"IDAT", zlib.compress(b"\0" * (side + 1) * 20)) + chunk(b"IEND", b""))


def _jpeg_bomb(path, external_faces, side=60_000):
    """A real JPEG whose header is changed to declare side x side pixels."""
    data = bytearray(open(os.path.join(external_faces, "happy", "feliz.jpg"), "rb").read())
    at = 2                                                    # walk the segments to the frame header (SOF)
    while data[at + 1] not in (0xC0, 0xC1, 0xC2):
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    data[at + 5:at + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))


def test_an_image_declaring_billions_of_pixels_is_refused_before_decoding(tmp_path, external_faces, monkeypatch):
    _png_bomb(tmp_path / "bomb.png")
    _jpeg_bomb(tmp_path / "bomb.jpg", external_faces)
    assert os.path.getsize(tmp_path / "bomb.png") < 100_000
    import tensorflow  # noqa: F401  its own start (some 700 MB) before the baseline: what is measured is the bombs'
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, declared in (("bomb.png", "100000x100000 = 10,000,000,000 pixels"), ("bomb.jpg", None)):
        with pytest.raises(cnn_faces.FaceError) as error:
            cnn_faces.detect_emotions(str(tmp_path / name))
        assert "(a possible decompression bomb)" in str(error.value) and str(error.value).startswith(str(tmp_path / name))
        if declared:
            assert f"declares {declared}, over the limit of 89,478,485" in str(error.value)
        with pytest.raises(cnn_data.TooLarge):                           # the training decoder too
            cnn_data.decode_image(str(tmp_path / name), 48, 48)
    # The lenient PNG read and TensorFlow's decoder never get the bomb either.
    monkeypatch.setattr(cnn_data, "_open_with_pillow", lambda path, draft: (_ for _ in ()).throw(OSError("bad")))
    with pytest.raises(cnn_data.TooLarge):
        cnn_data.read_image(str(tmp_path / "bomb.png"))
    with pytest.raises(cnn_data.TooLarge):
        cnn_data._open_with_tensorflow(str(tmp_path / "bomb.jpg"))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024       # KB: under 300 MB


def test_scoring_names_each_bad_file_skips_it_and_scores_the_rest(tmp_path, external_faces):
    _png_bomb(tmp_path / "bomb.png")
    shutil.copy(os.path.join(external_faces, "happy", "feliz.jpg"), tmp_path / "photo.jpg")
    result = run_script("cnn_eval.py", "photo.jpg", "bomb.png", "missing.jpg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("skipped bomb.png: declares 100000x100000 = 10,000,000,000 pixels, over the limit of 89,478,485 "
            "(a possible decompression bomb); if the image is genuine, raise the limit with "
            "--max_image_pixels=10000000000") in result.stdout
    assert "skipped missing.jpg: no such file" in result.stdout
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert entry["path"] == "photo.jpg" and entry["predicted"] == "happy"
    comma = run_script("cnn_eval.py", "photo.jpg", "--model=a.keras,", cwd=tmp_path)
    assert comma.returncode != 0 and _last_line(comma) == \
        "error: --model=a.keras,: an empty name in the list; expected PATH or PATH,PATH,... or one of shipped, fast, fastest"


def test_a_finished_run_is_never_trained_over_silently_and_a_diverged_one_reports_nothing(tmp_path, demo_dir):
    """The first run trains into log/. The same command again says it is done and trains nothing;
    another command there stops in one line naming what differs and the two ways on; with --fresh=True
    the earlier run's files are moved aside, and that run, with a learning rate of 1e30, goes NaN in
    its first epoch: it stops in one line, prints no results and says no model of it was saved."""
    first = run_script("cnn_run.py", f"--data_dir={demo_dir}", "--out_dir=log", "--epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    model = (tmp_path / "log" / "model.keras").read_bytes()
    metrics = json.loads((tmp_path / "log" / "metrics.json").read_text())
    same = run_script("cnn_run.py", f"--data_dir={demo_dir}", "--out_dir=log", "--epochs=1", cwd=tmp_path)
    assert same.returncode == 0, same.stderr[-2000:]
    assert "log holds this command's finished run" in same.stdout and "Epoch 1/" not in same.stdout
    test_row = next(line for line in same.stdout.splitlines() if line.startswith("test "))
    assert f"{metrics['test']['accuracy']:.4f}" in test_row
    nan = [f"--data_dir={demo_dir}", "--out_dir=log", "--epochs=2", "--learning_rate=1e30"]
    other = run_script("cnn_run.py", *nan, cwd=tmp_path)
    assert other.returncode != 0 and _last_line(other) == (
        "error: log holds a finished run of other settings (epochs 1 there, 2 here; learning_rate 0.001 there, 1e+30 "
        "here); give another --out_dir, or --fresh=True to train afresh there (that run's files are first moved into "
        "log/earlier_<date-time>/)")
    second = run_script("cnn_run.py", *nan, "--fresh=True", cwd=tmp_path)
    assert second.returncode != 0
    said = _last_line(second)
    assert re.fullmatch(
        r"error: the training loss became NaN or infinite in epoch 1 \(--learning_rate=1e\+30 may be too high\); the run "
        r"stopped and reports nothing: no model of this run was saved; its files \(history.csv shows the epochs\) are "
        r"moved into log/diverged_[0-9-]+/, so log trains afresh: run again with a smaller --learning_rate", said), said
    assert "saved log/model.keras" not in second.stdout and "test accuracy" not in second.stdout.lower()
    assert not (tmp_path / "log" / "model.keras").exists() and not (tmp_path / "log" / "metrics.json").exists()
    [earlier] = (tmp_path / "log").glob("earlier_*")
    assert (earlier / "model.keras").read_bytes() == model
    assert json.loads((earlier / "metrics.json").read_text()) == metrics
    [diverged] = (tmp_path / "log").glob("diverged_*")
    assert (diverged / "history.csv").exists() and (diverged / "backup").is_dir()
    # The way on that the line gives works in the same folder: a smaller learning rate trains afresh.
    third = run_script("cnn_run.py", *nan[:-1], "--learning_rate=0.001", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resuming" not in third.stdout and "already finished" not in third.stdout
    assert json.loads((tmp_path / "log" / "metrics.json").read_text())["epochs_run"] == 2


def test_odd_inputs_are_said_once_and_a_missing_source_is_named(tmp_path, external_faces, demo_dir):
    from PIL import Image
    face = Image.open(os.path.join(external_faces, "sad", "triste.jpg")).convert("RGB")
    face.save(tmp_path / "anim.gif", save_all=True, append_images=[face.rotate(10), face.rotate(20)])
    Image.new("L", (1, 1), 128).save(tmp_path / "tiny.png")
    result = run_script("cnn_eval.py", "anim.gif", "tiny.png", "gone.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("note: anim.gif: an animation of 3 frames; only its first is scored") == 1
    assert result.stdout.count("note: tiny.png: 1x1 pixels, too small to show a face; scored whole anyway") == 1
    assert "skipped gone.mp4: no such file" in result.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["n_scored"] == 2
    camera = run_script("cnn_eval.py", "--camera=7", cwd=tmp_path)              # no such camera here
    assert camera.returncode != 0 and "skipped camera 7: no such camera (or it is in use)" in camera.stdout
    assert _last_line(camera) == "error: no image could be read from camera 7"
    split = run_script("cnn_run.py", f"--data_dir={os.path.join(demo_dir, 'train')}", "--out_dir=run", cwd=tmp_path)
    assert split.returncode != 0 and _last_line(split).endswith(
        f"it looks like a split itself: give its parent, --data_dir={demo_dir}")


def test_an_unfinished_run_is_resumed_only_by_its_own_command(tmp_path, demo_dir):
    """Stopped after its first epoch, the run refuses another learning rate in one line naming it,
    leaves its folder as it was, and its own command then resumes it to the end."""
    import signal
    from conftest import signal_after_epochs
    args = [f"--data_dir={demo_dir}", "--out_dir=run", "--epochs=3"]
    run, out, err = signal_after_epochs(args, tmp_path, signal.SIGTERM, epochs=1, history=tmp_path / "run" / "history.csv")
    assert run.returncode != 0 and "run the same command again to resume" in err
    other = run_script("cnn_run.py", *args, "--learning_rate=0.01", cwd=tmp_path)
    assert other.returncode != 0
    assert _last_line(other).startswith("error: run holds an unfinished run (") and _last_line(other).endswith(
        "epochs done) of other settings: learning_rate 0.001 there, 0.01 here. Run its own command to resume it, "
        "or --fresh=True to train afresh there (its files are first moved into run/earlier_<date-time>/), or give "
        "another --out_dir")
    # Its own command resumes it, --fresh=True or not: a --fresh=True run that was stopped is resumed, not moved.
    again = run_script("cnn_run.py", *args, "--fresh=True", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stdout and (tmp_path / "run" / "metrics.json").exists()
    assert not list((tmp_path / "run").glob("earlier_*"))


def test_each_bad_scoring_option_is_one_line_naming_it():
    import cnn_eval
    cases = {"--fps=0": "error: --fps=0: expected frames per second, a number above 0, like --fps=2",
             "--search_every=-1": "error: --search_every=-1: expected seconds, a number from 0 up, like "
                                  "--search_every=0.5 (0: search every frame for faces)",
             "--search_every=often": "error: --search_every=often: expected seconds, a number from 0 up, like "
                                     "--search_every=0.5 (0: search every frame for faces)",
             "--tta=many": "error: --tta=many: expected one of: none, flip, crops",
             "--smooth=-1": "error: --smooth=-1: expected seconds, a number from 0 up, like --smooth=0.5",
             "--smooth=abc": "error: --smooth=abc: expected seconds, a number from 0 up, like --smooth=0.5",
             "--smooth=inf": "error: --smooth=inf: expected seconds, a number from 0 up",
             "--detect_faces=maybe": "error: --detect_faces=maybe: expected auto, True or False",
             "--speed=9": "error: --speed=9: expected one of "}
    for arg, said in cases.items():
        with pytest.raises(SystemExit) as stopped:
            cnn_eval.parse_args([arg, "photo.jpg"])
        assert str(stopped.value).startswith(said), (arg, str(stopped.value))
    options, files = cnn_eval.parse_args(["--search_every=0", "--fps=30", "clip.mp4"])
    assert options["search_every"] == 0.0 and options["fps"] == 30.0 and files == ["clip.mp4"]


def test_scoring_never_writes_over_its_inputs_or_its_own_outputs(tmp_path, external_faces, monkeypatch):
    """--out naming a photo or a picture, --annotate naming the photos' own folder or a file, and
    --camera beside files are each one line, and the photos are left as they were; two photos of
    one name in two folders get an annotated copy each; a second scoring run on the same --out
    while the first holds it stops, naming it."""
    import cnn_eval
    import cnn_out_dir
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("happy/feliz.jpg", "sad/triste.jpg"):
        shutil.copy(os.path.join(external_faces, name), photos / os.path.basename(name))
    (tmp_path / "more").mkdir()
    shutil.copy(os.path.join(external_faces, "surprise/surpreso.jpg"), tmp_path / "more" / "feliz.jpg")
    before = {p: p.read_bytes() for p in photos.iterdir()}
    (tmp_path / "notes.txt").write_text("a file")
    monkeypatch.chdir(tmp_path)
    cases = {(f"--out={photos / 'feliz.jpg'}", str(photos)): "expected the .json file to write",
             ("--out=result.png", str(photos)): "--out=result.png: expected the .json file to write",
             (f"--annotate={photos}", str(photos)): "the folder of",
             ("--annotate=notes.txt", str(photos)): "--annotate=notes.txt: a file",
             ("--camera=0", str(photos / "feliz.jpg")): "--camera=0 with files named too"}
    for args, said in cases.items():
        with pytest.raises(SystemExit) as stopped:
            cnn_eval.main(list(args))
        assert said in str(stopped.value) and "\n" not in str(stopped.value), (args, str(stopped.value))
    assert {p: p.read_bytes() for p in photos.iterdir()} == before
    cnn_eval.main([str(photos), str(tmp_path / "more"), "--out=both.json", "--annotate=drawn"])
    assert sorted(os.listdir("drawn")) == ["more_feliz.jpg", "photos_feliz.jpg", "triste.jpg"]
    report = json.loads((tmp_path / "both.json").read_text())
    assert len(report["predictions"]) == 3 and not os.path.exists("both.lock")       # released at the end
    held = tmp_path / "held.lock"
    held.write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "earlier"}))   # pid 1 runs
    with pytest.raises(SystemExit) as stopped:
        cnn_out_dir.claim(str(held), "held.json", "--out")
    assert str(stopped.value).startswith("error: held.json is in use by the run of pid 1")


def test_a_video_cut_short_is_scored_as_far_as_it_goes_and_said(tmp_path, capsys):
    import cv2
    import numpy as np
    import cnn_photos
    writer = cv2.VideoWriter(str(tmp_path / "whole.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(60):
        writer.write(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()
    data = (tmp_path / "whole.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
    _, frames = cnn_photos.video_frames(str(tmp_path / "whole.avi"), 100)
    assert len(list(frames)) == 60 and "note:" not in capsys.readouterr().out
    _, frames = cnn_photos.video_frames(str(tmp_path / "cut.avi"), 100)
    read = len(list(frames))
    assert 0 < read < 54
    assert f"cut.avi: {read} of the 60 frames its header declares could be read" in capsys.readouterr().out
