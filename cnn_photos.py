"""Photos and videos around the faces: a video's frames, each photo or frame drawn with its
faces' answers, the annotated video, and the timeline of a video's classes.

cnn_faces.py finds and scores the faces; cnn_eval.py puts the two together.
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import cnn_data

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def is_video(path):
    return path.lower().endswith(VIDEO_SUFFIXES)


def video_frames(source, fps):
    """A video file (or a camera, given its number) read fps frames a second (every frame when the
    video has fewer): the sampled rate, and a generator of (time_s, RGB array) that stops at the
    end, or on Ctrl-C for a camera. Raises ValueError when OpenCV cannot open it."""
    cv2 = cnn_data.opencv()
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError("not a video OpenCV can read" if isinstance(source, str) else "no such camera")
    rate = capture.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, int(round(rate / fps)))

    def frames():
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % step == 0:
                    yield round(index / rate, 3), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        except KeyboardInterrupt:            # a camera runs until Ctrl-C; what it saw so far is kept
            pass
        finally:
            capture.release()
    return rate / step, frames()


def draw_faces(colour, faces, hide=False):
    """A copy of an RGB image with each face's box, class and confidence drawn on it.
    faces: entries of eval.json ({"box": [x, y, w, h], "predicted": ..., "probabilities": {...}}).
    hide: each face pixelated first (10 x 10 blocks), to share the answer without the face."""
    picture = colour.copy()
    if hide:
        for face in faces:
            x, y, w, h = face["box"]
            blocks = picture.crop((x, y, x + w, y + h)).resize((10, 10), Image.BOX)
            picture.paste(blocks.resize((w, h), Image.NEAREST), (x, y))
    pen = ImageDraw.Draw(picture)
    thickness = max(3, min(picture.size) // 150)      # 2 pixels of red blur into a face under JPEG
    font = ImageFont.load_default(size=max(12, min(picture.size) // 30))
    for face in faces:
        x, y, w, h = face["box"]
        pen.rectangle((x, y, x + w, y + h), outline=(255, 40, 40), width=thickness)
        label = f"{face['predicted']} {face['probabilities'][face['predicted']]:.2f}"
        left, top, right, bottom = pen.textbbox((x, y), label, font=font)
        above = max(0, y - (bottom - top) - 2 * thickness)
        pen.rectangle((x, above, x + (right - left) + 2 * thickness, above + (bottom - top) + 2 * thickness),
                      fill=(255, 40, 40))
        pen.text((x + thickness, above + thickness - (top - y)), label, fill="white", font=font)
    return picture


def write_video(frames, rate, path):
    """RGB arrays as a video OpenCV writes (mp4v)."""
    cv2 = cnn_data.opencv()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), rate, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()


def plot_timeline(frames, classes, path, title):
    """The probability of each class over the video's time: the largest face of each frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    times = [f["time_s"] for f in frames if f["faces"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    for c in classes:
        ax.plot(times, [f["faces"][0]["probabilities"][c] for f in frames if f["faces"]], label=c)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability (largest face)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def output_name(folder, path, suffix):
    """Where the annotated copy of `path` goes in `folder`: its own name, suffix changed where needed."""
    stem, ext = os.path.splitext(os.path.basename(path))
    return os.path.join(folder, stem + (suffix or ext))
