"""The built-in demo set: grayscale cartoon faces for the 8 classes of the 8-class report.

Nothing is downloaded: every face is drawn here from a seed. The expressions
differ only by brows, eyes and mouth, as real ones mostly do, and each face gets
a random pose, size, position, lighting and noise, so the task is learnable but
not trivial. The class counts are uneven on purpose, like the 8-class report's
dataset, so that augment_dataset and class_weights have something to do; the
stand-in for that report's QIDER (make_qider_set) has its Table 1's counts exactly.

    python cnn_demo.py            # (re)writes test_images/: one face per class
"""
import os
import sys

import numpy as np
from PIL import Image

CLASSES = ["angry", "disgust", "fear", "happy", "negative", "neutral", "sad", "surprise"]
TRAIN_COUNTS = {"angry": 120, "disgust": 45, "fear": 100, "happy": 160,
                "negative": 80, "neutral": 140, "sad": 120, "surprise": 100}
TEST_COUNT = 30          # per class
# The stand-in for QIDER, the 8-class report's data set (not public): its Table 1 "A" row
# (the training faces per class, C1-C8 in this order), and a val/ of 1,346 in the same proportions.
QIDER_TRAIN_COUNTS = dict(zip(CLASSES, (501, 377, 336, 746, 1618, 115, 424, 404)))
QIDER_VAL_TOTAL = 1346
QIDER_SIZE = 96          # the report's input size: the faces need no resizing
SIZE = 64                # pixels; the pipeline resizes to img_height x img_width

# Each expression, in a face frame where x runs right and y runs down, from -1 to 1:
#   brow_inner, brow_outer: how far the inner and outer ends of a brow drop (+) or rise (-)
#   eye_open: eye height relative to a neutral eye;  gaze: pupil shift to the side
#   mouth_curve: + smile, - frown;  mouth_width;  mouth_open: height of an open mouth (0: closed)
#   mouth_tilt: one corner higher than the other (disgust's sneer)
EXPRESSIONS = {
    "neutral":  dict(brow_inner=0.00, brow_outer=0.00, eye_open=1.0, gaze=0.0,
                     mouth_curve=0.00, mouth_width=0.30, mouth_open=0.00, mouth_tilt=0.00),
    "happy":    dict(brow_inner=0.00, brow_outer=-0.02, eye_open=0.7, gaze=0.0,
                     mouth_curve=0.16, mouth_width=0.36, mouth_open=0.00, mouth_tilt=0.00),
    "sad":      dict(brow_inner=-0.10, brow_outer=0.05, eye_open=0.8, gaze=0.0,
                     mouth_curve=-0.13, mouth_width=0.30, mouth_open=0.00, mouth_tilt=0.00),
    "angry":    dict(brow_inner=0.12, brow_outer=-0.06, eye_open=0.6, gaze=0.0,
                     mouth_curve=-0.04, mouth_width=0.24, mouth_open=0.00, mouth_tilt=0.00),
    "surprise": dict(brow_inner=-0.13, brow_outer=-0.13, eye_open=1.5, gaze=0.0,
                     mouth_curve=0.00, mouth_width=0.14, mouth_open=0.20, mouth_tilt=0.00),
    "fear":     dict(brow_inner=-0.15, brow_outer=-0.04, eye_open=1.4, gaze=0.0,
                     mouth_curve=-0.04, mouth_width=0.30, mouth_open=0.08, mouth_tilt=0.00),
    "disgust":  dict(brow_inner=0.07, brow_outer=0.00, eye_open=0.5, gaze=0.0,
                     mouth_curve=-0.05, mouth_width=0.28, mouth_open=0.00, mouth_tilt=0.12),
    "negative": dict(brow_inner=0.03, brow_outer=0.03, eye_open=0.9, gaze=0.09,
                     mouth_curve=-0.02, mouth_width=0.20, mouth_open=0.00, mouth_tilt=0.00),
}


def _ink(distance, width):
    """Coverage of a stroke of this width at this distance (antialiased edge), 0..1."""
    return np.clip(width / 2 - distance + 0.02, 0, 0.04) / 0.04


def _segment_distance(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy)


