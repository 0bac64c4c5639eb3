"""Each person in a video followed from frame to frame, with their own emotions smoothed over time.

The faces of a frame stand alone: a detector says where they are, not who they are. People.follow()
gives each face a person number that stays the same while the same person stays in view, from
what a face keeps between frames (where it is, how large, which way it moves): each person's
box is carried forward at their last speed, and each face of the next frame goes to the person
whose carried box it is nearest to, nearest pairs first. A person not seen for up to
KEEP_SECONDS (a missed frame, another person passing in front, a short look away) keeps their
number; after that the number is retired, and numbers are never given twice in one video. A
scene cut (the frame's brightness histogram moving by half from the last frame's) ends everyone:
the people of the new scene are new people.

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
STALE = 1.0             # added to the distance for each second unseen: where a face could be two people's (one
                        # just passed in front of the other), it goes to the one seen last
CUT = 0.5               # a frame whose brightness histogram differs this much from the last one's (half its
                        # mass moved) is a scene cut: everyone in it is new
SIZES = (0.6, 1.6)      # a face's width over the person's: outside this it is someone else


class People:
    """The people of one video or camera stream: follow() each frame's faces in turn, then summary()."""

    def __init__(self, keep_seconds=KEEP_SECONDS, smooth_seconds=SMOOTH_SECONDS):
        self.keep_seconds, self.smooth_seconds = keep_seconds, smooth_seconds
        self.tracks = []            # the people in view or lately seen
        self.everyone = {}          # person number: what summary() reports of them, kept after they leave
        self.next_number = 1
        self.last_histogram = None

    def follow(self, time_s, faces, picture=None):
        """The faces of the frame at time_s (dicts with "box" and "emotions", as cnn_faces gives them),
        each given "person" (a number from 1) and "smoothed" (its person's emotions averaged over
        the last smooth_seconds of their frames). picture: the frame (an RGB array), to tell a scene cut."""
        if picture is not None and self._cut(picture):
            self.tracks = []
        self.tracks = [t for t in self.tracks if time_s - t["seen"] <= self.keep_seconds]
        pairs = sorted((_distance(t, face["box"], time_s) + STALE * (time_s - t["seen"]), k, j)
                       for k, t in enumerate(self.tracks) for j, face in enumerate(faces))
        taken_tracks, owner = set(), {}
        for cost, k, j in pairs:
            unseen = time_s - self.tracks[k]["seen"]
            if cost - STALE * unseen <= REACH + REACH_PER_SECOND * unseen and k not in taken_tracks and j not in owner:
                taken_tracks.add(k)
                owner[j] = self.tracks[k]
        answered = []
        for j, face in enumerate(faces):
            track = owner.get(j)
            if track is None:
                track = {"person": self.next_number, "box": face["box"], "seen": time_s, "velocity": (0.0, 0.0),
                         "recent": []}
                self.next_number += 1
                self.tracks.append(track)
            else:
                _move(track, face["box"], time_s)
            track["recent"] = ([(t, e) for t, e in track["recent"] if time_s - t < self.smooth_seconds] +
                               [(time_s, face["emotions"])])
            smoothed = {c: float(np.mean([e[c] for _, e in track["recent"]])) for c in face["emotions"]}
            self._count(track["person"], time_s, face["emotions"])
            answered.append(dict(face, person=track["person"], smoothed=smoothed))
        return answered

    def _cut(self, picture):
        """Whether this frame begins a new scene: its brightness histogram (of every 8th pixel) against
        the last frame's. People walking, turning or passing change it little; a cut to another place does."""
        grey = np.asarray(picture)[::8, ::8].mean(axis=-1) if np.ndim(picture) == 3 else np.asarray(picture)[::8, ::8]
        histogram = np.histogram(grey, bins=32, range=(0, 256))[0] / max(grey.size, 1)
        cut = self.last_histogram is not None and 0.5 * np.abs(histogram - self.last_histogram).sum() > CUT
        self.last_histogram = histogram
        return bool(cut)

    def _count(self, person, time_s, emotions):
        seen = self.everyone.setdefault(person, {"first_s": time_s, "n_frames": 0, "sums": dict.fromkeys(emotions, 0.0),
                                                 "answers": {}})
        seen["last_s"] = time_s
        seen["n_frames"] += 1
        for c, q in emotions.items():
            seen["sums"][c] += q
        predicted = max(emotions, key=emotions.get)
        seen["answers"][predicted] = seen["answers"].get(predicted, 0) + 1

    def summary(self):
        """Each person seen, in order of first sight: person, first_s, last_s, n_frames, emotions
        (the mean of their raw probabilities), predicted (its top class) and shares (of their
        frames, by the class predicted in each)."""
        listed = []
        for person, seen in self.everyone.items():
            n = seen["n_frames"]
            mean = {c: round(total / n, 5) for c, total in seen["sums"].items()}
            listed.append({"person": person, "first_s": round(seen["first_s"], 3), "last_s": round(seen["last_s"], 3),
                           "n_frames": n, "emotions": mean, "predicted": max(mean, key=mean.get),
                           "shares": {c: round(k / n, 4) for c, k in sorted(seen["answers"].items())}})
        return listed


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
