"""Folders, videos and the camera as streams: each file or frame scored and written as it comes,
a killed run's work kept and carried on, and the live camera path (a video file standing in)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

from conftest import REPO, run_script, write_video

HAPPY, SURPRISE = "happy/feliz.jpg", "surprise/surpreso.jpg"


def _clip(external_faces, path, seconds_each=3):
    write_video(path, 10 * seconds_each, [os.path.join(external_faces, HAPPY), os.path.join(external_faces, SURPRISE)])


def _start(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, os.path.join(REPO, "cnn_eval.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_camera_runs_live_a_line_a_frame_paced_at_the_source_rate(external_faces, tmp_path):
    """--camera=clip.mp4: the file stands in for a camera, read at its own 10 frames a second. Each
    scored frame is printed as it comes (no screen here), the newest frame each time, and the outputs
    are those of a video: eval.json's frames, the timeline, and an annotated video that plays as long
    as the clip (each scored frame held until the next)."""
    _clip(external_faces, tmp_path / "clip.mp4")                     # 6 s: happy, then surprise
    start = time.monotonic()
    result = run_script("cnn_eval.py", "--camera=clip.mp4", cwd=tmp_path)
    took = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("clip.mp4 at ")]
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert len(lines) == entry["n_frames"] == len(entry["frames"]) >= 3
    assert all(": person 1: " in line for line in lines), lines          # each face's person number, live
    times = [f["time_s"] for f in entry["frames"]]
    assert times == sorted(set(times)) and times[-1] >= 5.0          # newest frames, through to the end
    assert took >= 6.0                                                # paced: not faster than the clip runs
    said = [f["faces"][0]["predicted"] for f in entry["frames"]]
    assert said[0] == "happy" and said[-1] == "surprise", said
    assert (tmp_path / "timeline.png").exists()
    drawn = cv2.VideoCapture(str(tmp_path / "annotated" / "clip.mp4"))
    assert abs(drawn.get(cv2.CAP_PROP_FRAME_COUNT) / drawn.get(cv2.CAP_PROP_FPS) - 6.0) < 0.5


def test_ctrl_c_ends_a_live_run_and_writes_what_it_saw(external_faces, tmp_path):
    _clip(external_faces, tmp_path / "clip.mp4", seconds_each=30)    # a minute: stopped long before its end
    run = _start(["--camera=clip.mp4"], tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not os.path.exists(tmp_path / "eval_clip_frames.jsonl"):
        time.sleep(0.2)
    while time.monotonic() < deadline and len((tmp_path / "eval_clip_frames.jsonl").read_text().splitlines()) < 3:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err[-2000:]
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert 3 <= entry["n_frames"] and entry["frames"][-1]["time_s"] < 30
    assert entry["predicted"] == "happy"                              # stopped in the happy half
    assert (tmp_path / "timeline.png").exists() and (tmp_path / "annotated" / "clip.mp4").exists()


def test_a_video_scored_into_a_new_folder_writes_everything_there(external_faces, tmp_path):
    _clip(external_faces, tmp_path / "clip.mp4", seconds_each=1)
    result = run_script("cnn_eval.py", "clip.mp4", "--out=new/deeper/eval.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "new" / "deeper")) == ["annotated", "eval.json", "eval.jsonl", "eval_clip_faces.csv",
                                                                "eval_clip_frames.jsonl", "timeline.png"]
    report = json.loads((tmp_path / "new" / "deeper" / "eval.json").read_text())
    assert report["model"].endswith("fer2013_int8.tflite") and "scoring with the fast model" in result.stdout
    (entry,) = report["predictions"]
    assert [f["time_s"] for f in entry["frames"]] == [0.0, 0.5, 1.0, 1.5]
    folder = run_script("cnn_eval.py", "clip.mp4", "--out=new", cwd=tmp_path)
    assert folder.returncode != 0 and folder.stderr.strip().splitlines()[-1] == \
        f"error: --out=new: a folder; expected the JSON file to write, like --out={os.path.join('new', 'eval.json')}"


def test_a_killed_scoring_run_keeps_what_it_scored_and_the_same_command_carries_on(external_faces, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, name in enumerate(sorted(os.listdir(external_faces)) * 2):         # 16 photos
        src = os.path.join(external_faces, name, os.listdir(os.path.join(external_faces, name))[0])
        shutil.copy(src, photos / f"{k:02d}_{os.path.basename(src)}")
    args = ["photos", "--annotate=False"]
    run = _start(args, tmp_path)
    log = tmp_path / "eval.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    run.kill()                                                         # no Ctrl-C: a kill, mid-run
    run.communicate(timeout=60)
    kept = [json.loads(line)["entry"] for line in log.read_text().splitlines()[1:] if '"entry"' in line]
    assert 3 <= len(kept) < 16 and not (tmp_path / "eval.json").exists()
    again = run_script("cnn_eval.py", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"note: eval.jsonl holds {len(kept)} files scored by an earlier run" in again.stdout
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["n_scored"] == 16 and [e["path"] for e in report["predictions"]] == \
        [os.path.join("photos", f) for f in sorted(os.listdir(photos))]
    assert report["predictions"][:len(kept)] == kept                  # the kept entries, not scored again
    fresh = run_script("cnn_eval.py", *args, "--out=fresh.json", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert json.loads((tmp_path / "fresh.json").read_text())["predictions"] == report["predictions"]
    # A finished run is not carried on: the same command scores afresh.
    third = run_script("cnn_eval.py", *args, cwd=tmp_path)
    assert "carrying on" not in third.stdout and json.loads((tmp_path / "eval.json").read_text()) == report


def test_the_api_gives_a_video_frame_by_frame(external_faces, tmp_path):
    import pytest
    import cnn_faces
    _clip(external_faces, tmp_path / "clip.mp4")                     # 3 s happy, then 3 s surprise
    frames = cnn_faces.video_emotions(tmp_path / "clip.mp4", fps=2)
    first_time, first_faces = next(frames)                            # a generator: one frame at a time
    assert first_time == 0.0 and len(first_faces) == 1 and set(first_faces[0]) == {"box", "emotions", "person", "smoothed"}
    rest = list(frames)
    assert [t for t, _ in rest] == [0.5 * k for k in range(1, 12)]
    said = [max(faces[0]["emotions"], key=faces[0]["emotions"].get) for _, faces in [(first_time, first_faces)] + rest]
    assert said == ["happy"] * 6 + ["surprise"] * 6, said
    # One person throughout: the photo changes in place. At two frames a second, a window of 0.5 s holds
    # one frame, so smoothed is that frame's own answer; over 1 s, the answer at 2.5 s averages two.
    assert [faces[0]["person"] for _, faces in [(first_time, first_faces)] + rest] == [1] * 12
    assert all(faces[0]["smoothed"] == faces[0]["emotions"] for _, faces in rest)
    smoothed = list(cnn_faces.video_emotions(tmp_path / "clip.mp4", fps=2, smooth=1.0))
    at_2_5, at_2 = smoothed[5][1][0], smoothed[4][1][0]
    assert at_2_5["smoothed"] == pytest.approx({c: (at_2_5["emotions"][c] + at_2["emotions"][c]) / 2
                                                for c in at_2["emotions"]})
    with pytest.raises(cnn_faces.FaceError, match="gone.mp4: no such file"):
        next(cnn_faces.video_emotions(tmp_path / "gone.mp4"))


def test_ahead_gives_every_item_in_order_raises_in_place_and_stops_when_left():
    """cnn_photos.ahead, which searches a video's next frame while this one is scored: the items
    in order, an error raised after the items made before it, and a loop left early stops the
    second thread and closes the iterator it reads."""
    import threading
    import cnn_photos
    assert list(cnn_photos.ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield from range(3)
        raise ValueError("frame 3 cannot be read")
    seen = []
    with pytest.raises(ValueError, match="frame 3 cannot be read"):
        for item in cnn_photos.ahead(failing()):
            seen.append(item)
    assert seen == [0, 1, 2]

    closed = threading.Event()

    def endless():
        try:
            k = 0
            while True:
                yield k
                k += 1
        finally:
            closed.set()
    made = []

    def counted():
        for k in endless():
            made.append(k)
            yield k
    frames = cnn_photos.ahead(counted())
    assert [next(frames) for _ in range(5)] == [0, 1, 2, 3, 4]
    time.sleep(0.3)
    assert made == [0, 1, 2, 3, 4, 5, 6]       # two made ahead of the caller, no more
    frames.close()
    assert closed.wait(5)
    assert not any(t.name == "cnn_photos.ahead" and t.is_alive() for t in threading.enumerate())
