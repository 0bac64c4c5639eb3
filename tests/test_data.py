"""cnn_data: decoding any image to grayscale, reporting bad files, augment_dataset, class_weights."""
import os

import numpy as np
import pytest
from PIL import Image

import cnn_data
import cnn_params
import cnn_split


# ------------------------------------------------------------------ augment_dataset and class_weights

def _toy_set(counts, size=8, value=128):
    rng = np.random.default_rng(0)
    images = [rng.integers(value - 20, value + 20, size=(n, size, size, 1)).astype(np.uint8) for n in counts]
    labels = np.concatenate([np.full(n, c, dtype=np.int32) for c, n in enumerate(counts)])
    return np.concatenate(images), labels


def test_augment_dataset_balances_to_the_largest_class_exactly(capsys):
    images, labels = _toy_set([10, 4, 7, 10])
    out_images, out_labels = cnn_data.augment_dataset(images, labels, ["a", "b", "c", "d"], noise_std=50, seed=1)
    assert np.bincount(out_labels).tolist() == [10, 10, 10, 10]     # 4 images can grow to 16, 7 to 28
    assert out_images.shape == (40, 8, 8, 1) and out_images.dtype == np.uint8
    # The originals come first, unchanged.
    assert np.array_equal(out_images[:31], images)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["a", "b", "c", "d", "total"]
    assert lines[2].split() == ["A", "10", "4", "7", "10", "31"] and lines[3].split() == ["D", "10", "10", "10", "10", "40"]


# The 8-class report's Table 1: its training faces per class before (A) and after (D) augment_dataset,
# C1-C8 = angry, disgust, fear, happy, negative, neutral, sad, surprise.
TABLE_1_A = [501, 377, 336, 746, 1618, 115, 424, 404]
TABLE_1_D = [1618, 1508, 1344, 1618, 1618, 460, 1618, 1616]


def test_augment_dataset_gives_table_1_of_the_8_class_report(capsys):
    images, labels = _toy_set(TABLE_1_A, size=2)
    _, out_labels = cnn_data.augment_dataset(images, labels, [f"C{i}" for i in range(1, 9)], seed=0)
    assert np.bincount(out_labels).tolist() == TABLE_1_D
    printed = capsys.readouterr().out.splitlines()
    assert printed[2].split() == ["A", *map(str, TABLE_1_A), "4521"]
    assert printed[3].split() == ["D", *map(str, TABLE_1_D), "11400"]


def test_class_weights_on_table_1_after_augment_dataset():
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(TABLE_1_D)])
    weights = cnn_data.class_weights(labels, 8)
    assert weights[5] == 2.0                                      # neutral, 460: the rarest
    assert [weights[c] for c in (0, 3, 4, 6)] == [1.0] * 4        # the classes at 1,618
    assert weights[1] == pytest.approx(2 - (1508 - 460) / (1618 - 460))


def _nearest(sources, image):
    """Index of the source nearest to image, and the mean absolute difference to it."""
    distance = np.abs(sources.astype(float) - image.astype(float)).mean(axis=(1, 2, 3))
    return int(distance.argmin()), float(distance.min())


def test_augment_dataset_flips_first_then_adds_noise():
    images, labels = _toy_set([10, 4, 7])
    out_images, out_labels = cnn_data.augment_dataset(images, labels, ["a", "b", "c"], noise_std=50, seed=1)
    added = out_images[len(images):]
    added_labels = out_labels[len(images):]
    mirrors = {c: [img[:, ::-1].tobytes() for img in images[labels == c]] for c in range(3)}
    # Class b (4 images, needs 6): 4 flipped copies, one per image, then 2 noisy ones, of its first two faces
    # (which face: the next test, on faces far apart).
    b = added[added_labels == 1]
    assert sorted(x.tobytes() for x in b[:4]) == sorted(mirrors[1])
    for noisy, source in zip(b[4:], images[labels == 1]):
        assert np.abs(noisy.astype(float) - source).mean() > 25      # noise of std 50 on top of it
    # Class c (7 images, needs 3): flipped copies only, never more than it needs.
    c = added[added_labels == 2]
    assert len(c) == 3 and all(x.tobytes() in mirrors[2] for x in c)


