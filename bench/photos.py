"""Start-up and seconds a photo: scoring a folder of photos as a user does, with the defaults and with
the toolkit's earlier ones (the shipped Keras model and MTCNN).

    python bench/photos.py [--faces=../shared/data/external_faces] [--photos=100] [--repeats=3]

1. Start-up: the seconds from a fresh `python` to the first face of one photo, through the API
   (`cnn_faces.detect_emotions(path)`) and through the command line (`python cnn_eval.py photo.jpg`),
   best of --repeats, each in a fresh process; and whether TensorFlow was imported.
2. A folder of --photos photos composed here from the 8-class report's real photos: sizes cycle
   through 300x300, 640x480, 1280x960 and 2048x1536, each holding one to three of the photos
   (a face of a fifth to two fifths of the height), saved as JPEG. `python cnn_eval.py FOLDER`
   scores it once, in a fresh process; the seconds a photo are its whole run (start-up included)
   divided by the photos, and the faces found.
A benchmark, not a test: it prints what it measures. Absolute times on a shared machine are
noisy; compare the rows of one run.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from PIL import Image

import cnn_params

ARGS = {"faces": os.path.join(HERE, "..", "shared", "data", "external_faces"), "photos": 100, "repeats": 3}
SIZES = ((300, 300), (640, 480), (1280, 960), (2048, 1536))
SETTINGS = (("defaults (fast model, yunet)", []),
            ("shipped Keras model, yunet", ["--model=shipped"]),
            ("shipped Keras model, mtcnn", ["--model=shipped", "--detector=mtcnn"]))
API = ("import sys, time; started = float(sys.argv[1]); import cnn_faces; "
       "faces = cnn_faces.detect_emotions(sys.argv[2], model=sys.argv[3] or None, detector=sys.argv[4] or None); "
       "print(time.time() - started, len(faces), 'tensorflow' in sys.modules)")


def photos(folder):
    from cnn_faces import read_picture
    return [read_picture(os.path.join(folder, c, f)) for c in sorted(os.listdir(folder))
            for f in sorted(os.listdir(os.path.join(folder, c)))]


def compose(faces, size, k):
    """A photo of `size` holding one to three of the real photos side by side."""
    width, height = size
    canvas = Image.new("RGB", size, (200, 200, 190))
    count = 1 + k % 3
    face_height = height * (0.4 if count == 1 else 0.25)
    x = width // 20
    for j in range(count):
        photo = faces[(k + 3 * j) % len(faces)]
        scaled = photo.resize((max(1, int(photo.width * face_height / photo.height)), int(face_height)))
        canvas.paste(scaled, (x, (height - scaled.height) // 2))
        x += scaled.width + width // 20
    return canvas, count


def timed(command, cwd):
    """Wall seconds of a command in a fresh process, and what it printed."""
    started = time.time()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=HERE))
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.time() - started, done.stdout


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    if not os.path.isdir(args["faces"]):
        sys.exit(f"error: --faces={args['faces']}: no such folder; give the 8-class report's photos "
                 f"(a folder of class folders)")
    if args["photos"] < 1 or args["repeats"] < 1:
        sys.exit("error: --photos and --repeats: expected whole numbers from 1 up")
    faces = photos(args["faces"])
    work = tempfile.mkdtemp(prefix="bench_photos_")
    folder = os.path.join(work, "photos")
    os.makedirs(folder)
    n_faces = 0
    for k in range(args["photos"]):
        picture, count = compose(faces, SIZES[k % len(SIZES)], k)
        picture.save(os.path.join(folder, f"{k:03d}.jpg"), quality=90)
        n_faces += count
    one = os.path.join(folder, "003.jpg")           # 2048x1536, one face

    print(f"1. start-up: a fresh python to the first face of one 2048x1536 photo, best of {args['repeats']} "
          f"({os.cpu_count()} CPU cores)")
    print(f"{'':<44}{'API s':>8}{'TensorFlow':>12}{'cnn_eval.py s':>15}")
    for label, options in SETTINGS:
        model = next((o.split("=")[1] for o in options if o.startswith("--model")), "")
        detector = next((o.split("=")[1] for o in options if o.startswith("--detector")), "")
        api, cli, tensorflow = [], [], None
        for _ in range(args["repeats"]):
            _, printed = timed([sys.executable, "-c", API, str(time.time()), one, model, detector], work)
            seconds, found, tensorflow = printed.split()[-3:]
            api.append(float(seconds))
            cli.append(timed([sys.executable, os.path.join(HERE, "cnn_eval.py"), one, "--annotate=False",
                              "--out=one.json", *options], work)[0])
        print(f"{label:<44}{min(api):>8.2f}{tensorflow:>12}{min(cli):>15.2f}", flush=True)

    print(f"\n2. a folder of {args['photos']} photos, 300x300 to 2048x1536, {n_faces} faces, scored by "
          f"`python cnn_eval.py FOLDER` (annotated copies and eval.png written)")
    print(f"{'':<44}{'s a photo':>10}{'faces found':>13}")
    for label, options in SETTINGS:
        out = os.path.join(work, f"run_{len(options)}")
        seconds, _ = timed([sys.executable, os.path.join(HERE, "cnn_eval.py"), folder, f"--out={out}/eval.json",
                            *options], work)
        with open(os.path.join(out, "eval.json")) as f:
            found = sum(len(e["faces"]) for e in json.load(f)["predictions"])
        print(f"{label:<44}{seconds / args['photos']:>10.3f}{found:>13}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
