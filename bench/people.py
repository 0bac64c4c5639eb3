"""People followed through a video: id switches, faces found with an id, the cost in frames a
second, and what smoothing each person's answer does to flicker and to lag.

    python bench/people.py [--faces=../shared/data/external_faces] [--smooth=0,0.25,0.5,1,2]

The clips are composed here from the 8-class report's real photos, with every face's true path
known (compose_clip), at 640x480 and 15 frames a second:
- "crossing": two people walk across the frame towards each other, one passing in front of the
  other (the one behind hidden for a few frames); a third comes in from below, stays, and leaves;
  one frame misses the first person (a dropped detection); 6 seconds.
- "scene cut": the same three, then at 3 seconds a cut to a new scene holding two of the same
  photos elsewhere: the people after the cut are new people.
- "expression change": one person who stays, their photo switching from happy to surprise half
  way; for the lag of the smoothed answer.
Printed per clip: the true faces, the share found with an id, id switches (a person whose id
changes from one of their frames to the next), ids given to more than one person, people
listed; the frames a second of scoring with and without following people, and the milliseconds
a frame that following people takes on its own (timed again over the same faces); and for each
--smooth window, how often a person's answer changes a second (flicker) and how long the smoothed
answer takes to follow the expression change.
A benchmark, not a test: it prints what it measures (tests/test_people.py asserts on the same clips).
"""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

import numpy as np
from PIL import Image

import cnn_data
import cnn_faces
import cnn_params
import cnn_people
import cnn_photos

ARGS = {"faces": os.path.join(HERE, "..", "shared", "data", "external_faces"), "smooth": "0,0.25,0.5,1,2"}
SIZE, RATE = (640, 480), 15


def photo(folder, name):
    """One of the 8 photos by its class folder, as RGB."""
    (f,) = os.listdir(os.path.join(folder, name))
    return cnn_faces.read_picture(os.path.join(folder, name, f))


def _scaled(picture, height):
    return picture.resize((int(picture.width * height / picture.height), height))


def compose_clip(path, folder, kind):
    """Write a clip of `kind` ("crossing", "scene cut" or "expression change") and return its truth:
    for each frame, [(person label, (x, y, w, h) of the photo pasted, share of it in view)]."""
    cv2 = cnn_data.opencv()
    width, height = SIZE
    a, b, c = (_scaled(photo(folder, n), 150) for n in ("happy", "surprise", "sad"))
    seconds = 4 if kind == "expression change" else 6
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), RATE, SIZE)
    truth = []
    for k in range(seconds * RATE):
        t = k / RATE
        canvas = Image.new("RGB", SIZE, (200, 200, 190))
        placed = []                                   # (label, picture, x, y), back to front
        if kind == "expression change":
            placed.append(("A", a if t < seconds / 2 else _scaled(photo(folder, "surprise"), 150), 240, 150))
        elif kind == "scene cut" and t >= 3:
            canvas = Image.new("RGB", SIZE, (120, 140, 160))
            placed += [("D", b, 420, 40), ("E", a, 60, 250)]
        else:
            # A walks left to right, B right to left, B behind A; C rises from below, stays, and sinks.
            along = t / 6 if kind == "crossing" else t / 3 * 0.5
            placed.append(("B", b, int(width - b.width - 10 - along * (width - b.width - 20)), 60))
            if not (kind == "crossing" and k == 20):  # a frame in which A's face is missing
                placed.append(("A", a, int(10 + along * (width - a.width - 20)), 40))
            if 1.0 <= t <= 4.5:
                rise = min(t - 1.0, 0.5, 4.5 - t) / 0.5
                placed.append(("C", c, 260, int(height - rise * (c.height + 10))))
        frame_truth = []
        for j, (label, picture, x, y) in enumerate(placed):
            canvas.paste(picture, (x, y))
            box = (x, y, picture.width, picture.height)
            hidden = 0.0
            for _, other, u, v in placed[j + 1:]:     # the photos pasted after this one lie in front of it
                across = max(0, min(x + picture.width, u + other.width) - max(x, u)) * \
                         max(0, min(y + picture.height, v + other.height) - max(y, v))
                hidden = max(hidden, across / (picture.width * picture.height))
            seen_w, seen_h = min(x + picture.width, width) - max(x, 0), min(y + picture.height, height) - max(y, 0)
            in_frame = max(0, seen_w) * max(0, seen_h) / (picture.width * picture.height)
            frame_truth.append((label, box, max(0.0, in_frame - hidden)))
        writer.write(cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR))
        truth.append(frame_truth)
    writer.release()
    return truth