def test_augment_dataset_noise_has_the_asked_std_on_each_original_then_each_mirror():
    # Faces far apart (each its own random texture), so that a noisy copy of the wrong face shows.
    rng = np.random.default_rng(0)
    images = rng.integers(60, 196, (500, 16, 16, 1)).astype(np.uint8)
    labels = np.array([0] * 400 + [1] * 100, dtype=np.int32)
    out_images, out_labels = cnn_data.augment_dataset(images, labels, ["a", "b"], noise_std=50, seed=3)
    assert np.bincount(out_labels).tolist() == [400, 400]
    flipped = out_images[500:600]
    noisy = out_images[600:].astype(float)
    sources = np.concatenate([images[400:], flipped]).astype(float)   # each original, then each mirror, once
    residual = noisy - sources
    assert 47 < residual.std() < 51           # 50, a little less where 0 and 255 clip
    assert abs(residual.mean()) < 1
    # Each noisy copy is nearer its own source than any other face of either class.
    candidates = np.concatenate([images, flipped])
    assert [_nearest(candidates, n)[0] for n in noisy] == list(range(400, 600))


def test_class_weights_follow_the_report_formula():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 7)
    weights = cnn_data.class_weights(labels, 3)
    assert weights == pytest.approx({0: 1.0, 1: 2.0, 2: 1.5})
    assert cnn_data.class_weights(np.array([0, 0, 1, 1]), 2) == {0: 1.0, 1: 1.0}


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = np.array([0] * 100 + [1] * 50 + [2] * 10)
    train, val = cnn_split.stratified_split(labels, 0.2, seed=5)
    assert np.bincount(labels[val]).tolist() == [20, 10, 2]
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 160
    again, _ = cnn_split.stratified_split(labels, 0.2, seed=5)
    other, _ = cnn_split.stratified_split(labels, 0.2, seed=6)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_a_smaller_stratified_split_holds_out_part_of_a_larger_one():
    """bench/compare.py scores models of one seed and different splits on the smaller
    split's faces, as faces that every one of them held out, and a teacher or a model to
    fine-tune may have held out a larger split than its student: that holds only if they nest."""
    labels = np.array([0] * 97 + [1] * 13 + [2] * 41)
    _, small = cnn_split.stratified_split(labels, 0.1, seed=1337)
    train, large = cnn_split.stratified_split(labels, 0.2, seed=1337)
    assert len(small) == 10 + 1 + 4 and set(small) < set(large) and not set(small) & set(train)
    # cnn_split.holds_out, which teachers, fine-tunes and compare.py go by, says the same as the faces.
    runs = [dict(seed=seed, validation_split=share, split_order="shuffled", drop_blank=False, balance_count=0)
            for seed in (1337, 7) for share in (0.0, 0.1, 0.2, 0.3)]
    held = {i: set(cnn_split.stratified_split(labels, run["validation_split"], run["seed"])[1]) for i, run in enumerate(runs)}
    for i, a in enumerate(runs):
        for j, b in enumerate(runs):
            if b["validation_split"] > 0:           # a run that holds out nothing has no faces to keep from anyone
                assert cnn_split.holds_out(a, b) == (held[j] <= held[i]), (a, b)
    assert not cnn_split.holds_out(dict(runs[2], drop_blank=True), runs[2])    # blank faces left out: other faces split


def test_name_order_split_holds_out_the_first_files_by_name_as_image_data_generator(tmp_path):
    """ImageDataGenerator(validation_split=0.2) gives its validation subset each class's first
    int(0.2 * n) files in name order, and trains on the rest: the FER-2013 report's split.
    The names here sort otherwise than they were written, and a blank face the report
    removed before splitting is left out before the split, as there."""
    names = {"happy": ["b7", "a10", "a2", "c1", "a1", "b0", "z", "d4", "e5", "a3", "blank"],
             "sad": ["9", "10", "1", "x", "05", "2"]}
    for c, files in names.items():
        (tmp_path / "train" / c).mkdir(parents=True)
        for i, name in enumerate(files):
            face = np.zeros((48, 48), np.uint8) + 100 if name == "blank" else _face_like(48, 48) + i
            Image.fromarray(face).save(tmp_path / "train" / c / f"{name}.png")
    p = cnn_params.get_params([f"--data_dir={tmp_path}", "--split_order=name", "--drop_blank=True",
                               "--validation_split=0.2"])
    data = cnn_data.load_dataset(p)
    held = [os.path.basename(path) for path in data["val"][2]]
    trained = [os.path.basename(path) for path in data["train"][2]]
    # happy: 10 faces (the blank one gone), int(2.0) = 2 held out; sad: 6, int(1.2) = 1.
    assert held == ["a1.png", "a10.png", "05.png"]
    assert sorted(trained) == sorted(f"{n}.png" for c in names for n in names[c]
                                     if n != "blank" and f"{n}.png" not in held)
    assert data["val"][1].tolist() == [0, 0, 1]
    # No seed draws it: another seed holds out the same faces, where the shuffled split moves.
    other = cnn_data.load_dataset(dict(p, seed=7))
    assert other["val"][2] == data["val"][2]
    shuffled = [cnn_data.load_dataset(dict(p, split_order="shuffled", seed=s))["val"][2] for s in (1, 2, 3)]
    assert any(v != data["val"][2] for v in shuffled)


