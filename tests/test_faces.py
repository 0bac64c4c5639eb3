"""Face detection and cropping on real photos, and the contact sheet of cnn_eval.py."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import cnn_data
from conftest import run_script



def _photos(external_faces):
    return [os.path.join(external_faces, c, f) for c in sorted(os.listdir(external_faces))
            for f in os.listdir(os.path.join(external_faces, c))]


def test_a_face_is_found_in_each_real_photo(external_faces):
    for path in _photos(external_faces):
        gray = np.asarray(cnn_data.to_grey(cnn_data.read_image(path)))   # the PNG needs the lenient decoder
        boxes = cnn_data.find_faces(gray)
        assert len(boxes) == 1, (path, boxes)             # one person per photo
        x, y, w, h = boxes[0]
        assert min(w, h) >= min(gray.shape) / 2, (path, boxes)  # these photos are mostly face
        assert x >= 0 and y >= 0 and x + w <= gray.shape[1] and y + h <= gray.shape[0]   # inside the photo


def test_a_small_face_in_a_big_photo_is_cropped_where_it_is(external_faces, tmp_path):
    face = Image.open(os.path.join(external_faces, "neutral", "neutro.jpg")).convert("L")
    canvas = Image.new("L", (1600, 1200), 90)
    canvas.paste(face, (1100, 700))                     # face photo at x 1100..1352, y 700..1005
    path = tmp_path / "group.jpg"
    canvas.save(path)
    (x, y, size, _), = cnn_data.find_faces(np.asarray(canvas))
    assert 1050 <= x <= 1200 and 700 <= y <= 850 and 150 <= size <= 300
    cropped = cnn_data.decode_image(str(path), 48, 48, detect_faces=True)
    whole = cnn_data.decode_image(str(path), 48, 48)
    background = lambda pixels: np.mean(np.abs(pixels.astype(int) - 90) <= 3)
    assert background(whole) > 0.8          # the photo is mostly empty canvas ...
    assert background(cropped) < 0.35       # ... the crop is the face (its margin spills past the narrow photo)


def test_no_face_falls_back_to_the_whole_image(tmp_path, capsys):
    path = tmp_path / "wall.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))).save(path)
    pixels = cnn_data.decode_image(str(path), 48, 48, detect_faces=True)
    assert pixels.shape == (48, 48)
    assert f"{path}: no face found; using the whole image" in capsys.readouterr().out


def test_eval_with_face_detection_writes_the_contact_sheet(demo_dir, external_faces, tmp_path):
    out = tmp_path / "log"
    trained = run_script("cnn_run.py", f"--data_dir={demo_dir}", f"--out_dir={out}", "--epochs=1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = run_script("cnn_eval.py", f"--model={out / 'model.keras'}", f"--images={external_faces}",
                        "--detect_faces=True", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no face found" not in result.stdout
    sheet = Image.open(out / "eval.png")
    assert sheet.size[0] > 800 and sheet.size[1] > 150
    report = json.loads((out / "eval.json").read_text())
    assert report["n_scored"] == 8
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-3 for p in report["predictions"])


# ------------------------------------------------------------------ every face of a photo or a video, no training

def _group_photo(external_faces, path, names=("happy/feliz.jpg", "surprise/surpreso.jpg", "sad/triste.jpg")):
    """Three of the real photos side by side on a grey canvas: where each one lies, and the photo."""
    photos = [Image.open(os.path.join(external_faces, n)).convert("RGB") for n in names]
    canvas = Image.new("RGB", (sum(p.width for p in photos) + 40 * (len(photos) + 1), max(p.height for p in photos) + 80),
                       (200, 200, 190))
    places, x = [], 40
    for photo in photos:
        canvas.paste(photo, (x, 40))
        places.append((x, 40, photo.width, photo.height))
        x += photo.width + 40
    canvas.save(path)
    return places


def test_every_face_of_a_group_photo_is_found_scored_and_drawn_with_no_training(external_faces, tmp_path):
    places = _group_photo(external_faces, tmp_path / "group.jpg")
    result = run_script("cnn_eval.py", "group.jpg", cwd=tmp_path)        # no log/, no flags
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no log/model.keras here: scoring with the shipped model" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("group.jpg")]
    assert len(rows) == 3                                                # one row per face
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert len(entry["faces"]) == 3
    # Each box lies on one of the photos, in the composite's own pixels, and names that photo's class.
    expected = {0: "happy", 1: "surprise", 2: "sad"}
    found = {}
    for face in entry["faces"]:
        x, y, w, h = face["box"]
        centre = (x + w / 2, y + h / 2)
        (which,) = [i for i, (px, py, pw, ph) in enumerate(places) if px <= centre[0] <= px + pw and py <= centre[1] <= py + ph]
        found[which] = face["predicted"]
        assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert found == expected
    assert entry["predicted"] == entry["faces"][0]["predicted"]          # the file's answer: its largest face
    assert entry["faces"][0]["box"][2] == max(f["box"][2] for f in entry["faces"])
    # The annotated copy: the same size as the photo, red boxes drawn where the faces are.
    drawn = np.asarray(Image.open(tmp_path / "annotated" / "group.jpg").convert("RGB")).astype(int)
    original = np.asarray(Image.open(tmp_path / "group.jpg").convert("RGB")).astype(int)
    assert drawn.shape == original.shape
    for face in entry["faces"]:
        x, y, w, h = face["box"]
        edge = drawn[y + h // 2, x:x + 2]                                 # the box's left edge (2 pixels), half way down
        assert (edge[:, 0] > 200).all() and (edge[:, 1] < 90).all(), edge
    assert np.abs(drawn - original)[places[1][1] + 100, places[1][0] + 100].sum() < 60   # inside a face: the photo


def test_a_small_image_is_scored_whole_and_a_photo_has_its_faces_found_by_default(external_faces, tmp_path):
    shutil.copy(os.path.join(external_faces, "happy", "feliz.jpg"), tmp_path / "photo.jpg")
    Image.open(tmp_path / "photo.jpg").convert("L").resize((48, 48)).save(tmp_path / "crop.png")
    result = run_script("cnn_eval.py", "photo.jpg", "crop.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    photo, crop = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert crop["faces"][0]["box"] == [0, 0, 48, 48]                     # a face crop already: scored whole
    x, y, w, h = photo["faces"][0]["box"]
    assert len(photo["faces"]) == 1 and w < 252 and h < 336               # the face, found inside the photo
    assert os.listdir(tmp_path / "annotated") == ["photo.jpg"]            # only the photo gets a drawn copy


def _write_video(path, frames_per_photo, photos, fps=10, size=320):
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for photo in photos:
        picture = Image.new("RGB", (size, size), (200, 200, 190))
        face = Image.open(photo).convert("RGB")
        face.thumbnail((size - 40, size - 40))
        picture.paste(face, ((size - face.width) // 2, (size - face.height) // 2))
        frame = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)
        for _ in range(frames_per_photo):
            writer.write(frame)
    writer.release()


def test_a_video_gets_a_timeline_happy_then_surprise(external_faces, tmp_path):
    photos = [os.path.join(external_faces, "happy", "feliz.jpg"), os.path.join(external_faces, "surprise", "surpreso.jpg")]
    _write_video(tmp_path / "clip.mp4", 30, photos)                       # 3 s of each at 10 frames a second
    result = run_script("cnn_eval.py", "clip.mp4", "--annotate=drawn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    frames = entry["frames"]
    assert [f["time_s"] for f in frames] == pytest.approx([i * 0.5 for i in range(12)])   # --fps=2 by default
    assert all(len(f["faces"]) == 1 for f in frames)
    said = [f["faces"][0]["predicted"] for f in frames]
    assert said == ["happy"] * 6 + ["surprise"] * 6, said
    timeline = Image.open(tmp_path / "timeline.png")
    assert timeline.size[0] > 400 and entry["timeline"].endswith("timeline.png")
    import cv2
    drawn = cv2.VideoCapture(str(tmp_path / "drawn" / "clip.mp4"))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == 12                 # the sampled frames, boxes drawn


def test_the_png_with_a_bad_colour_profile_checksum_is_read_without_tensorflow(external_faces, monkeypatch):
    monkeypatch.setattr(cnn_data, "_open_with_tensorflow", lambda path: None)     # as on a JAX-only machine
    pixels = cnn_data.decode_image(os.path.join(external_faces, "angry", "raiva.png"), 48, 48)
    assert pixels.shape == (48, 48) and pixels.std() > 20


def test_hidden_faces_are_pixelated_in_the_annotated_copy_and_nothing_else_changes(external_faces, tmp_path):
    """--hide_faces=True: each found face of the annotated copy is 10 x 10 blocks of one colour, so the
    copy can be shared without the faces; the boxes and labels are drawn as before, and eval.json is unchanged."""
    _group_photo(external_faces, tmp_path / "group.jpg")
    plain = run_script("cnn_eval.py", "group.jpg", "--out=plain.json", "--annotate=plain", cwd=tmp_path)
    hidden = run_script("cnn_eval.py", "group.jpg", "--out=hidden.json", "--annotate=hidden", "--hide_faces=True",
                        cwd=tmp_path)
    assert plain.returncode == 0 and hidden.returncode == 0, hidden.stderr[-2000:]
    (entry,) = json.loads((tmp_path / "hidden.json").read_text())["predictions"]
    assert entry["faces"] == json.loads((tmp_path / "plain.json").read_text())["predictions"][0]["faces"]
    shown = np.asarray(Image.open(tmp_path / "plain" / "group.jpg").convert("RGB")).astype(int)
    drawn = np.asarray(Image.open(tmp_path / "hidden" / "group.jpg").convert("RGB")).astype(int)
    for face in entry["faces"]:
        x, y, w, h = face["box"]
        inside = drawn[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4]      # clear of the box and its label
        block = drawn[y + h // 10 * 4 + 2:y + h // 10 * 5 - 2, x + w // 10 * 4 + 2:x + w // 10 * 5 - 2]
        assert np.abs(block - block[0, 0]).max() < 25                 # one colour a block (JPEG's noise aside)
        assert np.abs(inside - shown[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4]).mean() > 5   # the face is gone
        edge = drawn[y + h // 2, x:x + 2]                               # the red box is still drawn
        assert (edge[:, 0] > 200).all() and (edge[:, 1] < 90).all(), edge
    assert np.abs(drawn[:30] - shown[:30]).mean() < 2                  # the canvas above the photos: untouched
    bad = run_script("cnn_eval.py", "group.jpg", "--hide_faces=yes", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == "error: --hide_faces=yes: expected True or False"
