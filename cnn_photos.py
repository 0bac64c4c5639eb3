"""Photos and videos around the faces: a video's frames as a stream, a camera live, each photo or
frame drawn with its faces' answers, the annotated video written frame by frame, a live window,
the contact sheet of the faces scored (eval.png) and a video's timeline.

Everything here is drawn with Pillow, not Matplotlib: scoring then installs without Matplotlib
and the fonts it brings (docs/install.md, the light install).

cnn_faces.py finds and scores the faces; cnn_eval.py puts the two together. Nothing here holds
more than a frame or two: a two-hour film costs the memory of a few frames.
"""
import os
import queue
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


def ahead(items, depth=2):
    """The items of an iterator, in order, each made in a second thread while the caller works on
    the one before: a video's next frame is read and searched for faces while this one's are
    scored, drawn and written (OpenCV and LiteRT let go of Python's lock while they work). At most
    `depth` items are made before the caller asks for them. What the iterator raises is raised
    here, in its place; leaving a loop over this (or closing it) stops the thread and closes the
    iterator. Not for a live camera, whose frame must be the newest when the caller asks."""
    if depth < 1:
        raise ValueError(f"depth {depth}: expected 1 or more items made ahead")
    ready, room, stop, done = queue.Queue(), threading.Semaphore(depth), threading.Event(), object()

    def make():
        try:
            for item in items:
                ready.put((item, None))
                while not room.acquire(timeout=0.1):       # wait until the caller takes one
                    if stop.is_set():
                        return
            ready.put((done, None))
        except BaseException as error:
            # Any error, not only Exception: the caller waits for an item or for `done`, and an
            # error left to end this thread would leave it waiting for ever.
            ready.put((done, error))
        finally:
            getattr(items, "close", lambda: None)()

    room.acquire()                  # the first item is made at once; each after it when one is taken
    worker = threading.Thread(target=make, daemon=True, name="cnn_photos.ahead")
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if item is done:
                if error is not None:
                    raise error
                return
            room.release()
            yield item
    finally:
        stop.set()
        # The item being made finishes first (a frame read and searched); a source that blocks
        # (a camera that stopped sending) is left to the daemon thread rather than hang the caller.
        worker.join(timeout=10)


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


MAX_PANELS = 6      # people drawn on a video's timeline: those seen longest, each in a panel of their own
# Matplotlib's first ten colours ("tab10"), one a class, as the training plots draw them.
TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
         (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def draw_timeline(panels, classes, path, title):
    """timeline.png: the probability of each class over a video's time, one panel per person.
    panels holds (label, times, rows), rows[i] the person's class probabilities at times[i]; a
    line is broken where the person is out of sight (a gap of over 3 of their usual steps)."""
    width = 800
    panel_height = 300 if len(panels) == 1 else 180
    left, right, bottom = 50, 20, 40                # margins: the probabilities, the edge, the seconds
    font = ImageFont.load_default(size=12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    while len(title) > 4 and measure.textlength(title, font=font) > width - 20:
        title = "..." + title[4:]                   # a long path loses its start, not "(N of M people)"
    legend, x, row = [], left, 0                    # (x, row) of each class's colour and name
    for name in classes:
        size = 30 + int(measure.textlength(name, font=font))
        if x + size > width - right and x > left:   # no room left on this row: the next
            x, row = left, row + 1
        legend.append((x, row))
        x += size
    top = 60 + 16 * row
    picture = Image.new("RGB", (width, top + panel_height * len(panels) + bottom), "white")
    pen = ImageDraw.Draw(picture)
    pen.text((width // 2, 8), title, fill="black", font=font, anchor="mt")
    for k, (name, (x, row)) in enumerate(zip(classes, legend)):     # the legend, under the title
        y = 36 + 16 * row
        pen.line((x, y, x + 18, y), fill=TAB10[k % len(TAB10)], width=3)
        pen.text((x + 22, y), name, fill="black", font=font, anchor="lm")
    times_seen = [t for _, times, _ in panels for t in times]
    end = max(times_seen, default=0.0) or 1.0
    place = lambda t: left + (width - left - right) * t / end
    step = next(s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, 7200, 1e9)
                if end / s <= 10)
    for n, (label, times, rows) in enumerate(panels):
        y0, y1 = top + n * panel_height + 8, top + (n + 1) * panel_height - 8
        height_of = lambda q: y1 - (y1 - y0) * float(q)
        for q in (0.0, 0.5, 1.0):
            pen.line((left, height_of(q), width - right, height_of(q)), fill=(225, 225, 225))
            pen.text((left - 6, height_of(q)), f"{q:g}", fill="black", font=font, anchor="rm")
        for k in range(int(end / step) + 1):
            pen.line((place(k * step), y0, place(k * step), y1), fill=(235, 235, 235))
        pen.rectangle((left, y0, width - right, y1), outline=(120, 120, 120))
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(classes))
        gaps = np.diff(times)
        usual = float(np.median(gaps)) if len(gaps) else 0.0
        pieces = np.split(np.arange(len(times)), [i + 1 for i, gap in enumerate(gaps) if gap > 3 * usual])
        for k in range(len(classes)):
            for piece in pieces:
                points = [(place(times[i]), height_of(rows[i, k])) for i in piece]
                if len(points) > 1:
                    pen.line(points, fill=TAB10[k % len(TAB10)], width=2)
                elif points:
                    pen.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2),
                                fill=TAB10[k % len(TAB10)])
        pen.rectangle(pen.textbbox((left + 6, y0 + 4), label, font=font), fill="white")     # over the lines
        pen.text((left + 6, y0 + 4), label, fill="black", font=font)
    axis = top + panel_height * len(panels) - 8
    for k in range(int(end / step) + 1):
        pen.text((place(k * step), axis + 4), f"{k * step:g}", fill="black", font=font, anchor="mt")
    pen.text((width // 2, axis + 20), "time (s)", fill="black", font=font, anchor="mt")
    picture.save(path)