def test_holds_out_knows_name_order_splits_nest_and_differ_from_shuffled_ones():
    labels = np.array([0] * 57 + [1] * 23)
    name = dict(seed=1337, split_order="name", drop_blank=False, balance_count=0)
    _, small = cnn_split.name_order_split(labels, 0.1)
    train, large = cnn_split.name_order_split(labels, 0.2)
    assert len(large) == 11 + 4 and set(small) < set(large) and not set(large) & set(train)
    assert cnn_split.holds_out(dict(name, validation_split=0.2, seed=7), dict(name, validation_split=0.1))
    assert not cnn_split.holds_out(dict(name, validation_split=0.1), dict(name, validation_split=0.2))
    shuffled = dict(name, split_order="shuffled")
    assert not cnn_split.holds_out(dict(name, validation_split=0.2), dict(shuffled, validation_split=0.2))
    assert not cnn_split.holds_out(dict(shuffled, validation_split=0.2), dict(name, validation_split=0.2))
    # A model saved before --split_order existed stores none: it split shuffled.
    before = dict(seed=1337, validation_split=0.2, drop_blank=False, balance_count=0)
    assert cnn_split.holds_out(before, dict(shuffled, validation_split=0.2))
    assert not cnn_split.holds_out(before, dict(name, validation_split=0.2))


# ------------------------------------------------------------------ decoding

def _face_like(w=120, h=100):
    """A grey ramp: a known mean after any resize."""
    return np.tile(np.linspace(40, 200, w).astype(np.uint8), (h, 1))


def test_unusual_but_valid_images_decode_to_grayscale(tmp_path):
    ramp = _face_like()
    files = {}
    # RGBA: fully transparent left half must become white, not black.
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[..., :3] = 60
    rgba[:, 60:, 3] = 255
    files["rgba.png"] = Image.fromarray(rgba, "RGBA")
    files["palette.png"] = Image.fromarray(ramp).convert("P")
    files["sixteen.png"] = Image.fromarray(ramp.astype(np.uint16) * 257)
    files["cmyk.jpg"] = Image.fromarray(ramp).convert("CMYK")
    files["progressive.jpg"] = Image.fromarray(ramp).convert("RGB")
    files["plain.bmp"] = Image.fromarray(ramp).convert("RGB")
    files["big.jpg"] = Image.fromarray(ramp).resize((4000, 3000)).convert("RGB")
    for name, img in files.items():
        img.save(tmp_path / name, **({"progressive": True} if name == "progressive.jpg" else {}))
    frames = [Image.fromarray(ramp).convert("P"), Image.fromarray(np.full((100, 120), 250, np.uint8)).convert("P")]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])

    for name in list(files) + ["animated.gif"]:
        pixels = cnn_data.decode_image(str(tmp_path / name), 48, 48)
        assert pixels.shape == (48, 48) and pixels.dtype == np.uint8, name
        if name == "rgba.png":
            assert pixels[:, :20].mean() > 250 and abs(pixels[:, 30:].mean() - 60) < 3
        else:   # first GIF frame, 16-bit scaled (not clipped), CMYK and palette all give the ramp
            assert abs(pixels.mean() - ramp.mean()) < 6, (name, pixels.mean())
            assert pixels[:, 0].mean() < pixels[:, -1].mean() - 100, name


def test_real_photos_decode(external_faces):
    for name in sorted(os.listdir(external_faces)):
        folder = os.path.join(external_faces, name)
        for f in os.listdir(folder):
            pixels = cnn_data.decode_image(os.path.join(folder, f), 96, 96)
            assert pixels.shape == (96, 96) and pixels.std() > 10, f


