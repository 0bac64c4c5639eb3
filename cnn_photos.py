"""Photos and videos around the faces: a video's frames as a stream, a camera live, each photo or
frame drawn with its faces' answers, the annotated video written frame by frame, a live window,
and the contact sheet of the faces scored (eval.png).

cnn_faces.py finds and scores the faces; cnn_eval.py puts the two together. Nothing here holds
more than a frame or two: a two-hour film costs the memory of a few frames.
"""
import os
import threading
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import cnn_data

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def is_video(path):
    return path.lower().endswith(VIDEO_SUFFIXES)


def open_capture(source):
    """OpenCV's reader of a video file or a camera (its number), and its frame rate. Raises
    ValueError when there is no such file or camera, or OpenCV cannot read it."""
    cv2 = cnn_data.opencv()
    problem = cnn_data.file_problem(source, "a video file") if isinstance(source, str) else None
    if problem:
        raise ValueError(problem)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError("not a video OpenCV can read" if isinstance(source, str) else
                         "no such camera (or it is in use)")
    return capture, capture.get(cv2.CAP_PROP_FPS) or 30.0


def video_frames(source, fps):
    """A video file read fps frames a second (every frame when it has fewer): the sampled rate,
    and a generator of (time_s, RGB array), one frame at a time. Raises ValueError when OpenCV
    cannot open it."""
    cv2 = cnn_data.opencv()
    capture, rate = open_capture(source)
    step = max(1, int(round(rate / fps)))

    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

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
        finally:
            capture.release()
        if declared > 0 and index < 0.9 * declared:      # a file cut short: say what was scored
            print(f"note: {source}: {index} of the {declared} frames its header declares could be read "
                  f"(cut short, or damaged); the rest is not scored")
    return rate / step, frames()


def live_frames(source):
    """A camera (its number), or a video file standing in for one, read as it runs: the camera's
    frame rate, and a generator of (time_s, RGB array) that gives the newest frame each time it
    is asked. Frames that come while the caller is busy scoring are dropped, as a live view must.
    A file is paced at its own frame rate. The generator ends at the file's end, when the camera
    stops, or on Ctrl-C. Raises ValueError when the source cannot be opened."""
    cv2 = cnn_data.opencv()
    capture, rate = open_capture(source)
    newest = {"frame": None, "time_s": 0.0, "count": 0, "done": False}
    arrived = threading.Condition()

    def read():          # in its own thread: a camera's read blocks until its next frame
        start, index = time.monotonic(), 0
        try:
            while not newest["done"]:
                ok, frame = capture.read()
                if not ok:
                    break
                if isinstance(source, str):           # a file: wait for the moment its frame is due
                    time.sleep(max(0.0, start + index / rate - time.monotonic()))
                with arrived:
                    newest.update(frame=frame, time_s=round(index / rate, 3), count=newest["count"] + 1)
                    arrived.notify()
                index += 1
        finally:
            with arrived:
                newest["done"] = True
                arrived.notify()
            capture.release()

    def frames():
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        given = 0
        try:
            while True:
                with arrived:
                    arrived.wait_for(lambda: newest["count"] > given or newest["done"])
                    if newest["count"] == given:
                        return
                    given, frame, time_s = newest["count"], newest["frame"], newest["time_s"]
                yield time_s, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        except KeyboardInterrupt:            # Ctrl-C ends a live run; what it scored is kept
            return
        finally:
            newest["done"] = True
    return rate, frames()


class VideoOut:
    """An annotated video written frame by frame (mp4v), opened at its first frame. Each frame is
    held until the next one comes and then written as many times as the time between them fills
    at the video's rate, so a live run, which scores only some of the camera's frames, plays back
    at the speed it was filmed."""

    def __init__(self, path, rate):
        self.path, self.rate, self.writer, self.held = path, rate, None, None

    def write(self, rgb, time_s):
        if self.held is not None:
            for _ in range(max(1, round((time_s - self.held[1]) * self.rate))):
                self._put(self.held[0])
        self.held = (rgb, time_s)

    def _put(self, rgb):
        cv2 = cnn_data.opencv()
        if self.writer is None:
            height, width = rgb.shape[:2]
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.rate, (width, height))
        self.writer.write(cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR))

    def close(self):
        if self.held is not None:
            self._put(self.held[0])
        if self.writer is not None:
            self.writer.release()