def draw_face(expression, rng, size=SIZE):
    """One face as a (size, size) uint8 array."""
    e = {k: v + rng.normal(0, 0.025) for k, v in EXPRESSIONS[expression].items()}
    # Pose: the pixel grid is mapped into the face frame (rotation, scale, shift).
    angle = np.radians(rng.normal(0, 8))
    scale = rng.uniform(0.85, 1.15)
    shift_x, shift_y = rng.normal(0, 0.06, size=2)
    v, u = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    u, v = (u - shift_x) / scale, (v - shift_y) / scale
    x = np.cos(angle) * u + np.sin(angle) * v
    y = -np.sin(angle) * u + np.cos(angle) * v
    mirror = 1 if rng.random() < 0.5 else -1  # disgust's sneer and negative's gaze go either way

    background = rng.uniform(20, 120)
    skin = rng.uniform(150, 230)
    dark = rng.uniform(10, 60)
    face = ((x / 0.72) ** 2 + (y / 0.88) ** 2 <= 1).astype(float)
    img = background + (skin - background) * face

    strokes = np.zeros_like(x)                # 1 where dark features are drawn
    for side in (-1, 1):
        # Eyes: a light almond with a dark pupil, opened by eye_open.
        ex, ey = side * 0.28, -0.18
        rx, ry = 0.13, max(0.02, 0.075 * e["eye_open"])
        eye = ((x - ex) / rx) ** 2 + ((y - ey) / ry) ** 2 <= 1
        img = np.where(eye, 245.0, img)
        pupil = np.hypot(x - ex - mirror * e["gaze"], y - ey) <= min(0.055, ry)
        strokes = np.maximum(strokes, pupil)
        # Brows: a thick segment above each eye, inner end at |x| = 0.12.
        bi, bo = -0.40 + e["brow_inner"], -0.40 + e["brow_outer"]
        strokes = np.maximum(strokes, _ink(_segment_distance(x, y, side * 0.10, bi, side * 0.45, bo), 0.06))
    # Nose: a short line.
    strokes = np.maximum(strokes, _ink(_segment_distance(x, y, 0, -0.08, 0.03, 0.18), 0.03))
    # Mouth: a parabola through the corners, or a dark ellipse when open.
    w, my = e["mouth_width"], 0.45
    if e["mouth_open"] > 0.04:
        strokes = np.maximum(strokes, ((x / w) ** 2 + ((y - my) / e["mouth_open"]) ** 2 <= 1))
    else:
        t = np.clip(x / w, -1, 1)
        curve = my + e["mouth_curve"] * (1 - t * t) - mirror * e["mouth_tilt"] * t - e["mouth_curve"] / 2
        inside = np.abs(x) <= w
        strokes = np.maximum(strokes, inside * _ink(np.abs(y - curve), 0.05))
    img = img * (1 - strokes) + dark * strokes

    # Lighting from a random side, then camera noise.
    light = 1 + rng.uniform(-0.3, 0.3) * x + rng.uniform(-0.2, 0.2) * y
    img = img * light * rng.uniform(0.7, 1.1) + rng.normal(0, rng.uniform(4, 14), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_demo_set(folder, seed=0):
    """Write the demo set under folder/train/<class>/ and folder/test/<class>/ once."""
    done_marker = os.path.join(folder, ".complete")
    if os.path.exists(done_marker):
        return folder
    rng = np.random.default_rng(seed)
    for split, counts in (("train", TRAIN_COUNTS), ("test", dict.fromkeys(CLASSES, TEST_COUNT))):
        for name in CLASSES:
            os.makedirs(os.path.join(folder, split, name), exist_ok=True)
            for i in range(counts[name]):
                Image.fromarray(draw_face(name, rng)).save(os.path.join(folder, split, name, f"{name}_{i:04d}.png"))
    open(done_marker, "w").close()            # written last: a half-written set is redrawn
    return folder


def proportional_counts(counts, total):
    """total split over the classes in proportion to counts, rounded by largest remainder so the sum is exact."""
    exact = {name: total * n / sum(counts.values()) for name, n in counts.items()}
    out = {name: int(v) for name, v in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - out[name], reverse=True)
    for name in by_remainder[:total - sum(out.values())]:
        out[name] += 1
    return out


def make_qider_set(folder, seed=1):
    """Write the stand-in for QIDER under folder/train/<class>/ (Table 1's 4,521 faces) and
    folder/val/<class>/ (1,346), once. Its test set is the 8 real photos, scored by cnn_eval.py."""
    done_marker = os.path.join(folder, ".complete")
    if os.path.exists(done_marker):
        return folder
    print(f"drawing the stand-in for QIDER in {folder} (Table 1's counts; once)")
    rng = np.random.default_rng(seed)
    val_counts = proportional_counts(QIDER_TRAIN_COUNTS, QIDER_VAL_TOTAL)
    for split, counts in (("train", QIDER_TRAIN_COUNTS), ("val", val_counts)):
        for name in CLASSES:
            os.makedirs(os.path.join(folder, split, name), exist_ok=True)
            for i in range(counts[name]):
                face = draw_face(name, rng, size=QIDER_SIZE)
                Image.fromarray(face).save(os.path.join(folder, split, name, f"{name}_{i:04d}.png"))
    open(done_marker, "w").close()            # written last: a half-written set is redrawn
    return folder


def make_test_images(folder="test_images", seed=2024):
    """One fresh face per class (not in the demo set) for `python cnn_eval.py` to score."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        Image.fromarray(draw_face(name, rng)).save(os.path.join(folder, name, f"{name}.png"))
    return folder


if __name__ == "__main__":
    print("wrote", make_test_images(*sys.argv[1:2]))