def _plant_bad_files(folder):
    """Each kind of bad file the toolkit must report and skip; returns {path: expected words}."""
    good = np.asarray(Image.fromarray(_face_like()).convert("RGB"))
    Image.fromarray(good).save(folder / "whole.jpg")
    data = (folder / "whole.jpg").read_bytes()
    bad = {
        folder / "zero.jpg": b"",
        folder / "truncated.jpg": data[: len(data) // 2],
        folder / "text.jpg": b"this is not a picture\n",
        folder / ".DS_Store": b"\x00\x00\x00\x01Bud1" + b"\x00" * 100,
        folder / "notes.txt": b"remember the milk\n",
    }
    for path, content in bad.items():
        path.write_bytes(content)
    return {str(path): words for path, words in zip(bad, ["empty file", "truncated", "not an image",
                                                          "not an image", "not an image"])}


def test_bad_files_are_reported_once_and_skipped(tmp_path, capfd):
    folder = tmp_path / "train" / "happy"
    folder.mkdir(parents=True)
    expected = _plant_bad_files(folder)
    files, classes = cnn_data.list_split(str(tmp_path / "train"))
    images, names, paths, skipped = cnn_data.load_images(files, 48, 48)
    out, err = capfd.readouterr()       # capfd: the JPEG library writes to the process's stderr itself
    assert "JPEG" not in err, err       # our one line per file, without the decoders' complaints around it
    assert len(images) == 1 and paths == [str(folder / "whole.jpg")]
    # A hidden file (.DS_Store) is not a face: left out of the list, and said once for the split.
    hidden = str(folder / ".DS_Store")
    assert hidden not in [path for path, _ in files]
    assert f"note: {tmp_path / 'train'}: 1 hidden file or folder (a name starting with '.') left out" in out
    assert {path for path, _ in skipped} == set(expected) - {hidden}
    for path, words in expected.items():
        if path == hidden:
            continue
        reason = dict(skipped)[path]
        assert words in reason, (path, reason)
        assert out.count(path) == 1           # reported once, by path
    assert "using 1 of 5 files (4 skipped)" in out


def test_a_png_with_a_bad_metadata_checksum_is_still_read(tmp_path):
    """Pillow refuses a PNG whose colour-profile chunk fails its checksum ("cannot identify");
    TensorFlow's decoder reads its pixels, so the face is kept, not skipped."""
    from PIL import ImageCms
    face = _face_like(48, 48)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(face).convert("RGB").save(tmp_path / "face.png", icc_profile=profile)
    data = bytearray((tmp_path / "face.png").read_bytes())
    at = data.find(b"iCCP")
    data[at + 4 + int.from_bytes(data[at - 4:at], "big")] ^= 0xFF       # the chunk's CRC, after its data
    (tmp_path / "bad_crc.png").write_bytes(bytes(data))
    with pytest.raises(Exception):
        Image.open(tmp_path / "bad_crc.png").load()
    assert np.array_equal(cnn_data.decode_image(str(tmp_path / "bad_crc.png"), 48, 48), face)


def test_blank_images_are_found_and_dropped_only_when_asked(tmp_path, capsys):
    folder = tmp_path / "train" / "neutral"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(folder / "black.png")
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(folder / "grey.png")
    Image.fromarray(_face_like()).save(folder / "face.png")
    files, _ = cnn_data.list_split(str(tmp_path / "train"))
    kept, *_ = cnn_data.load_images(files, 48, 48, drop_blank=False)
    out = capsys.readouterr().out
    assert len(kept) == 3 and out.count("blank image") == 2
    dropped, _, paths, skipped = cnn_data.load_images(files, 48, 48, drop_blank=True)
    assert len(dropped) == 1 and paths == [str(folder / "face.png")]
    assert sorted(os.path.basename(p) for p, _ in skipped) == ["black.png", "grey.png"]


def test_fer2013_blank_scan_finds_the_known_blank_images(fer2013_dir, capsys):
    files, _ = cnn_data.list_split(os.path.join(fer2013_dir, "train"))
    angry = [f for f in files if f[1] in ("angry", "neutral")]
    _, _, _, skipped = cnn_data.load_images(angry, 48, 48, drop_blank=True)
    names = sorted(os.path.basename(p) for p, _ in skipped)
    # The dataset README lists 7 black angry images, 1 black and 1 near-uniform grey neutral one.
    assert names == sorted(["Training_10131352.jpg", "Training_28756096.jpg", "Training_32571770.jpg",
                            "Training_52563817.jpg", "Training_78540321.jpg", "Training_96772745.jpg",
                            "Training_99531165.jpg", "Training_89335926.jpg", "Training_3542668.jpg"])


def _dataset_with(tmp_path, train_classes, test_classes, n=4):
    for split, classes in (("train", train_classes), ("test", test_classes)):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n if classes[c] else 0):
                Image.fromarray(_face_like() + i).save(tmp_path / split / c / f"{i}.png")
    return cnn_params.get_params([f"--data_dir={tmp_path}", "--img_height=48", "--img_width=48",
                                  "--validation_split=0.25", "--seed=0"])