def live_window():
    """A function that shows an RGB frame in a window (q closes it), or None where there is no
    screen or OpenCV has no window support (the headless wheel has none): then lines are printed."""
    cv2 = cnn_data.opencv()
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"):
        return None
    try:
        cv2.namedWindow("cnn_eval", cv2.WINDOW_NORMAL)
    except cv2.error:
        return None

    def show(rgb):
        cv2.imshow("cnn_eval", cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            raise KeyboardInterrupt             # q in the window ends the run as Ctrl-C does
    return show


def draw_faces(colour, faces, hide=False):
    """A copy of an RGB image with each face's box, class and confidence drawn on it.
    faces: entries of eval.json ({"box": [x, y, w, h], "predicted": ..., "probabilities": {...}}); a
    video's faces with a "person" are labelled with that number and their smoothed answer.
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
        if "person" in face:
            answer = face["smoothed"]
            said = max(answer, key=answer.get)
            label = f"#{face['person']} {said} {answer[said]:.2f}"
        else:
            label = f"{face['predicted']} {face['probabilities'][face['predicted']]:.2f}"
        left, top, right, bottom = pen.textbbox((x, y), label, font=font)
        above = max(0, y - (bottom - top) - 2 * thickness)
        pen.rectangle((x, above, x + (right - left) + 2 * thickness, above + (bottom - top) + 2 * thickness),
                      fill=(255, 40, 40))
        pen.text((x + thickness, above + thickness - (top - y)), label, fill="white", font=font)
    return picture


CELL, FACE_SIDE = (200, 300), 144   # a contact sheet's cell, and its face (the network's crop, enlarged)
BLUE, GREEN, RED = (31, 119, 180), (0, 128, 0), (214, 39, 40)


def contact_sheet(sheet_faces, classes, path, columns=8):
    """eval.png: each photo's largest face as the network saw it, under its file name, true and
    predicted class (green when right, red when wrong), over bars of its top 3 classes.
    sheet_faces: (pixels, path, true class or None, probabilities) per photo. Drawn with Pillow:
    Matplotlib took about a second a row of eight."""
    cols = min(len(sheet_faces), columns)
    rows = -(-len(sheet_faces) // cols)
    sheet = Image.new("RGB", (CELL[0] * cols, CELL[1] * rows), "white")
    pen = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for i, (face, name, true, probabilities) in enumerate(sheet_faces):
        left, top = (i % cols) * CELL[0], (i // cols) * CELL[1]
        probabilities = np.asarray(probabilities, dtype=np.float64)
        predicted = classes[int(probabilities.argmax())]
        colour = "black" if true is None else (GREEN if true == predicted else RED)
        for line, text in enumerate((os.path.basename(name)[:24], f"true: {true or '?'}", f"predicted: {predicted}")):
            pen.text((left + CELL[0] // 2, top + 4 + 14 * line), text, fill=colour, font=font, anchor="mt")
        grey = Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((FACE_SIDE, FACE_SIDE), Image.Resampling.NEAREST)
        sheet.paste(grey.convert("RGB"), (left + (CELL[0] - FACE_SIDE) // 2, top + 50))
        for rank, k in enumerate(np.argsort(probabilities)[::-1][:3]):
            y = top + 50 + FACE_SIDE + 10 + 26 * rank
            pen.text((left + 8, y + 2), classes[k][:9], fill="black", font=font)
            bar_left, bar_width = left + 78, CELL[0] - 78 - 10
            pen.rectangle((bar_left, y, bar_left + bar_width, y + 16), outline=(200, 200, 200))
            if probabilities[k] > 0:
                pen.rectangle((bar_left, y, bar_left + int(round(probabilities[k] * bar_width)), y + 16), fill=BLUE)
    sheet.save(path)