def judge(frames, truth, visible=0.6):
    """How frames (the (time_s, faces) of video_emotions, faces with "person") match the truth:
    a face is the true face of the frontmost photo its box's centre lies on. Counts the true faces
    in view (at least `visible` of the photo seen), those found with an id, id switches, and the
    ids that were given to more than one person."""
    n_true = found = switches = 0
    last_id, people_of_id = {}, {}
    for (_, faces), frame_truth in zip(frames, truth):
        left = list(faces)
        for label, (x, y, w, h), share in reversed(frame_truth):      # front to back
            mine = [f for f in left if x <= f["box"][0] + f["box"][2] / 2 <= x + w and
                    y <= f["box"][1] + f["box"][3] / 2 <= y + h]
            if share >= visible:
                n_true += 1
                found += bool(mine)
            if mine:
                left.remove(mine[0])
                person = mine[0]["person"]
                people_of_id.setdefault(person, set()).add(label)
                if label in last_id and last_id[label] != person:
                    switches += 1
                last_id[label] = person
    shared = sum(1 for labels in people_of_id.values() if len(labels) > 1)
    return {"true faces": n_true, "found with an id": found / max(n_true, 1), "id switches": switches,
            "ids shared": shared, "ids": len(people_of_id)}


def smoothed_answers(frames, smooth):
    """Each person's answers over the clip, (time_s, class) in order, smoothed over `smooth` seconds."""
    people = cnn_people.People(smooth_seconds=smooth)
    answers = {}
    for time_s, faces in frames:
        for face in people.follow(time_s, [{"box": f["box"], "emotions": f["emotions"]} for f in faces]):
            answers.setdefault(face["person"], []).append((time_s, max(face["smoothed"], key=face["smoothed"].get)))
    return answers


def flicker(frames, smooth):
    """How often a person's answer changes, a second of their time in view."""
    answers = smoothed_answers(frames, smooth).values()
    changes = sum(1 for said in answers for (_, p), (_, q) in zip(said, said[1:]) if p != q)
    return changes / max(sum(said[-1][0] - said[0][0] for said in answers), 1e-9)


def lag(frames, smooth):
    """Seconds after the clip's middle (the expression change) until person 1's answer is surprise for good."""
    said = smoothed_answers(frames, smooth)[1]
    middle = said[-1][0] / 2
    settled = next((t for k, (t, _) in enumerate(said) if t >= middle and all(a == "surprise" for _, a in said[k:])), None)
    return settled - middle if settled is not None else float("nan")


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    if not os.path.isdir(args["faces"]):
        sys.exit(f"error: --faces={args['faces']}: no such folder; give the 8-class report's photos (a folder of class folders)")
    try:
        windows = [float(v) for v in args["smooth"].split(",")]
    except ValueError:
        sys.exit(f"error: --smooth={args['smooth']}: expected seconds separated by commas, like --smooth=0,0.5,1")
    work = tempfile.mkdtemp(prefix="bench_people_")
    scorer = cnn_faces.load_scorer(None)
    print(f"people followed, {SIZE[0]}x{SIZE[1]} at {RATE} frames a second, the fast model and YuNet ({os.cpu_count()} CPU cores)")
    print(f"{'clip':<20}{'true faces':>11}{'found, id':>11}{'switches':>10}{'ids shared':>12}{'people':>8}"
          f"{'fps':>8}{'fps, no ids':>13}{'ids, ms a frame':>17}")
    kept = {}
    for kind in ("crossing", "scene cut", "expression change"):
        clip = os.path.join(work, kind.replace(" ", "_") + ".mp4")
        truth = compose_clip(clip, args["faces"], kind)
        list(cnn_faces.video_emotions(clip))                         # warm: loads the model and detector
        start = time.perf_counter()
        frames = list(cnn_faces.video_emotions(clip))
        with_ids = len(frames) / (time.perf_counter() - start)
        rate, stream = cnn_photos.video_frames(clip, float("inf"))
        start = time.perf_counter()
        for _, rgb, boxes in cnn_faces.followed_faces(stream):
            cnn_faces.score_picture(Image.fromarray(rgb), scorer, None, True, "none", boxes)
        without = len(frames) / (time.perf_counter() - start)
        result = judge(frames, truth)
        # The following alone, again over the same faces: what people numbers cost a frame.
        rate, stream = cnn_photos.video_frames(clip, float("inf"))
        pictures = [rgb for _, rgb in stream]
        people = cnn_people.People()
        start = time.perf_counter()
        for (time_s, faces), rgb in zip(frames, pictures):
            people.follow(time_s, [{"box": f["box"], "emotions": f["emotions"]} for f in faces], rgb)
        following_ms = 1000 * (time.perf_counter() - start) / len(frames)
        print(f"{kind:<20}{result['true faces']:>11}{result['found with an id']:>11.1%}{result['id switches']:>10}"
              f"{result['ids shared']:>12}{result['ids']:>8}{with_ids:>8.1f}{without:>13.1f}{following_ms:>17.2f}",
              flush=True)
        kept[kind] = frames
    print("\nsmoothing: answer changes a second of a person in view (flicker), on the crossing and scene-cut "
          "clips,\nand the seconds the answer takes to follow the expression change (lag)")
    print(f"{'--smooth':<10}{'flicker, crossing':>19}{'flicker, scene cut':>20}{'lag, s':>9}")
    for smooth in windows:
        print(f"{smooth:<10g}{flicker(kept['crossing'], smooth):>19.2f}{flicker(kept['scene cut'], smooth):>20.2f}"
              f"{lag(kept['expression change'], smooth):>9.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