def test_empty_missing_and_unknown_class_folders_are_reported(tmp_path, capsys):
    p = _dataset_with(tmp_path, {"happy": 1, "sad": 1, "fear": 0}, {"happy": 1, "angry": 1})
    data = cnn_data.load_dataset(p)
    out = capsys.readouterr().out
    assert data["classes"] == ["happy", "sad"]
    assert "train/fear is empty" in out
    assert "test/angry is not a class of train/" in out
    assert "has no sad/ folder" in out
    images, labels, paths = data["test"]
    assert len(images) == 4 and set(labels) == {0} and all("/happy/" in p for p in paths)


# ------------------------------------------------------------------ batches without TensorFlow

def test_array_batches_shuffle_augment_and_train_like_the_tf_pipeline():
    """array_batches is what make_dataset returns where TensorFlow is not installed
    (Keras on JAX on a GPU machine). Run on any backend: CI's TensorFlow, or JAX,
    where the augmenter is compiled."""
    import keras
    import cnn_model
    n, size = 200, 48
    labels = np.arange(n) % 2
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, :, :, 0] = (np.arange(n) % 250)[:, None, None]      # pixel value = which image
    images[labels == 1, 20:28, 20:28] = 255                          # class 1: a bright square
    batches = cnn_data.array_batches(images, labels, 2, 64, training=True, seed=3, epochs=(0, 2))
    assert len(batches) == 8                                         # 64 + 64 + 64 + 8, twice
    x, y = batches[3]
    assert x.shape == (8, size, size, 1) and y.shape == (8, 2)

    def epoch(batches, e, steps=4):
        xs, ys = zip(*(batches[i] for i in range(e * steps, (e + 1) * steps)))
        return np.concatenate([np.asarray(x) for x in xs]), np.concatenate(ys)

    first, first_y = epoch(batches, 0)
    assert sorted(first[:, 0, 0, 0]) == sorted(images[:, 0, 0, 0].astype(np.float32))   # each image once
    assert np.array_equal(first_y.argmax(1), first[:, 0, 0, 0].astype(int) % 250 % 2)   # labels follow
    second, _ = epoch(batches, 1)
    assert not np.array_equal(first[:, 0, 0, 0], second[:, 0, 0, 0])                    # a new order
    resumed = cnn_data.array_batches(images, labels, 2, 64, training=True, seed=3, epochs=(1, 2))
    assert np.array_equal(epoch(resumed, 0)[0], second)              # a run resumed at epoch 1 sees epoch 1

    p = cnn_params.get_params(["--experiment=fer_sota"])
    augmented = cnn_data.array_batches(images, labels, 2, 64, augmenter=cnn_data.live_augmenter(p, 1))
    x0, again = np.asarray(augmented[0][0]), np.asarray(augmented[0][0])
    assert x0.shape == (64, size, size, 1) and np.allclose(x0, again)                   # batch 0's own draws
    assert not np.allclose(x0, images[:64])                                              # augmented
    assert np.allclose(np.sort(x0[1].ravel())[:100], 1)     # flips, shifts: still image 1's pixels

    keras.utils.set_random_seed(0)
    model = cnn_model.build_model(cnn_params.PRESETS["conv3"], (size, size, 1), 2)
    cnn_model.compile_model(model, cnn_params.get_params(["--learning_rate=0.001"]))
    model.fit(cnn_data.array_batches(images, labels, 2, 64, training=True, seed=3, epochs=(0, 8)),
              epochs=8, steps_per_epoch=4, verbose=0)
    predicted = cnn_model.predict(model, images).argmax(1)
    assert (predicted == labels).mean() > 0.9


