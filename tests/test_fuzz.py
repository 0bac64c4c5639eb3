"""The misuse fuzz: over a hundred things a careless user types or hands over, run in one process.

Each case calls a command's main() (cnn_eval, cnn_run, cnn_export) or the Python API as a user
would, and must end in one of two ways: a result that is right (its check says so), or one line
that starts with "error:" (a command) or a FaceError (the API) and names what is wrong. Anything
else is counted: a traceback (any other exception), or a silent wrong (a wrong result, an error
where a result was due, a message of several lines or one that does not name the culprit, or an
input file changed). The summary line counts cases, tracebacks and silent wrongs, and the test
fails on any.
"""
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import traceback
import zlib

import numpy as np
import pytest
from PIL import Image

import cnn_data
import cnn_eval
import cnn_faces
from conftest import write_video

ERROR = "error"          # the case must end in one line naming its culprit


def _photos(external_faces, inputs):
    """The inputs every case may read, none of which any case may change."""
    faces = {c: os.path.join(external_faces, c, f) for c in sorted(os.listdir(external_faces))
             for f in os.listdir(os.path.join(external_faces, c))}
    happy = Image.open(faces["happy"]).convert("RGB")
    happy.thumbnail((400, 400))
    photos = inputs / "photos"
    photos.mkdir()
    happy.save(photos / "happy.jpg")
    group = Image.new("RGB", (900, 400), (200, 200, 190))
    for k, name in enumerate(("happy", "surprise", "sad")):
        face = Image.open(faces[name]).convert("RGB")
        face.thumbnail((260, 260))
        group.paste(face, (20 + 300 * k, 70))
    group.save(photos / "group.jpg")
    happy.convert("L").save(photos / "grey.png")
    happy.convert("RGBA").save(photos / "rgba.png")
    happy.convert("CMYK").save(photos / "cmyk.jpg")
    Image.fromarray((np.asarray(happy.convert("L"), np.uint16) * 257)).save(photos / "sixteen.png")
    happy.save(photos / "anim.gif", save_all=True, append_images=[happy.rotate(10)])
    happy.save(photos / "photo.bmp")
    happy.save(photos / "photo.webp")
    happy.save(photos / "photo.tiff")
    happy.save(photos / "a png named.jpg", format="PNG")
    rotated = happy.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8                                 # shown turned back upright
    rotated.save(photos / "rotated.jpg", exif=exif)
    happy.save(photos / "ünïcode name.jpg")
    Image.new("L", (1, 1), 128).save(photos / "tiny.png")
    Image.fromarray(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))).convert("RGB").save(
        photos / "no_face.jpg")                         # a gradient: no face in it
    for folder in ("a", "b"):
        (inputs / folder).mkdir()
        happy.save(inputs / folder / "same.jpg")         # one name in two folders

    bad = inputs / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("not an image")
    data = (photos / "happy.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (bad / "folder.jpg").mkdir()
    os.mkfifo(bad / "fifo.jpg")
    os.symlink(bad / "loop.jpg", bad / "loop.jpg")
    os.symlink(bad / "nowhere.jpg", bad / "dangling.jpg")
    header = zlib.compress(b"")
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    (bad / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 90000, 90000, 8, 0, 0, 0, 0))
                                   + chunk(b"IDAT", header) + chunk(b"IEND", b""))
    (bad / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>')

    videos = inputs / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", 5, [faces["happy"], faces["surprise"]])
    write_video(videos / "blank.mp4", 6, [str(photos / "no_face.jpg")])
    write_video(videos / "whole.avi", 10, [faces["happy"]], fourcc="MJPG")
    whole = (videos / "whole.avi").read_bytes()
    (videos / "cut.avi").write_bytes(whole[:len(whole) // 2])      # its header still declares 10 frames
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "text.mp4").write_text("not a video")
    shutil.copy(photos / "happy.jpg", videos / "photo_named.mp4")

    models = inputs / "models"
    models.mkdir()
    (models / "empty.keras").write_bytes(b"")
    (models / "text.keras").write_text("not a model")
    (models / "text.tflite").write_text("not a model")
    shutil.copy(cnn_faces.FASTEST, models / "unlabelled.tflite")
    (inputs / "a_file").write_text("a file, not a folder")

    # A tiny dataset of two classes, with every kind of bad file among its faces.
    for split in ("train", "test"):
        for k, name in enumerate(("happy", "sad")):
            folder = inputs / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(12 if split == "train" else 4):
                pixels = np.random.default_rng(10 * k + i).integers(0, 255, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    train = inputs / "data" / "train" / "happy"
    os.symlink(train / "loop.png", train / "loop.png")
    os.symlink(train / "gone.png", train / "dangling.png")
    os.mkfifo(train / "fifo.png")
    (train / "text.png").write_text("not an image")
    (inputs / "one_class" / "train" / "happy").mkdir(parents=True)
    shutil.copy(inputs / "data" / "train" / "sad" / "0.png", inputs / "one_class" / "train" / "happy" / "0.png")
    (inputs / "empty_dir").mkdir()
    return photos, bad, videos, models


def _fingerprint(folder):
    """Every file below folder (links not followed, FIFOs not opened) and a digest of its bytes."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            if os.path.islink(path):
                seen[path] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    seen[path] = hashlib.sha256(f.read()).hexdigest()
            else:
                seen[path] = "special"
    return seen


CASE_SECONDS = 120      # a case that hangs (a FIFO opened, say) fails instead of stopping the suite


def _timed_out(signum, frame):
    raise TimeoutError(f"no end after {CASE_SECONDS} s")


def _call(function, api):
    """Run function() with its output caught: (exit message or None, exception or None, printed).
    api: the Python API's cases, whose one line is a FaceError; a command's is a SystemExit."""
    printed = io.StringIO()
    message = failure = None
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(CASE_SECONDS)
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            result = function()
            if hasattr(result, "__next__"):      # a generator (video_emotions): run it to its end
                list(result)
        except SystemExit as stop:
            message = stop.code if isinstance(stop.code, str) else (None if not stop.code else f"exit {stop.code}")
        except cnn_faces.FaceError as error:
            if api:
                message = f"error: {error}"
            else:                                # a command that lets it out shows a traceback
                failure = traceback.format_exc()
        except Exception:                        # what the fuzz is here to find
            failure = traceback.format_exc()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return message, failure, printed.getvalue()


def _eval_json(work):
    with open(work / "eval.json") as f:
        return json.load(f)


def test_over_a_hundred_misuses_end_in_a_right_result_or_one_line(tmp_path, external_faces, monkeypatch):
    import cnn_export
    import cnn_run
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    photos, bad, videos, models = _photos(external_faces, inputs)
    P, B, V, M, I = (lambda name, d=d: str(d / name) for d in (photos, bad, videos, models, inputs))
    happy, group, clip = P("happy.jpg"), P("group.jpg"), V("clip.mp4")
    live = os.getppid()                      # a live process: a lock it holds is not stale
    eval_ = lambda *args: (lambda: cnn_eval.main([*args]))
    run = lambda *args: (lambda: cnn_run.main([f"--data_dir={I('data')}", "--preset=dense", "--epochs=1",
                                               "--batch_size=8", "--augment_dataset=False", *args]))
    export = lambda *args: (lambda: cnn_export.main([*args]))
    api = lambda *args, **kw: (lambda: cnn_faces.detect_emotions(*args, **kw))
    video = lambda *args, **kw: (lambda: cnn_faces.video_emotions(*args, **kw))

    def faces(n_min, n_max=None, **more):
        """An eval.json whose one entry has n_min..n_max faces (and the other keys given)."""
        def check(work, printed):
            [entry] = _eval_json(work)["predictions"]
            n = len(entry["faces"]) if "faces" in entry else entry["n_faces"]
            if not n_min <= n <= (n_max or n_min) or any(entry.get(k) != v for k, v in more.items()):
                return f"{n} faces, {({k: entry.get(k) for k in more})}"
        return check

    def people(n):
        """An eval.json whose one entry is a video of n people, each of them given a class."""
        def check(work, printed):
            [entry] = _eval_json(work)["predictions"]
            if len(entry["people"]) != n or entry["predicted"] is None or any(p["predicted"] is None for p in entry["people"]):
                return f"people {entry['people']}, predicted {entry['predicted']}"
        return check

    def scored(n, said=""):
        """eval.json scores n files, and the output says `said`."""
        def check(work, printed):
            got = _eval_json(work)["n_scored"]
            if got != n or said not in printed:
                return f"n_scored {got}; {said!r} {'not ' if said not in printed else ''}said"
        return check

    def found(n):
        return lambda result: None if len(result) == n else f"{len(result)} faces"

    def lock_held(work):
        (work / "eval.lock").write_text(json.dumps({"pid": live, "host": socket.gethostname(), "started": 0}))

    # (name, call, what must come of it: ERROR and the text the line names, or a check of the result)
    cases = [
        # -- cnn_eval.py: options
        ("--tta=sideways", eval_("--tta=sideways", happy), (ERROR, "--tta=sideways")),
        ("--detect_faces=maybe", eval_("--detect_faces=maybe", happy), (ERROR, "--detect_faces=maybe")),
        ("--detector=dlib", eval_("--detector=dlib", happy), (ERROR, "--detector=dlib")),
        ("--hide_faces=yes", eval_("--hide_faces=yes", happy), (ERROR, "--hide_faces=yes")),
        ("--fps=0", eval_("--fps=0", clip), (ERROR, "--fps=0")),
        ("--fps=-1", eval_("--fps=-1", clip), (ERROR, "--fps=-1")),
        ("--fps=abc", eval_("--fps=abc", clip), (ERROR, "--fps=abc")),
        ("--fps=nan", eval_("--fps=nan", clip), (ERROR, "--fps=nan")),
        ("--search_every=-1", eval_("--search_every=-1", clip), (ERROR, "--search_every=-1")),
        ("--search_every=nan", eval_("--search_every=nan", clip), (ERROR, "--search_every=nan")),
        ("--smooth=-1", eval_("--smooth=-1", clip), (ERROR, "--smooth=-1")),
        ("--smooth=inf", eval_("--smooth=inf", clip), (ERROR, "--smooth=inf")),
        ("--smooth=nan", eval_("--smooth=nan", clip), (ERROR, "--smooth=nan")),
        ("--max_image_pixels=0", eval_("--max_image_pixels=0", happy), (ERROR, "--max_image_pixels=0")),
        ("--max_image_pixels=abc", eval_("--max_image_pixels=abc", happy), (ERROR, "--max_image_pixels=abc")),
        ("--max_image_pixels=-5", eval_("--max_image_pixels=-5", happy), (ERROR, "--max_image_pixels=-5")),
        ("--camera=-1", eval_("--camera=-1"), (ERROR, "--camera=-1")),
        ("--camera=abc", eval_("--camera=abc"), (ERROR, "--camera=abc")),
        ("--camera=/proc", eval_("--camera=/proc"), (ERROR, "--camera=/proc")),
        ("--camera with a photo", eval_("--camera=0", happy), (ERROR, "--camera=0")),
        ("--camera=text file", eval_(f"--camera={V('text.mp4')}"), (ERROR, "text.mp4")),
        ("--out=a folder", eval_(f"--out={photos}", happy), (ERROR, f"--out={photos}")),
        ("--out=result.png", eval_("--out=result.png", happy), (ERROR, "--out=result.png")),
        ("--out=a photo", eval_(f"--out={happy}", happy), (ERROR, f"--out={happy}")),
        ("--out= (empty)", eval_("--out=", happy), (ERROR, "--out=")),
        ("--out under /proc", eval_("--out=/proc/eval.json", happy), (ERROR, "/proc/eval.json")),
        ("--out under /sys", eval_("--out=/sys/kernel/x/eval.json", happy), (ERROR, "/sys/kernel/x/eval.json")),
        ("--out under a file", eval_(f"--out={I('a_file')}/eval.json", happy), (ERROR, "a_file/eval.json")),
        ("--out held by a live run", lambda: (lock_held(work), cnn_eval.main([happy])), (ERROR, "eval.json")),
        ("--annotate=a file", eval_(f"--annotate={I('a_file')}", group), (ERROR, "--annotate=")),
        ("--annotate=the photos' folder", eval_(f"--annotate={photos}", group), (ERROR, f"--annotate={photos}")),
        ("--annotate under /proc", eval_("--annotate=/proc/copies", group), (ERROR, "/proc/copies")),
        ("--model=missing", eval_("--model=missing.keras", happy), (ERROR, "missing.keras")),
        ("--model=empty .keras", eval_(f"--model={M('empty.keras')}", happy), (ERROR, "empty.keras")),
        ("--model=text .keras", eval_(f"--model={M('text.keras')}", happy), (ERROR, "text.keras")),
        ("--model=text .tflite", eval_(f"--model={M('text.tflite')}", happy), (ERROR, "text.tflite")),
        ("--model=.tflite without labels", eval_(f"--model={M('unlabelled.tflite')}", happy), (ERROR, "unlabelled.tflite")),
        ("--model=a photo", eval_(f"--model={happy}", happy), (ERROR, "happy.jpg")),
        ("--model=a folder", eval_(f"--model={models}", happy), (ERROR, str(models))),
        ("--model=fast,", eval_("--model=fast,", happy), (ERROR, "--model=fast,")),
        ("--model=best (no such name)", eval_("--model=best", happy), (ERROR, "best")),
        ("--images=a file", eval_(f"--images={I('a_file')}"), (ERROR, "a_file")),
        ("--images=missing", eval_("--images=nowhere"), (ERROR, "nowhere")),
        ("--images=an empty folder", eval_(f"--images={I('empty_dir')}"), (ERROR, "empty_dir")),
        ("--unknown=1", eval_("--unknown=1", happy), (ERROR, "--unknown=1")),
        ("--fps with no value", eval_("--fps", clip), (ERROR, "--fps")),
        # -- cnn_eval.py: files that cannot be scored: each is named and skipped; alone, nothing is scored
        ("a missing photo", eval_("gone.jpg"), (ERROR, "gone.jpg")),
        ("an empty file", eval_(B("empty.jpg")), (ERROR, "empty.jpg")),
        ("a text file as .jpg", eval_(B("text.jpg")), (ERROR, "text.jpg")),
        ("a truncated JPEG", eval_(B("truncated.jpg")), (ERROR, "truncated.jpg")),
        ("a FIFO", eval_(B("fifo.jpg")), (ERROR, "fifo.jpg")),
        ("a symlink loop", eval_(B("loop.jpg")), (ERROR, "loop.jpg")),
        ("a dangling symlink", eval_(B("dangling.jpg")), (ERROR, "dangling.jpg")),
        ("a folder named .jpg", eval_(B("folder.jpg")), (ERROR, "folder.jpg")),
        ("/dev/null", eval_("/dev/null"), (ERROR, "/dev/null")),
        ("/proc/self/status", eval_("/proc/self/status"), (ERROR, "/proc/self/status")),
        ("a PNG declaring 8.1e9 pixels", eval_(B("huge.png")), (ERROR, "huge.png")),
        ("an SVG", eval_(B("drawing.svg")), (ERROR, "drawing.svg")),
        ("an empty .mp4", eval_(V("empty.mp4")), (ERROR, "empty.mp4")),
        ("a text file as .mp4", eval_(V("text.mp4")), (ERROR, "text.mp4")),
        ("every bad file and one photo", eval_(*(B(n) for n in sorted(os.listdir(bad))), happy),
         scored(1, "skipped")),
        ("a FIFO among the photos of a folder", eval_(str(bad)), (ERROR, str(bad))),
        # -- cnn_eval.py: files that can be scored
        ("a photo", eval_(happy), faces(1, predicted="happy")),
        ("a group photo", eval_(group), faces(3)),
        ("a grey PNG", eval_(P("grey.png")), faces(1)),
        ("an RGBA PNG", eval_(P("rgba.png")), faces(1)),
        ("a CMYK JPEG", eval_(P("cmyk.jpg")), faces(1)),
        ("a 16-bit PNG", eval_(P("sixteen.png")), faces(1)),
        ("an animated GIF", eval_(P("anim.gif")), faces(1)),
        ("a BMP", eval_(P("photo.bmp")), faces(1)),
        ("a WebP", eval_(P("photo.webp")), faces(1)),
        ("a TIFF", eval_(P("photo.tiff")), faces(1)),
        ("a PNG named .jpg", eval_(P("a png named.jpg")), faces(1)),
        ("an EXIF-rotated photo", eval_(P("rotated.jpg")), faces(1)),
        ("a unicode name", eval_(P("ünïcode name.jpg")), faces(1)),
        ("a 1x1 picture", eval_(P("tiny.png")), faces(1)),
        ("a photo with no face", eval_(P("no_face.jpg")), faces(1, no_face_found=True)),
        ("one name in two folders", eval_(I("a/same.jpg"), I("b/same.jpg")),
         lambda work, printed: None if len(os.listdir(work / "annotated")) == 2 else str(os.listdir(work / "annotated"))),
        ("one photo named twice", eval_(happy, happy), scored(2)),
        ("the photos' folder", eval_(str(photos)), scored(len(os.listdir(photos)))),
        ("--hide_faces=True", eval_("--hide_faces=True", group), faces(3)),
        ("--detect_faces=False", eval_("--detect_faces=False", group), faces(1)),
        ("--detector=haar", eval_("--detector=haar", happy), faces(1)),
        ("--tta=crops", eval_("--tta=crops", happy), faces(1, predicted="happy")),
        ("--model=fastest", eval_("--model=fastest", happy), faces(1)),
        ("--model=fast,fastest", eval_("--model=fast,fastest", happy), faces(1)),
        ("--annotate=False", eval_("--annotate=False", group), lambda work, printed: (
            "annotated copies written" if (work / "annotated").exists() else None)),
        ("--out=x.JSON", eval_("--out=x.JSON", happy), lambda work, printed: (
            None if (work / "x.JSON").exists() else "no x.JSON")),
        ("a video", eval_(clip), people(1)),
        ("a video with no face", eval_(V("blank.mp4")), faces(0, predicted=None)),
        ("a video cut short", eval_(V("cut.avi")), scored(1, "its header declares")),
        ("--fps=inf on a video", eval_("--fps=inf", clip), people(1)),
        ("--fps=1000 on a video", eval_("--fps=1000", clip), people(1)),
        ("--smooth=0 on a video", eval_("--smooth=0", clip), people(1)),
        ("a photo named .mp4", eval_(V("photo_named.mp4")), scored(1)),
        ("a video as --camera", eval_(f"--camera={clip}"), people(1)),
        # -- the Python API
        ("api: None", api(None), (ERROR, "NoneType")),
        ("api: a number", api(42), (ERROR, "int")),
        ("api: bytes", api(b"\xff\xd8"), (ERROR, "bytes")),
        ("api: an empty array", api(np.zeros((0, 0, 3), np.uint8)), (ERROR, "the array")),
        ("api: a float array", api(np.zeros((9, 9, 3))), (ERROR, "float64")),
        ("api: five channels", api(np.zeros((9, 9, 5), np.uint8)), (ERROR, "the array")),
        ("api: a missing path", api("gone.jpg"), (ERROR, "gone.jpg")),
        ("api: a folder", api(str(photos)), (ERROR, str(photos))),
        ("api: a FIFO", api(B("fifo.jpg")), (ERROR, "fifo.jpg")),
        ("api: a symlink loop", api(B("loop.jpg")), (ERROR, "loop.jpg")),
        ("api: a dangling symlink", api(B("dangling.jpg")), (ERROR, "dangling.jpg")),
        ("api: a truncated JPEG", api(B("truncated.jpg")), (ERROR, "truncated.jpg")),
        ("api: model='best'", api(happy, model="best"), (ERROR, "best")),
        ("api: tta='x'", api(happy, tta="x"), (ERROR, "tta 'x'")),
        ("api: detector='x'", api(happy, detector="x"), (ERROR, "detector 'x'")),
        ("api: a 1x1 array", api(np.zeros((1, 1, 3), np.uint8)), found(0)),
        ("api: a grey array", api(np.asarray(Image.open(happy).convert("L"))), found(1)),
        ("api: an RGBA PIL image", api(Image.open(happy).convert("RGBA")), found(1)),
        ("api: a group photo", api(group), found(3)),
        ("video api: camera -1", video(-1), (ERROR, "camera -1")),
        ("video api: a missing file", video("gone.mp4"), (ERROR, "gone.mp4")),
        ("video api: fps=0", video(clip, fps=0), (ERROR, "fps 0")),
        ("video api: fps=-1", video(clip, fps=-1), (ERROR, "fps -1")),
        ("video api: smooth=-1", video(clip, smooth=-1), (ERROR, "smooth -1")),
        ("video api: search_every=-1", video(clip, search_every=-1), (ERROR, "search_every -1")),
        ("video api: a text file", video(V("text.mp4")), (ERROR, "text.mp4")),
        ("video api: None", video(None), (ERROR, "NoneType")),
        ("video api: a list", video([clip]), (ERROR, "list")),
        # -- cnn_run.py: refused before any training, in one line
        ("run: --data_dir=a file", run(f"--data_dir={I('a_file')}", "--out_dir=run"), (ERROR, "a_file")),
        ("run: --data_dir=missing", run("--data_dir=nowhere", "--out_dir=run"), (ERROR, "nowhere")),
        ("run: --data_dir=an empty folder", run(f"--data_dir={I('empty_dir')}", "--out_dir=run"), (ERROR, "empty_dir")),
        ("run: one class", run(f"--data_dir={I('one_class')}", "--out_dir=run"), (ERROR, "one_class")),
        ("run: --out_dir=a file", run(f"--out_dir={I('a_file')}"), (ERROR, "a_file")),
        ("run: --out_dir under /proc", run("--out_dir=/proc/run"), (ERROR, "/proc/run")),
        ("run: --out_dir under a file", run(f"--out_dir={I('a_file')}/run"), (ERROR, "a_file/run")),
        ("run: --out_dir= (empty)", run("--out_dir="), (ERROR, "--out_dir")),
        ("run: --preset=bogus", run("--preset=bogus", "--out_dir=run"), (ERROR, "--preset=bogus")),
        ("run: --experiment=bogus", run("--experiment=bogus", "--out_dir=run"), (ERROR, "bogus")),
        ("run: --epochs=abc", run("--epochs=abc", "--out_dir=run"), (ERROR, "--epochs=abc")),
        ("run: --learning_rate=1e999", run("--learning_rate=1e999", "--out_dir=run"), (ERROR, "--learning_rate=1e999")),
        ("run: --unknown=1", run("--unknown=1", "--out_dir=run"), (ERROR, "--unknown")),
        ("run: --init_model=missing", run("--init_model=gone.keras", "--out_dir=run"), (ERROR, "gone.keras")),
        ("run: --teacher=missing", run("--teacher=gone.keras", "--out_dir=run"), (ERROR, "gone.keras")),
        # -- cnn_run.py: a dataset holding every kind of bad file trains on the rest, naming each
        ("run: --balance_count above every class", run("--out_dir=run", "--balance_count=40"), (ERROR, "--balance_count=40")),
        ("run: bad files among the faces", run("--out_dir=run"),
         lambda work, printed: None if (work / "run" / "metrics.json").exists() and all(
             n in printed for n in ("loop.png", "dangling.png", "fifo.png", "text.png")) else printed[-800:]),
        # -- cnn_export.py
        ("export: --model=missing", export("--model=gone.keras"), (ERROR, "gone.keras")),
        ("export: --model=a photo", export(f"--model={happy}"), (ERROR, "happy.jpg")),
        ("export: --format=bogus", export(f"--model={cnn_faces.SHIPPED}", "--format=bogus"), (ERROR, "--format=bogus")),
        ("export: --out under /proc", export(f"--model={cnn_faces.SHIPPED}", "--out=/proc/m.tflite"), (ERROR, "/proc/m.tflite")),
        ("export: --out under a file", export(f"--model={cnn_faces.SHIPPED}", f"--out={I('a_file')}/m.tflite"),
         (ERROR, "a_file/m.tflite")),
        ("export: --out= (empty)", export(f"--model={cnn_faces.SHIPPED}", "--out="), (ERROR, "--out=")),
    ]

    max_pixels, pillow_limit = cnn_data.MAX_PIXELS, Image.MAX_IMAGE_PIXELS
    before = _fingerprint(inputs)
    problems, tracebacks, wrongs = [], 0, 0
    for k, (name, function, expected) in enumerate(cases):
        work = tmp_path / f"case_{k:03d}"
        work.mkdir()
        monkeypatch.chdir(work)
        message, failure, printed = _call(function, name.startswith(("api", "video api")))
        cnn_data.set_max_pixels(max_pixels)               # an option of one case is not the next one's
        Image.MAX_IMAGE_PIXELS = pillow_limit
        wrong = None
        if failure:
            tracebacks += 1
            problems.append(f"{name}: traceback\n{failure}")
            continue
        if isinstance(expected, tuple):
            names = expected[1]
            if message is None:
                wrong = "no error"
            elif "\n" in message.strip() or not message.startswith("error:") or names not in message:
                wrong = f"the line does not name {names!r}: {message!r}"
        elif message is not None:
            wrong = f"an error where a result was due: {message!r}"
        else:
            try:
                wrong = expected(work, printed) if expected.__code__.co_argcount == 2 else expected(function())
            except Exception as error:            # a result missing where the check looks for it
                wrong = f"no result to check ({type(error).__name__}: {error})"
        after = _fingerprint(inputs)
        if after != before:
            wrong = (wrong or "") + f" inputs changed: {sorted(set(after.items()) ^ set(before.items()))[:3]}"
            before = after
        if wrong:
            wrongs += 1
            problems.append(f"{name}: {wrong}\n{printed[-600:]}")
    print(f"fuzz: {len(cases)} cases, {tracebacks} tracebacks, {wrongs} silent wrongs")
    assert len(cases) >= 100
    if problems:
        pytest.fail(f"fuzz: {len(cases)} cases, {tracebacks} tracebacks, {wrongs} silent wrongs\n\n" + "\n\n".join(problems),
                    pytrace=False)
