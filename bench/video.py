"""Frames a second from video to answer, and peak memory against the length of the work.

    python bench/video.py [--faces=../shared/data/external_faces] [--detectors=yunet,mtcnn,haar]
                          [--models=shipped,fast,fastest] [--search_every=0,0.5] [--seconds=4] [--memory=True]

1. Frames a second, end to end, as cnn_eval.py scores a video: decode a frame, find every face,
   cut each out, score it (the shipped model, and the fast model: the same network in int8, run
   by LiteRT), draw the boxes, and write the annotated frame.
   Every frame and every face is scored. The clips are composed here from the 8-class report's
   real photos: 640x480 and 1280x720, with one face (the frame's height / 2.5) and with three
   (height / 4), --seconds long at 30 frames a second; and a 640x480 clip where three faces come
   and go (each slides in from a side, stays, and leaves; at most two at once). YuNet and Haar
   search every frame; MTCNN runs once for each --search_every: 0 searches every frame; 0.5
   (its default) searches every half second of video and follows the faces in between
   (cnn_faces.followed_faces). Beside the frames a second, the faces found a frame and the share
   of the faces that MTCNN finds searching every frame that this column finds in the same frame
   (a box overlapping it at IoU 0.5 or more).
2. Peak memory (the largest resident set) of `python cnn_eval.py`, its defaults, on 720p clips of
   30 and 120 seconds at its default --fps=2, and on folders of 10 and 60 phone-sized photos
   (2048x1536, three faces each), each in a fresh process. The ratio is what matters: flat means about 1.
A benchmark, not a test: it prints what it measures. Absolute times on a shared machine are
noisy; compare within one run.
"""
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

import numpy as np
from PIL import Image

import cnn_data
import cnn_eval
import cnn_faces
import cnn_params
import cnn_photos

ARGS = {"faces": os.path.join(HERE, "..", "shared", "data", "external_faces"), "detectors": ",".join(cnn_faces.DETECTORS),
        "models": ",".join(cnn_faces.MODELS), "search_every": "0,0.5", "seconds": 4.0, "memory": True}


def photos(folder):
    return [cnn_faces.read_picture(os.path.join(folder, c, f)) for c in sorted(os.listdir(folder))
            for f in sorted(os.listdir(os.path.join(folder, c)))]


def frame(size, faces, first, shift=0):
    """An RGB picture of `size` with `faces` of the photos side by side, starting at photo `first`."""
    width, height = size
    canvas = Image.new("RGB", size, (200, 200, 190))
    face_height = height // (2.5 if len(faces) == 1 else 4)
    x = 20 + shift
    for k in range(len(faces)):
        photo = faces[(first + k) % len(faces)]
        scaled = photo.resize((int(photo.width * face_height / photo.height), int(face_height)))
        canvas.paste(scaled, (x, (height - scaled.height) // 2))
        x += scaled.width + width // 10
    return canvas


def write_clip(path, size, faces, seconds, rate=30):
    """A clip of the faces drifting sideways, a pixel a frame, so no two frames are the same."""
    cv2 = cnn_data.opencv()
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), rate, size)
    for k in range(int(seconds * rate)):
        writer.write(cv2.cvtColor(np.asarray(frame(size, faces, 0, shift=k % 60)), cv2.COLOR_RGB2BGR))
    writer.release()


