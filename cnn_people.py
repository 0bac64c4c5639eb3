"""Each person in a video followed from frame to frame, with their own emotions smoothed over time.

The faces of a frame stand alone: a detector says where they are, not who they are. people()
gives each face a person number that stays the same while the same person stays in view, from
what a face keeps between frames (where it is, how large, which way it moves): each person's
box is carried forward at their last speed, and each face of the next frame goes to the person
whose carried box it is nearest to, nearest pairs first. A person not seen for up to
KEEP_SECONDS (a missed frame, another person passing in front, a short look away) keeps their
number; after that the number is retired, and numbers are never given twice in one video. A
scene cut moves every face at once, farther than any person moves between two frames: everyone
in the new scene is a new person.

Each person's probabilities are also averaged over the last SMOOTH_SECONDS of their own frames
("smoothed"), so that an answer does not flicker from frame to frame; the raw ones stay beside
them. How the defaults were chosen, measured: docs/scoring.md, "People in a video".
"""
import math

import numpy as np

KEEP_SECONDS = 1.0      # a person unseen this long is gone: a short look away is about a second
SMOOTH_SECONDS = 0.5    # the window each person's probabilities are averaged over (0: none)
REACH = 0.8             # how far a face may be from a person's carried box, in the box's sizes, to be theirs
REACH_PER_SECOND = 1.5  # ... and how much farther for each second the person was not seen
SIZES = (0.6, 1.6)      # a face's width over the person's: outside this it is someone else


def people(stream, keep_seconds=KEEP_SECONDS, smooth_seconds=SMOOTH_SECONDS):
    """A generator over a stream of (time_s, faces), faces as cnn_faces.detect_emotions gives them
    (dicts with "box" and "emotions"): yields (time_s, faces), each face given "person" (a number
    from 1) and "smoothed" (its person's emotions averaged over smooth_seconds)."""
    tracks, next_number = [], 1
    for time_s, faces in stream:
        tracks = [t for t in tracks if time_s - t["seen"] <= keep_seconds]
        pairs = sorted((_distance(t, face["box"], time_s), k, j)
                       for k, t in enumerate(tracks) for j, face in enumerate(faces))
        taken_tracks, taken_faces, owner = set(), set(), {}
        for distance, k, j in pairs:
            if distance > REACH + REACH_PER_SECOND * (time_s - tracks[k]["seen"]) or k in taken_tracks or j in taken_faces:
                continue
            taken_tracks.add(k), taken_faces.add(j)
            owner[j] = tracks[k]
        answered = []
        for j, face in enumerate(faces):
            track = owner.get(j)
            if track is None:
                track = {"person": next_number, "box": face["box"], "seen": time_s, "velocity": (0.0, 0.0), "recent": []}
                next_number += 1
                tracks.append(track)
            else:
                _move(track, face["box"], time_s)
            track["recent"] = [(t, e) for t, e in track["recent"] if time_s - t < smooth_seconds] + [(time_s, face["emotions"])]
            smoothed = {c: float(np.mean([e[c] for _, e in track["recent"]])) for c in face["emotions"]}
            answered.append(dict(face, person=track["person"], smoothed=smoothed))
        yield time_s, answered


def _centre(box):
    x, y, w, h = box
    return x + w / 2, y + h / 2


def _distance(track, box, time_s):
    """How far a face is from where the person's box is carried to at time_s, in the box's sizes;
    infinite when the face is of another size."""
    x, y, w, h = track["box"]
    if not SIZES[0] <= box[2] / max(w, 1) <= SIZES[1]:
        return math.inf
    # Carried at the last speed for at most half a second: a person who stopped, or looked away,
    # is looked for near where they were, not far beyond.
    ahead = min(time_s - track["seen"], 0.5)
    cx, cy = _centre(track["box"])
    cx, cy = cx + track["velocity"][0] * ahead, cy + track["velocity"][1] * ahead
    fx, fy = _centre(box)
    return math.hypot(fx - cx, fy - cy) / max(w, h, 1)


def _move(track, box, time_s):
    """The person seen at box at time_s: their speed (pixels a second) updated, half from this step."""
    elapsed = time_s - track["seen"]
    if elapsed > 0:
        (ox, oy), (nx, ny) = _centre(track["box"]), _centre(box)
        vx, vy = (nx - ox) / elapsed, (ny - oy) / elapsed
        track["velocity"] = (0.5 * track["velocity"][0] + 0.5 * vx, 0.5 * track["velocity"][1] + 0.5 * vy)
    track["box"], track["seen"] = box, time_s


def summary(rows, classes):
    """Each person of a video, from their faces: [{"person", "first_s", "last_s", "n_frames",
    "emotions" (mean), "predicted", "shares" (of their frames, by predicted class)}], in order of
    first sight. rows: (time_s, person, emotions, predicted) for each face of each frame."""
    seen = {}
    for time_s, person, emotions, predicted in rows:
        seen.setdefault(person, []).append((time_s, emotions, predicted))
    people_seen = []
    for person, faces in seen.items():
        mean = {c: round(float(np.mean([e[c] for _, e, _ in faces])), 5) for c in classes}
        counts = {c: sum(1 for *_, p in faces if p == c) for c in classes}
        people_seen.append({"person": person, "first_s": round(faces[0][0], 3), "last_s": round(faces[-1][0], 3),
                            "n_frames": len(faces), "emotions": mean, "predicted": max(mean, key=mean.get),
                            "shares": {c: round(n / len(faces), 4) for c, n in counts.items() if n}})
    return people_seen
