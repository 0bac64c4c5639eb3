"""Face detection and cropping on real photos, and the contact sheet of cnn_eval.py."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cnn_data
import cnn_faces
import cnn_predict
from conftest import REPO, run_script, write_video



def _photos(external_faces):
    return [os.path.join(external_faces, c, f) for c in sorted(os.listdir(external_faces))
            for f in os.listdir(os.path.join(external_faces, c))]


@pytest.mark.parametrize("detector", cnn_faces.DETECTORS)
def test_a_face_is_found_in_each_real_photo(external_faces, detector):
    for path in _photos(external_faces):
        rgb = np.asarray(cnn_faces.read_picture(path))            # the PNG needs the lenient decoder
        boxes = cnn_faces.find_faces(rgb, detector)
        assert len(boxes) == 1, (path, boxes)             # one person per photo
        x, y, w, h = boxes[0]
        assert min(w, h) >= min(rgb.shape[:2]) / 2, (path, boxes)  # these photos are mostly face
        assert x >= 0 and y >= 0 and x + w <= rgb.shape[1] and y + h <= rgb.shape[0]   # inside the photo


def _compose(external_faces, face_width, canvas=(1600, 1200), texture=False, seed=0):
    """The 8 real photos on one canvas, each scaled so that its face (about 3/4 of the photo's
    width) is face_width pixels wide, on a plain wall or a busy texture of colour blotches.
    Returns the canvas (RGB) and where each photo lies: (class, x, y, w, h)."""
    rng = np.random.default_rng(seed)
    if texture:
        small = rng.integers(0, 256, (canvas[1] // 24, canvas[0] // 24, 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize(canvas, Image.Resampling.BICUBIC)
    else:
        picture = Image.new("RGB", canvas, (200, 200, 190))
    places, x, y, row = [], 30, 30, 0
    for path in _photos(external_faces):
        photo = cnn_faces.read_picture(path)
        width = int(face_width / 0.75)
        photo = photo.resize((width, photo.height * width // photo.width), Image.Resampling.LANCZOS)
        if x + photo.width > canvas[0] - 30:
            x, y, row = 30, y + row + 40, 0
        picture.paste(photo, (x, y))
        places.append((path.split(os.sep)[-2], x, y, photo.width, photo.height))
        x, row = x + photo.width + 50, max(row, photo.height)
    return picture, places


def _which(box, places):
    """The photo a box's centre lies on, or None."""
    x, y, w, h = box
    on = [p for p in places if p[1] <= x + w / 2 <= p[1] + p[3] and p[2] <= y + h / 2 <= p[2] + p[4]]
    return on[0][0] if on else None


@pytest.mark.parametrize("face_width,texture", [(40, False), (80, True), (200, False)])
def test_every_face_of_a_composed_group_is_found_where_it_is(external_faces, face_width, texture):
    """YuNet (the default) finds all 8 faces, small or large, on a plain wall or a busy texture,
    each box on its own photo and about the face's size, with no false face."""
    assert cnn_faces.DEFAULT_DETECTOR == "yunet"
    picture, places = _compose(external_faces, face_width, texture=texture)
    boxes = cnn_faces.find_faces(np.asarray(picture))
    assert sorted(_which(b, places) or "false face" for b in boxes) == sorted(p[0] for p in places), boxes
    assert all(0.5 * face_width <= w <= 1.5 * face_width for _, _, w, _ in boxes), boxes
    assert [w * h for _, _, w, h in boxes] == sorted((w * h for _, _, w, h in boxes), reverse=True)


def test_the_haar_cascade_misses_small_faces_that_yunet_and_mtcnn_find(external_faces):
    """Why Haar is not the default: at 40 pixels it finds fewer of the 8 faces than YuNet and MTCNN,
    which find them all."""
    picture, places = _compose(external_faces, 40)
    found = {d: {_which(b, places) for b in cnn_faces.find_faces(np.asarray(picture), d)} - {None}
             for d in cnn_faces.DETECTORS}
    assert len(found["yunet"]) == len(found["mtcnn"]) == 8 and len(found["haar"]) < 8, found