def test_live_augmenter_draws_flip_rotation_and_shift_independently():
    """Each random layer needs its own seed: layers built with the same one draw the
    same numbers, so every mirrored face would be turned one way and every other
    face the other way, and the vertical shift would follow the flip."""
    p = cnn_params.get_params(["--rotation_degrees=20", "--shift_fraction=0.1", "--random_erasing=0"])
    faces = np.zeros((400, 48, 48, 1), np.float32)
    faces[:, 22:27, 6:11] = 255.0                    # a bright spot left of centre, on the middle row
    out = np.asarray(cnn_data.live_augmenter(p, 5)(faces, training=True), np.float32)[..., 0]
    weight = out.sum(axis=(1, 2))
    rows = (out.sum(axis=2) * np.arange(48)).sum(axis=1) / weight
    cols = (out.sum(axis=1) * np.arange(48)).sum(axis=1) / weight
    mirrored = cols > 23.5
    assert 0.35 < mirrored.mean() < 0.65
    # The spot's height after rotation and shift, mirrored or not: both ways in each group.
    for group in (mirrored, ~mirrored):
        assert 0.25 < (rows[group] > 24).mean() < 0.75


def test_zoom_makes_faces_larger_and_smaller_and_is_off_by_default():
    faces = np.zeros((200, 48, 48, 1), np.float32)
    faces[:, 19:29, 19:29] = 255.0                   # a bright 10x10 square in the middle
    sizes = {}
    for zoom in (0.0, 0.2):
        p = cnn_params.get_params(["--rotation_degrees=0", "--shift_fraction=0", f"--zoom_fraction={zoom}"])
        out = np.asarray(cnn_data.live_augmenter(p, 2)(faces, training=True), np.float32)[..., 0]
        sizes[zoom] = (out > 127).sum(axis=(1, 2))  # the square's area in pixels
    assert set(sizes[0.0]) == {100}
    assert (sizes[0.2] < 90).mean() > 0.2 and (sizes[0.2] > 110).mean() > 0.2    # zoomed out and in
    assert sizes[0.2].min() > 100 / 1.2 ** 2 - 10 and sizes[0.2].max() < 100 * 1.2 ** 2 + 10


# ------------------------------------------------------------------ mixup

@pytest.mark.parametrize("pipeline", ["tf.data", "arrays"])
def test_mixup_blends_each_face_with_a_partner_and_its_label_alike(pipeline):
    """Class 0 faces are black, class 1 faces are 200 grey: after mixup a face's
    grey level says how much class 1 it holds, and its label must say the same."""
    if pipeline == "tf.data":
        pytest.importorskip("tensorflow")
        make = cnn_data.make_dataset
    else:
        make = cnn_data.array_batches
    n = 256
    labels = np.arange(n) % 2
    images = (labels * 200).astype(np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 1), np.uint8)

    def epochs(batches, steps=4):
        pairs = [batches[i] for i in range(len(batches))] if pipeline == "arrays" else list(batches)
        return [(np.concatenate([np.asarray(x, np.float32) for x, _ in pairs[e:e + steps]]),
                 np.concatenate([np.asarray(y, np.float32) for _, y in pairs[e:e + steps]]))
                for e in range(0, len(pairs), steps)]

    (x, y), (x2, y2) = epochs(make(images, labels, 2, 64, training=True, seed=4, mixup=0.4, epochs=(0, 2)))
    assert x.shape == (n, 8, 8, 1) and y.shape == (n, 2)
    assert np.allclose(y.sum(1), 1)                                  # still a distribution
    assert np.allclose(x[:, 0, 0, 0] / 200, y[:, 1], atol=1e-4)      # the label follows the pixels
    assert np.allclose(x.std(axis=(1, 2, 3)), 0, atol=1e-3)          # blended, not cut and pasted
    share = y[:, 1]
    blended = (share > 0.02) & (share < 0.98)
    assert 0.2 < blended.mean() < 0.9                                # Beta(0.4, 0.4): most near an end, some mixed
    assert not np.allclose(y, y2)                                    # new draws every epoch
    # The same seed draws the same blends, also for a run resumed at epoch 1; mixup=0 leaves one-hot labels.
    assert np.allclose(epochs(make(images, labels, 2, 64, training=True, seed=4, mixup=0.4))[0][1], y)
    assert np.allclose(epochs(make(images, labels, 2, 64, training=True, seed=4, mixup=0.4, epochs=(1, 2)))[0][1], y2)
    plain = epochs(make(images, labels, 2, 64, training=True, seed=4))[0][1]
    assert set(np.unique(plain)) == {0.0, 1.0}


