"""Face detection and cropping on real photos, and the contact sheet of cnn_eval.py."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import cnn_data
from conftest import run_script

pytest.importorskip("cv2", reason="face detection needs opencv-python-headless (requirements-test.txt)")


def _photos(external_faces):
    return [os.path.join(external_faces, c, f) for c in sorted(os.listdir(external_faces))
            for f in os.listdir(os.path.join(external_faces, c))]


def test_a_face_is_found_in_each_real_photo(external_faces):
    for path in _photos(external_faces):
        gray = np.asarray(Image.open(path).convert("L")) if not path.endswith(".png") else \
            cnn_data.decode_image(path, 274, 262)        # the PNG needs the lenient decoder
        box = cnn_data.find_face(gray)
        assert box is not None, path
        x, y, size = box
        assert size >= min(gray.shape) / 2, (path, box)  # these photos are mostly face


def test_a_small_face_in_a_big_photo_is_cropped_where_it_is(external_faces, tmp_path):
    face = Image.open(os.path.join(external_faces, "neutral", "neutro.jpg")).convert("L")
    canvas = Image.new("L", (1600, 1200), 90)
    canvas.paste(face, (1100, 700))                     # face photo at x 1100..1352, y 700..1005
    path = tmp_path / "group.jpg"
    canvas.save(path)
    x, y, size = cnn_data.find_face(np.asarray(canvas))
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