def write_coming_and_going(path, faces, seconds, size=(640, 480), rate=30):
    """Three faces that come and go: each slides in from a side over a second, stays, and slides out,
    one after another, so that faces keep entering the frame between MTCNN's searches."""
    cv2 = cnn_data.opencv()
    width, height = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), rate, size)
    scaled = [p.resize((int(p.width * height / 4 / p.height), height // 4)) for p in faces[:3]]    # a row each: none hides another
    n = int(seconds * rate)
    for k in range(n):
        canvas = Image.new("RGB", size, (200, 200, 190))
        for j, photo in enumerate(scaled):
            start = j * n // 4                              # each face in view for half the clip, a quarter apart
            t = (k - start) / rate                          # seconds since it began to enter
            stay = seconds / 2 - 2
            if not 0 <= t <= stay + 2:
                continue
            home = 30 + j * (width - photo.width - 60) // 2
            edge = -photo.width if j % 2 == 0 else width
            along = min(t, 1.0) if t <= stay + 1 else max(0.0, stay + 2 - t)    # 0: outside, 1: home
            canvas.paste(photo, (int(edge + (home - edge) * along), 20 + j * height // 3))
        writer.write(cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR))
    writer.release()


def frames_a_second(path, detector, scorer, out, search_every):
    """Every frame of a clip read, scored, drawn and written, as cnn_eval.py does: frames/s, and
    each frame's boxes."""
    rate, frames = cnn_photos.video_frames(path, fps=1000)
    drawn = cnn_photos.VideoOut(out, rate)
    boxes = []
    start = time.perf_counter()
    for time_s, rgb, found in cnn_photos.ahead(cnn_faces.followed_faces(frames, detector, search_every)):
        colour = Image.fromarray(rgb)
        faces = cnn_faces.score_picture(colour, scorer, detector, True, boxes=found)
        entries = [cnn_eval.face_entry(f["box"], f["emotions"]) for f in faces]
        drawn.write(np.asarray(cnn_photos.draw_faces(colour, entries)), time_s)
        boxes.append([f["box"] for f in faces])
    drawn.close()
    return len(boxes) / (time.perf_counter() - start), boxes


def iou(box, other):
    (x, y, w, h), (u, v, s, t) = box, other
    across = max(0, min(x + w, u + s) - max(x, u)) * max(0, min(y + h, v + t) - max(y, v))
    return across / (w * h + s * t - across)


def share_found(boxes, reference):
    """The share of the reference's boxes (MTCNN searching every frame) that a box of the same frame
    overlaps at IoU 0.5 or more."""
    pairs = [max((iou(b, o) for o in found), default=0.0) >= 0.5 for found, truth in zip(boxes, reference) for b in truth]
    return float(np.mean(pairs)) if pairs else float("nan")


def peak_memory_mb(args, cwd):
    """The peak resident memory of `python cnn_eval.py args`, in a fresh process of its own."""
    measure = ("import resource, subprocess, sys; "
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, os.path.join(HERE, "cnn_eval.py"), *args],
                            cwd=cwd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    code, kilobytes = result.stdout.split()
    if code != "0":
        sys.exit(f"error: cnn_eval.py {' '.join(args)} failed in {cwd}")
    return int(kilobytes) / 1024


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    if not os.path.isdir(args["faces"]):
        sys.exit(f"error: --faces={args['faces']}: no such folder; give the 8-class report's photos "
                 f"(../shared/data/external_faces: a folder of class folders)")
    if args["seconds"] <= 0:
        sys.exit(f"error: --seconds={args['seconds']:g}: expected a clip length above 0, like --seconds=4")
    faces = photos(args["faces"])
    scorers = {name: cnn_faces.load_scorer(name) for name in args["models"].split(",")}
    searches = [float(v) for v in args["search_every"].split(",")]
    columns = [(d, m, e) for d in args["detectors"].split(",") for m in scorers
               for e in (searches if d == "mtcnn" else [0.0])]
    reference = ("mtcnn", next(iter(scorers)), 0.0)         # MTCNN searching every frame: the faces to find
    if reference not in columns:
        columns.insert(0, reference)
    work = tempfile.mkdtemp(prefix="bench_video_")
    print(f"1. end to end, every frame and every face, {args['seconds']:g} s clips at 30 frames a second "
          f"({os.cpu_count()} CPU cores); frames a second (faces found a frame, share of MTCNN's faces found)")
    print(f"{'clip':<18}" + "".join(f"{f'{d} {e:g}, {m}' if d == 'mtcnn' else f'{d}, {m}':>26}" for d, m, e in columns))
    clips = []
    for size in ((640, 480), (1280, 720)):
        for n in (1, 3):
            clip = os.path.join(work, f"{size[0]}x{size[1]}_{n}.mp4")
            write_clip(clip, size, faces[:n] if n == 1 else [faces[3], faces[6], faces[7]], args["seconds"])
            clips.append((f"{size[0]}x{size[1]}, {n}", clip))
    clip = os.path.join(work, "coming_and_going.mp4")
    write_coming_and_going(clip, [faces[3], faces[6], faces[7]], max(args["seconds"], 4.0))
    clips.append(("640x480, come/go", clip))
    for label, clip in clips:
        cells, results = [], {}
        for column in columns:
            d, m, e = column
            frames_a_second(clip, d, scorers[m], os.path.join(work, "warm.mp4"), e)     # loads the detector
            results[column] = frames_a_second(clip, d, scorers[m], os.path.join(work, "drawn.mp4"), e)
        for column in columns:
            fps, boxes = results[column]
            cells.append(f"{fps:.1f} ({np.mean([len(b) for b in boxes]):.1f}, {share_found(boxes, results[reference][1]):.1%})")
        print(f"{label:<18}" + "".join(f"{c:>26}" for c in cells), flush=True)
    if not args["memory"]:
        return
    print("\n2. peak memory of cnn_eval.py (its defaults), each in a fresh process")
    rows = []
    for seconds in (30, 120):
        clip = os.path.join(work, f"clip_{seconds}.mp4")
        write_clip(clip, (1280, 720), [faces[3], faces[6], faces[7]], seconds)
        rows.append((f"720p video, {seconds} s (--fps=2)", peak_memory_mb([clip], work)))
    for count in (10, 60):
        folder = os.path.join(work, f"photos_{count}")
        os.makedirs(folder)
        for k in range(count):
            frame((2048, 1536), [faces[k % 8], faces[(k + 3) % 8], faces[(k + 5) % 8]], 0).save(
                os.path.join(folder, f"{k:03d}.jpg"), quality=90)
        rows.append((f"{count} photos, 2048x1536", peak_memory_mb([folder, "--out=photos.json"], work)))
    for label, mb in rows:
        print(f"{label:<34}{mb:>8.0f} MB")
    print(f"{'ratio, 120 s video to 30 s':<34}{rows[1][1] / rows[0][1]:>8.2f}")
    print(f"{'ratio, 60 photos to 10':<34}{rows[3][1] / rows[2][1]:>8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