@pytest.mark.parametrize("pipeline", ["tf.data", "arrays"])
def test_a_teachers_targets_reach_the_batches_as_they_are(pipeline):
    """Distillation hands make_dataset one row of probabilities per face instead of a class:
    each face must arrive with its own row, shuffled alike, and mixup must blend the rows."""
    if pipeline == "tf.data":
        pytest.importorskip("tensorflow")
    make = cnn_data.make_dataset if pipeline == "tf.data" else cnn_data.array_batches
    n = 100
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    targets = np.random.default_rng(0).dirichlet(np.ones(3), n).astype(np.float32)

    def one_epoch(batches):
        pairs = [batches[i] for i in range(len(batches))] if pipeline == "arrays" else list(batches)
        return (np.concatenate([np.asarray(x, np.float32) for x, _ in pairs]),
                np.concatenate([np.asarray(y, np.float32) for _, y in pairs]))

    x, y = one_epoch(make(images, targets, 3, 32, training=True, seed=1))
    which = x[:, 0, 0, 0].astype(int)
    assert not np.array_equal(which, np.arange(n))                   # shuffled ...
    assert np.array_equal(y, targets[which])                         # ... with each face's own row
    x, y = one_epoch(make(images, targets, 3, 32, training=True, seed=1, mixup=0.4))
    assert np.allclose(y.sum(1), 1, atol=1e-5) and not np.isin(y, targets).all()


@pytest.mark.parametrize("pipeline", ["tf.data", "arrays"])
def test_mixup_takes_the_augmenters_bfloat16_faces(pipeline):
    """Under mixed_bfloat16 the live augmenter hands out bfloat16 faces; mixup
    must blend them with float32 shares (it once failed to, at the first batch)."""
    import keras
    make = cnn_data.make_dataset if pipeline == "tf.data" else cnn_data.array_batches
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        augmenter = cnn_data.live_augmenter(cnn_params.get_params(["--experiment=fer_sota"]), seed=3)
        labels = np.arange(64) % 7
        images = np.random.default_rng(0).integers(0, 255, (64, 48, 48, 1), dtype=np.uint8)
        batches = make(images, labels, 7, 32, training=True, augmenter=augmenter, seed=3, mixup=0.2)
        x, y = batches[0] if pipeline == "arrays" else next(iter(batches))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == np.float32 and x.shape == (32, 48, 48, 1)
    assert np.allclose(y.sum(1), 1) and 0 <= x.min() and x.max() <= 255


def test_tf_pipeline_runs_without_the_autotuner():
    """Keras makes a new tf.data iterator every epoch; with the autotuner on, the old
    one's autotune thread could hold the next epoch back for up to a minute (27 % of a
    fer_sota run on a 2-core Xeon). Every dataset make_dataset builds, for training and
    for scoring, must have it off, and still deliver each face once an epoch."""
    pytest.importorskip("tensorflow")
    p = cnn_params.get_params(["--experiment=fer_sota"])
    n = 70
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 48, 48, 1), np.uint8)
    labels = np.arange(n) % 7
    training = cnn_data.make_dataset(images, labels, 7, 32, training=True,
                                     augmenter=cnn_data.live_augmenter(p, 0), seed=1, mixup=0.2)
    scoring = cnn_data.make_dataset(images, labels, 7, 32)
    for ds in (training, scoring):
        assert ds.options().autotune.enabled is False
    seen = np.concatenate([np.asarray(x)[:, 0, 0, 0] for x, _ in scoring])
    assert sorted(seen) == list(range(n))
    assert sum(len(np.asarray(y)) for _, y in training) == n


