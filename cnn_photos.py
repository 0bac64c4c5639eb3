"""Every face in a photo or a video: found, cut out as the training faces were, and drawn
with its answer.

cnn_eval.py scores what this module hands it. A photo that is already a face crop
(no bigger than twice the network's input, as FER-2013's faces and test_images/ are)
is one face, the whole image; in a larger photo OpenCV's Haar cascade finds every
face (cnn_data.find_faces). A video is read with OpenCV, a few frames a second, and
each frame is a photo.
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import cnn_data

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def is_face_crop(size, input_shape):
    """Whether an image of this (width, height) is a face already: no side over twice the network's input."""
    return max(size) <= 2 * max(input_shape)


def faces_in(grey, input_shape, detect, where):
    """The faces of one grey picture (a PIL "L" image at its original size), largest first, as
    (box, pixels): box = [x, y, w, h] in the picture's pixels, pixels = the crop at input_shape.

    detect: True (find faces), False (the whole picture is the face) or "auto" (find them
    unless the picture is itself a face crop). Found none: the whole picture, said once."""
    height, width = input_shape
    whole = [([0, 0, grey.width, grey.height], _resized(grey, width, height))]
    if detect is False or (detect == "auto" and is_face_crop(grey.size, input_shape)):
        return whole
    boxes = cnn_data.find_faces(np.asarray(grey))
    if not boxes:
        print(f"note: {where}: no face found; using the whole image")
        return whole
    return [(list(box), _resized(cnn_data.crop_face(grey, box), width, height)) for box in boxes]


def _resized(img, width, height):
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def read_photo(path):
    """The photo as a grey PIL image at its original size, and in colour for drawing on."""
    colour = cnn_data.read_image(path)
    return cnn_data.to_grey(colour), colour.convert("RGB")


def is_video(path):
    return path.lower().endswith(VIDEO_SUFFIXES)


def video_frames(source, fps, keep_colour=False):
    """The frames of a video file (or of a camera, given its number, until Ctrl-C), fps a second
    (every frame when the video has fewer): dicts of time_s, the grey picture and, with keep_colour,
    the RGB array to draw on. Raises ValueError when OpenCV cannot read it."""
    cv2 = cnn_data.opencv()
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError("not a video OpenCV can read" if isinstance(source, str) else "no such camera")
    rate = capture.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, int(round(rate / fps)))
    index, frames = 0, []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                frames.append({"time_s": round(index / rate, 3), "grey": Image.fromarray(rgb).convert("L"),
                               "rgb": rgb if keep_colour else None})
            index += 1
    except KeyboardInterrupt:            # a camera runs until Ctrl-C; what it saw so far is scored
        pass
    capture.release()
    if not frames:
        raise ValueError("a video without a readable frame")
    return frames, rate / step


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
    thickness = max(2, min(picture.size) // 150)
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