def test_a_small_face_in_a_big_photo_is_cut_out_where_it_is(external_faces):
    face = cnn_faces.read_picture(os.path.join(external_faces, "neutral", "neutro.jpg")).convert("L")
    canvas = Image.new("L", (1600, 1200), 90)
    canvas.paste(face, (1100, 700))                     # face photo at x 1100..1352, y 700..1005
    ((x, y, w, h), pixels), = cnn_faces.faces_in(canvas.convert("RGB"), (48, 48))
    assert 1100 <= x <= 1200 and 700 <= y <= 850 and 150 <= max(w, h) <= 300
    background = lambda p: np.mean(np.abs(p.astype(int) - 90) <= 3)
    assert pixels.shape == (48, 48)
    assert background(np.asarray(canvas.resize((48, 48)))) > 0.8     # the photo is mostly empty canvas ...
    assert background(pixels) < 0.35                                  # ... the crop is the face


def test_no_face_gives_no_entry_in_the_api_and_the_whole_image_on_the_command_line(tmp_path):
    path = tmp_path / "wall.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))).save(path)
    assert cnn_faces.detect_emotions(str(path)) == []
    assert cnn_faces.detect_emotions(np.full((300, 400, 3), 128, np.uint8)) == []
    result = run_script("cnn_eval.py", "wall.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "note: wall.png: no face found; using the whole image" in result.stdout
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert entry["faces"][0]["box"] == [0, 0, 200, 150]


# ------------------------------------------------------------------ the Python API

def test_the_api_gives_the_same_faces_from_a_path_a_pil_image_and_an_array(external_faces, tmp_path):
    picture, places = _compose(external_faces, 120, canvas=(1400, 700))
    picture.save(tmp_path / "group.png")
    from_path = cnn_faces.detect_emotions(str(tmp_path / "group.png"))
    from_pil = cnn_faces.detect_emotions(picture)
    from_array = cnn_faces.detect_emotions(np.asarray(picture))
    assert len(from_path) == len(places) == 8
    assert from_path == from_pil == from_array
    for face in from_path:
        assert set(face) == {"box", "emotions"} and _which(face["box"], places)
        assert list(face["emotions"]) == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
        assert abs(sum(face["emotions"].values()) - 1) < 1e-4
    areas = [w * h for _, _, w, h in (f["box"] for f in from_path)]
    assert areas == sorted(areas, reverse=True)                         # largest first
    grey = cnn_faces.detect_emotions(np.asarray(picture.convert("L")))  # HxW grey: the same faces, near
    assert len(grey) == 8 and all(_which(f["box"], places) for f in grey)


def test_the_api_loads_the_model_and_the_detector_once(external_faces, monkeypatch):
    loads = []
    real = cnn_predict.load_models
    monkeypatch.setattr(cnn_predict, "load_models", lambda paths, load_keras: loads.append(paths) or real(paths, load_keras))
    monkeypatch.setattr(cnn_faces, "_LOADED_MODELS", {})
    photo = np.asarray(cnn_faces.read_picture(os.path.join(external_faces, "happy", "feliz.jpg")))
    answers = [cnn_faces.detect_emotions(photo) for _ in range(3)]
    assert len(loads) == 1 and answers[0] == answers[1] == answers[2]
    (size, detector), = ((s, d) for s, d in cnn_faces._LOADED_DETECTORS["yunet"].items() if s[::-1] == photo.shape[:2])
    cnn_faces.detect_emotions(photo[::2, ::2].copy())    # another size: a detector of its own, the first one kept
    cnn_faces.detect_emotions(photo)
    assert cnn_faces._LOADED_DETECTORS["yunet"][size] is detector and len(loads) == 1
    assert len(cnn_faces._LOADED_DETECTORS["yunet"]) <= cnn_faces.YUNET_SIZES
    (face,) = answers[0]
    assert max(face["emotions"], key=face["emotions"].get) == "happy"


def test_the_api_says_what_is_wrong_in_one_line(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    cases = [
        (str(tmp_path / "missing.jpg"), {}, f"{tmp_path / 'missing.jpg'}: no such file"),
        (str(tmp_path), {}, f"{tmp_path}: a folder where an image file is expected"),
        (str(tmp_path / "notes.jpg"), {}, f"{tmp_path / 'notes.jpg'}: not an image file"),
        (np.zeros((10, 10, 3), np.float32), {}, "the array: pixels of type float32; expected uint8"),
        (np.zeros((10, 10, 2), np.uint8), {}, "the array: shape (10, 10, 2); expected HxWx3 RGB"),
        (np.zeros((0, 10), np.uint8), {}, "the array: shape (0, 10); an empty picture"),
        ([1, 2, 3], {}, "a picture of type list; expected a path, a PIL image or a NumPy array"),
        (np.zeros((60, 60), np.uint8), {"detector": "dlib"}, "detector 'dlib': expected one of yunet, mtcnn, haar"),
        (np.zeros((60, 60), np.uint8), {"model": str(tmp_path / "none.keras")}, f"{tmp_path / 'none.keras'}: no such model file"),
        (np.zeros((60, 60), np.uint8), {"tta": "twice"}, "tta 'twice': expected one of none, flip, crops"),
    ]
    for image, options, message in cases:
        with pytest.raises(cnn_faces.FaceError) as error:
            cnn_faces.detect_emotions(image, **options)
        assert str(error.value).startswith(message), (str(error.value), message)
        assert "\n" not in str(error.value)


def test_the_api_works_from_another_folder_with_the_checkout_on_the_path(external_faces, tmp_path):
    """As a user's own program uses it: the same faces from a path and from an array."""
    script = tmp_path / "mine.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "import cnn_faces\n"
        "by_path = cnn_faces.detect_emotions(sys.argv[1])\n"
        "by_array = cnn_faces.detect_emotions(np.asarray(Image.open(sys.argv[1]).convert('RGB')))\n"
        "assert by_path == by_array and len(by_path) == 1, (by_path, by_array)\n"
        "print('happiest:', max(by_path[0]['emotions'], key=by_path[0]['emotions'].get))\n")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(script), os.path.join(external_faces, "happy", "feliz.jpg")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "happiest: happy" in result.stdout


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
    assert "no log/model.keras here: scoring with the fast model" in result.stdout
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


def test_a_video_gets_a_timeline_happy_then_surprise(external_faces, tmp_path):
    photos = [os.path.join(external_faces, "happy", "feliz.jpg"), os.path.join(external_faces, "surprise", "surpreso.jpg")]
    write_video(tmp_path / "clip.mp4", 30, photos)                       # 3 s of each at 10 frames a second
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
        # the fifth block of ten down and across: from 0.4 to 0.5 of the box, as a nearest-pixel resize places it
        block = drawn[y + int(0.4 * h) + 3:y + int(0.5 * h) - 2, x + int(0.4 * w) + 3:x + int(0.5 * w) - 2]
        assert np.abs(block - block[0, 0]).max() < 25                 # one colour a block (JPEG's noise aside)
        assert np.abs(inside - shown[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4]).mean() > 5   # the face is gone
        edge = drawn[y + h // 2, x:x + 2]                               # the red box is still drawn
        assert (edge[:, 0] > 200).all() and (edge[:, 1] < 90).all(), edge
    assert np.abs(drawn[:30] - shown[:30]).mean() < 2                  # the canvas above the photos: untouched
    bad = run_script("cnn_eval.py", "group.jpg", "--hide_faces=yes", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == "error: --hide_faces=yes: expected True or False"


def test_the_detector_is_chosen_on_the_command_line_and_a_wrong_one_is_said(external_faces, tmp_path):
    """--detector=haar scores with the Haar cascade (eval.json says which); a name it does not know is one line."""
    _group_photo(external_faces, tmp_path / "group.jpg")
    result = run_script("cnn_eval.py", "group.jpg", "--detector=haar", "--annotate=False", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["detector"] == "haar"
    expected = cnn_faces.find_faces(np.asarray(cnn_faces.read_picture(str(tmp_path / "group.jpg"))), "haar")
    assert [f["box"] for f in report["predictions"][0]["faces"]] == [list(b) for b in expected]
    bad = run_script("cnn_eval.py", "group.jpg", "--detector=dlib", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == \
        "error: --detector=dlib: expected one of: yunet, mtcnn, haar"


def test_a_missing_or_unreadable_file_is_named_and_skipped_and_the_rest_are_scored(external_faces, tmp_path):
    shutil.copy(os.path.join(external_faces, "happy", "feliz.jpg"), tmp_path / "photo.jpg")
    (tmp_path / "notes.jpg").write_text("not an image")
    result = run_script("cnn_eval.py", "photo.jpg", "gone.jpg", "notes.jpg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped gone.jpg: no such file" in result.stdout
    assert "skipped notes.jpg: not an image file" in result.stdout
    (entry,) = json.loads((tmp_path / "eval.json").read_text())["predictions"]
    assert entry["path"] == "photo.jpg" and entry["predicted"] == "happy"


def _iou(box, other):
    (x, y, w, h), (u, v, s, t) = box, other
    across = max(0, min(x + w, u + s) - max(x, u)) * max(0, min(y + h, v + t) - max(y, v))
    return across / (w * h + s * t - across)


def test_faces_followed_between_searches_are_where_a_search_finds_them_and_a_new_face_is_found_at_the_next(
        external_faces, monkeypatch):
    """30 frames a second of three faces drifting 2 pixels a frame, a fourth coming into view at
    frame 5: MTCNN searches every 0.5 s and follows the faces in between (searching at once where
    it loses one). Each followed box lies on a face a search of that frame finds; the newcomer is
    found by frame 15, the next search, and a face that leaves the picture at frame 25 is gone
    from that frame on."""
    photos = [cnn_faces.read_picture(p).resize((150, 180)) for p in _photos(external_faces)[:4]]

    def picture(k):
        canvas = Image.new("RGB", (800, 480), (200, 200, 190))
        for i, photo in enumerate(photos[:3] if k < 25 else photos[1:3]):
            canvas.paste(photo, (40 + 2 * k + 190 * (i + (k >= 25)), 60))
        if k >= 5:
            canvas.paste(photos[3], (620, 260))
        return np.asarray(canvas)

    searched = []
    search = cnn_faces.find_faces
    monkeypatch.setattr(cnn_faces, "find_faces", lambda rgb, d=None, video=False: searched.append(1) or search(rgb, d))
    followed = list(cnn_faces.followed_faces(((k / 30, picture(k)) for k in range(30)), "mtcnn", 0.5))
    counts = [len(boxes) for _, _, boxes in followed]
    assert counts[:5] == [3] * 5 and counts[15:25] == [4] * 10 and counts[25:] == [3] * 5, counts
    assert set(counts[5:15]) <= {3, 4}, counts
    assert len(searched) <= 8, len(searched)          # not 30: most frames are followed
    for k in (3, 10, 20, 29):
        truth = search(picture(k), "mtcnn")
        for box in followed[k][2]:
            assert max(_iou(box, t) for t in truth) > 0.6, (k, box, truth)


def test_the_timeline_draws_each_class_where_its_probability_is(tmp_path):
    """draw_timeline's picture, read back: the first class's line (blue) lies high while its
    probability is 0.9 and low once it is 0.1; the second class's (orange) the other way."""
    import cnn_photos
    times = [k * 0.5 for k in range(20)]
    rows = [[0.9, 0.1, 0.0] if k < 10 else [0.1, 0.9, 0.0] for k in range(20)]
    cnn_photos.draw_timeline([("person 1", times, rows)], ["happy", "surprise", "sad"], str(tmp_path / "timeline.png"),
                             "a clip")
    picture = np.asarray(Image.open(tmp_path / "timeline.png").convert("RGB")).astype(int)
    width = picture.shape[1]

    def height_of(colour, columns):
        near = np.abs(picture[:, columns] - colour).sum(axis=-1) < 60
        ys, _ = np.nonzero(near)
        assert len(ys) > 20, colour
        return np.median(ys)                      # rows count down: a smaller row is higher up

    left, right = slice(width // 6, width // 3), slice(2 * width // 3, 5 * width // 6)
    blue, orange = (31, 119, 180), (255, 127, 14)
    assert height_of(blue, left) < height_of(blue, right) - 100
    assert height_of(orange, left) > height_of(orange, right) + 100

    # A second person, out of sight from 2 s to 6 s of the 9.5: nothing is drawn across the gap.
    seen = [k for k in range(20) if not 4 < k < 12]
    cnn_photos.draw_timeline([("person 1", times, rows), ("person 2", [times[k] for k in seen], [rows[k] for k in seen])],
                             ["happy", "surprise", "sad"], str(tmp_path / "two.png"), "two people")
    picture = np.asarray(Image.open(tmp_path / "two.png").convert("RGB")).astype(int)
    lower = picture[picture.shape[0] // 2:]
    coloured = lambda columns: (np.abs(lower[:, columns, None] - np.array([blue, orange])).sum(axis=-1) < 60).sum()
    gap = slice(int(50 + 730 * 2.2 / 9.5), int(50 + 730 * 5.8 / 9.5))      # the plot spans x = 50 to 780
    assert coloured(gap) == 0 and coloured(slice(60, 200)) > 100