def test_keras_knows_how_many_batches_each_pipeline_holds():
    """The training stream (several epochs, through flat_map) and the validation pass both state
    their number of batches: without it Keras read the end of every validation pass as data
    running out and warned "Your input ran out of data; interrupting training" in every run."""
    import warnings
    import keras
    pytest.importorskip("tensorflow")
    images, labels = np.zeros((100, 8, 8, 1), np.uint8), np.arange(100) % 7
    training = cnn_data.make_dataset(images, labels, 7, 32, training=True, seed=1, epochs=(1, 3))
    scoring = cnn_data.make_dataset(images, labels, 7, 32)
    assert int(training.cardinality()) == 2 * 4 and int(scoring.cardinality()) == 4
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(training, validation_data=scoring, epochs=2, steps_per_epoch=4, verbose=0)
    assert len(history.history["val_loss"]) == 2
    assert not [w for w in caught if "ran out of data" in str(w.message)]

def test_several_processes_each_take_their_share_and_fill_up_the_last_batch():
    """Two processes, a global batch of 4, 10 faces: 3 steps an epoch as for one process. Each
    process takes its half of every global batch; the short last one is filled up with faces
    weighted 0, so every face is trained (and validated) once an epoch, with its class's weight."""
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 1), np.uint8)
    labels = np.array([0, 1] * 5)
    weights = {0: 1.0, 1: 2.0}
    for training in (True, False):
        one = cnn_data.array_batches(images, labels, 2, 4, training=training, seed=3, epochs=(0, 2))
        shares = [cnn_data.array_batches(images, labels, 2, 4, training=training, seed=3, shard=(i, 2), epochs=(0, 2),
                                         class_weight=weights) for i in (0, 1)]
        assert len(one) == len(shares[0]) == len(shares[1]) == (2 if training else 1) * 3
        for step in range(len(one)):
            whole, _ = one[step]
            (x0, y0, w0), (x1, y1, w1) = shares[0][step], shares[1][step]
            assert x0.shape == x1.shape == (2, 4, 4, 1)
            faces = np.concatenate([x0, x1])[:, 0, 0, 0]
            kept = np.concatenate([w0, w1]) > 0
            assert list(faces[kept]) == list(whole[:, 0, 0, 0])        # the one process's batch, in order
            labels_here = np.concatenate([y0, y1]).argmax(axis=1)
            assert list(np.concatenate([w0, w1])[kept]) == [weights[c] for c in labels_here[kept]]
        seen = [f for step in range(3) for (x, _, w) in (shares[0][step], shares[1][step]) for f, v in zip(x[:, 0, 0, 0], w) if v > 0]
        assert sorted(seen) == list(range(10))                            # every face once in the first epoch
        assert list(shares[0][2][2]) != [0.0, 0.0] and list(shares[1][2][2]) == [0.0, 0.0]   # 10 = 4 + 4 + 2


def test_the_pipeline_without_tensorflow_runs_on_jax():
    """The tests above of array_batches (and its augmenter compiled by jax.jit on JAX), run
    again under KERAS_BACKEND=jax, as on a GPU machine without TensorFlow."""
    import subprocess
    import sys
    from conftest import REPO, require
    require("jax")
    code = ("import sys, keras, pytest; print('backend:', keras.backend.backend()); "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/test_data.py', '-k', 'array_batches or arrays']))")
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "backend: jax" in result.stdout
    assert "4 passed" in result.stdout, result.stdout[-1000:]


def test_a_run_weighs_its_classes_by_the_faces_after_augment_dataset(tmp_path, capsys):
    """cnn_run's training set: augment_dataset balances the training faces first, and the class
    weights are computed from what it leaves (the 8-class report's order), not from the files."""
    import cnn_run
    rng = np.random.default_rng(0)
    for name, count in (("calm", 20), ("glad", 8), ("mad", 3)):
        os.makedirs(tmp_path / "data" / "train" / name)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "data" / "train" / name / f"{i}.png")
    p = cnn_params.get_params([f"--data_dir={tmp_path / 'data'}", f"--out_dir={tmp_path / 'run'}", "--validation_split=0",
                               "--lr_schedule=cosine", "--augment_dataset=True", "--class_weights=True"])
    data, (x_fit, y_fit), weights = cnn_run.training_set(p)
    assert list(np.bincount(y_fit)) == [20, 20, 12]                     # n -> min(4n, largest)
    assert weights == pytest.approx(cnn_data.class_weights(y_fit, 3))
    assert weights[2] == pytest.approx(2.0) and weights[0] == weights[1] == pytest.approx(1.0)
    assert weights != pytest.approx(cnn_data.class_weights(data["train"][1], 3))   # the files' counts weigh otherwise
    assert "class_weights: calm 1.00, glad 1.00, mad 2.00" in capsys.readouterr().out
