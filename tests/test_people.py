"""Each person in a video followed with their own number and smoothed emotions: on composed clips
whose every face's path is known (bench/people.py composes them), and on boxes made up here."""
import csv
import json
import os
import sys

import pytest

import cnn_faces
import cnn_people
from conftest import REPO, run_script

sys.path.insert(0, os.path.join(REPO, "bench"))
import people as bench_people        # bench/people.py: the clips and how they are judged


def _faces(*boxes):
    return [{"box": list(b), "emotions": {"happy": 0.5, "sad": 0.5}} for b in boxes]


def test_two_people_passing_keep_their_numbers_and_a_lost_one_is_kept_for_a_second():
    """Boxes made up: A moves right, B left, crossing at frame 20, where B is hidden behind A for 4
    frames; after that A is missing for 12 frames (0.8 s at 15 a second) and comes back; then both
    are gone for 2 seconds and come back as new people."""
    people, seen = cnn_people.People(), []
    for k in range(40):
        t = k / 15
        a, b = (20 + 15 * k, 100, 100, 120), (620 - 15 * k, 110, 100, 120)
        faces = []
        if not 26 <= k < 38:
            faces.append(a)
        if not 19 <= k < 23:
            faces.append(b)
        seen.append((k, people.follow(t, _faces(*faces))))
    # (at frame 20 both would stand at x = 320; B is hidden then)
    ids_a = {f["person"] for k, fs in seen for f in fs if abs(f["box"][0] - (20 + 15 * k)) < 1}
    ids_b = {f["person"] for k, fs in seen for f in fs if abs(f["box"][0] - (620 - 15 * k)) < 1 and k != 20}
    assert ids_a == {1} and ids_b == {2}, (ids_a, ids_b)
    back = people.follow(40 / 15 + 2.0, _faces((620, 100, 100, 120), (20, 110, 100, 120)))
    assert sorted(f["person"] for f in back) == [3, 4]                  # never reused
    summary = people.summary()
    assert [p["person"] for p in summary] == [1, 2, 3, 4]
    assert summary[0]["n_frames"] == 40 - 12 and summary[1]["n_frames"] == 40 - 4


def test_smoothing_averages_a_persons_own_recent_frames_only():
    people = cnn_people.People(smooth_seconds=0.5)
    one = lambda happy: {"happy": happy, "sad": 1 - happy}
    answers = []
    for k, happy in enumerate([1.0, 0.0, 0.0, 0.0]):
        (face, other) = people.follow(k * 0.2, [{"box": [0, 0, 100, 100], "emotions": one(happy)},
                                                {"box": [400, 0, 100, 100], "emotions": one(0.3)}])
        answers.append(face["smoothed"]["happy"])
        assert other["smoothed"]["happy"] == pytest.approx(0.3)       # the other person's frames stay theirs
        assert face["emotions"]["happy"] == happy                     # the raw answer is kept beside
    # windows of 0.5 s: frames at 0, 0.2, 0.4 are averaged at 0.4; at 0.6, frames 0.2..0.6.
    assert answers == pytest.approx([1.0, 0.5, 1 / 3, 0.0])
    plain = cnn_people.People(smooth_seconds=0)
    assert plain.follow(0, _faces((0, 0, 50, 50)))[0]["smoothed"] == {"happy": 0.5, "sad": 0.5}


def test_a_scene_cut_gives_new_people(external_faces, tmp_path):
    clip = str(tmp_path / "cut.mp4")
    truth = bench_people.compose_clip(clip, external_faces, "scene cut")
    frames = list(cnn_faces.video_emotions(clip))
    before = {f["person"] for (t, fs) in frames if t < 3 for f in fs}
    after = {f["person"] for (t, fs) in frames if t >= 3.1 for f in fs}
    assert len(after) == 2 and not before & after, (before, after)
    judged = bench_people.judge(frames, truth)
    assert judged["ids shared"] == 0 and judged["found with an id"] >= 0.95, judged


def test_two_people_crossing_and_a_third_coming_and_going_on_the_command_line(external_faces, tmp_path):
    """The clip of the issue: two people pass each other (one in front for a few frames), a third
    comes and goes, one frame misses a face. cnn_eval.py finds 95 % of the true faces with an id,
    switches an id at most once and never gives one id to two people; eval.json lists 3 people;
    the CSV has a row for each face of the frames file."""
    clip = str(tmp_path / "crossing.mp4")
    truth = bench_people.compose_clip(clip, external_faces, "crossing")
    result = run_script("cnn_eval.py", "crossing.mp4", "--fps=15", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    with open(entry["frames_file"] if os.path.isabs(entry["frames_file"]) else tmp_path / entry["frames_file"]) as f:
        frames = [json.loads(line) for line in f]
    assert len(frames) == len(truth) == entry["n_frames"]
    judged = bench_people.judge([(fr["time_s"], fr["faces"]) for fr in frames], truth)
    assert judged["found with an id"] >= 0.95 and judged["id switches"] <= 1 and judged["ids shared"] == 0, judged
    assert len(entry["people"]) == 3, entry["people"]
    for person in entry["people"]:
        assert set(person) >= {"person", "first_s", "last_s", "n_frames", "emotions", "predicted", "shares"}
        assert person["first_s"] <= person["last_s"] and sum(person["emotions"].values()) == pytest.approx(1, abs=1e-3)
        assert sum(person["shares"].values()) == pytest.approx(1, abs=1e-3)
    third = [p for p in entry["people"] if p["first_s"] >= 0.9]          # the one who comes in at 1 s
    assert len(third) == 1 and 4.0 <= third[0]["last_s"] <= 4.6, entry["people"]
    with open(tmp_path / entry["faces_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    classes = json.loads((tmp_path / "eval.json").read_text())["classes"]
    assert list(rows[0]) == ["time_s", "person", "x", "y", "w", "h", "predicted", *classes]
    assert len(rows) == sum(len(fr["faces"]) for fr in frames) == entry["n_faces"]
    faces = [(fr["time_s"], face) for fr in frames for face in fr["faces"]]
    for row, (time_s, face) in zip(rows, faces):
        assert float(row["time_s"]) == time_s and int(row["person"]) == face["person"]
        assert [int(row[k]) for k in "xywh"] == face["box"] and row["predicted"] == face["predicted"]
        assert "smoothed" in face and face["smoothed"].keys() == face["probabilities"].keys()
    assert os.path.isfile(tmp_path / "annotated" / "crossing.mp4") and os.path.isfile(tmp_path / "timeline.png")


def test_a_video_with_no_face_has_no_answer_rather_than_the_first_class(tmp_path):
    import cv2
    import numpy as np
    writer = cv2.VideoWriter(str(tmp_path / "wall.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for k in range(20):
        writer.write(np.full((240, 320, 3), 100 + k, np.uint8))
    writer.release()
    result = run_script("cnn_eval.py", "wall.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert entry["predicted"] is None and entry["people"] == [] and entry["n_faces"] == 0
    assert "no face" in result.stdout
