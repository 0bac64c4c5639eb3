"""The experiments of both reports: presets, dataset variants and a short real run of each."""
import csv
import json
import os
import re
import shutil
import zipfile

import keras
import numpy as np
import pytest

import cnn_data
import cnn_device
import cnn_model
import cnn_params
import cnn_teacher
from conftest import REPO, run_script


def test_vgg16_parameter_count_at_48x48():
    model = cnn_model.build_model(cnn_params.PRESETS["vgg16"], (48, 48, 1), 7)
    # VGG16's base 14,714,688; BN 512 (2,048); Dense 512 (262,656) + BN (2,048);
    # Dense 128 (65,664) + BN (512); Dense 64 (8,256) + BN (256); Dense 7 (455).
    assert model.count_params() == 15_056_583
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 2_432


def test_every_experiment_names_a_preset_and_known_parameters():
    for name, row in cnn_params.EXPERIMENTS.items():
        p = cnn_params.get_params([f"--experiment={name}"])
        assert p["preset"] in cnn_params.PRESETS and set(row) <= set(p), name


def test_live_augmentation_keeps_shape_and_value_range():
    p = cnn_params.get_params(["--experiment=conv3"])
    augmenter = cnn_data.live_augmenter(p, seed=0)
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype(np.float32)
    out = np.asarray(augmenter(faces, training=True))
    assert out.shape == faces.shape
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, faces)


def test_random_erasing_puts_a_patch_on_the_chosen_share_of_faces():
    # A uniform face is unchanged by flip, rotation and shift (nearest fill): only erasing can alter it.
    faces = np.full((64, 48, 48, 1), 100.0, np.float32)
    changed = {}
    for chance in (0.0, 0.5, 1.0):
        p = cnn_params.get_params(["--experiment=fer_sota", f"--random_erasing={chance}"])
        out = np.asarray(cnn_data.live_augmenter(p, seed=0)(faces, training=True))
        patch = (np.abs(out - 100.0) > 0.5).reshape(64, -1)   # rotation leaves float rounding
        changed[chance] = int(patch.any(axis=1).sum())
        assert patch.mean(axis=1).max() < 0.5      # a patch, never the whole face
    assert changed[0.0] == 0 and changed[1.0] == 64 and 16 < changed[0.5] < 48, changed


def _write_csv(fer_slice, path, per_class=3):
    """fer2013.csv rows written from real images of the folders: returns {row source: image path}."""
    rows, origin = [], {}
    for split, usage in (("train", "Training"), ("test", "PublicTest")):
        for name in sorted(os.listdir(os.path.join(fer_slice, split))):
            for f in sorted(os.listdir(os.path.join(fer_slice, split, name)))[:per_class]:
                image = os.path.join(fer_slice, split, name, f)
                pixels = cnn_data.decode_image(image, 48, 48)
                rows.append((cnn_data.FER2013_CSV_CODES.index(name), " ".join(map(str, pixels.ravel())), usage))
                origin[f"{path}:{len(rows) + 1}"] = image
    rows.append((3, "1 2 3", "Training"))                # a broken row: reported and skipped
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return origin


def test_fer2013_csv_gives_the_same_pixels_and_labels_as_the_folders(fer_slice, tmp_path, capsys):
    path = str(tmp_path / "fer2013.csv")
    origin = _write_csv(fer_slice, path)
    splits, classes = cnn_data.read_fer2013_csv(path, 48, 48)
    assert f"skipped {path}:{len(origin) + 2}" in capsys.readouterr().out
    assert classes == sorted(os.listdir(os.path.join(fer_slice, "train")))
    assert len(splits["train"][0]) == 21 and len(splits["test"][0]) == 21
    for images, labels, sources in splits.values():
        for image, label, source in zip(images, labels, sources):
            folder_image = origin[source]
            assert np.array_equal(image[..., 0], cnn_data.decode_image(folder_image, 48, 48))
            assert classes[label] == os.path.basename(os.path.dirname(folder_image))


def test_balanced_variant_drops_small_classes_everywhere(fer_slice, tmp_path):
    # Make disgust small in the slice's train split: 10 images where the others have 60.
    disgust = os.path.join(fer_slice, "train", "disgust")
    data_dir = tmp_path / "fer"
    import shutil
    shutil.copytree(fer_slice, data_dir)
    for f in sorted(os.listdir(disgust))[10:]:
        os.remove(data_dir / "train" / "disgust" / f)
    p = cnn_params.get_params([f"--data_dir={data_dir}", "--balance_count=40"])
    data = cnn_data.load_dataset(p)
    assert data["classes"] == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    train_and_val = np.concatenate([data["train"][1], data["val"][1]])
    assert np.bincount(train_and_val).tolist() == [40] * 6
    assert len(data["test"][1]) == 6 * 15                 # disgust left out of the test set too
    assert not any("/disgust/" in path for path in data["test"][2])


@pytest.fixture(scope="module")
def qider_small(qider_dir, tmp_path_factory):
    """A tenth of the stand-in for QIDER (each class's first files): the 8-class rows need no full
    epoch of 11,400 faces at 96x96 to show that they run; the test below reads all of it."""
    folder = tmp_path_factory.mktemp("qider_small")
    for split in ("train", "val"):
        for name in sorted(os.listdir(os.path.join(qider_dir, split))):
            os.makedirs(folder / split / name)
            files = sorted(os.listdir(os.path.join(qider_dir, split, name)))
            for f in files[:max(4, len(files) // 10)]:
                shutil.copy(os.path.join(qider_dir, split, name, f), folder / split / name / f)
    return str(folder)


def test_the_qider_stand_in_is_table_1_before_and_after_augment_dataset(qider_dir, tmp_path, capsys):
    """The 8-class report's Table 1, as the report prints it, from the whole stand-in read as
    --experiment=qider reads it: its counts (A), augment_dataset's rule (D), and the class weights."""
    import cnn_run
    p = cnn_params.get_params(["--experiment=qider", f"--data_dir={qider_dir}", f"--out_dir={tmp_path}"])
    data, (x_fit, y_fit), weights = cnn_run.training_set(p)
    printed = capsys.readouterr().out
    assert "A       501      377      336      746     1618      115      424      404     4521" in printed
    assert "D      1618     1508     1344     1618     1618      460     1618     1616    11400" in printed
    assert "neutral 2.00" in printed and len(y_fit) == 11400 and x_fit.shape[1:3] == (96, 96)
    assert len(data["val"][1]) == 1346 and len(data["train"][1]) == 4521


# finetune (the shipped network at full width, from its weights) has its own test in test_finetune.py.
@pytest.mark.parametrize("name", sorted(set(cnn_params.EXPERIMENTS) - {"finetune"}))
def test_each_experiment_runs_one_short_epoch(name, request, tmp_path):
    # The 8-class report's on the stand-in for its data set, the FER-2013 report's and ours on real faces.
    data_dir = request.getfixturevalue("qider_small" if name.startswith("qider") else "fer_tiny")
    extra = ["--balance_count=10"] if "balanced" in name else []
    if cnn_params.EXPERIMENTS[name].get("teacher"):    # a path from the repo's root; the test runs elsewhere
        extra.append(f"--teacher={os.path.join(REPO, cnn_params.EXPERIMENTS[name]['teacher'])}")
    out = tmp_path / "log"
    result = run_script("cnn_run.py", f"--experiment={name}", f"--data_dir={data_dir}", f"--out_dir={out}",
                        "--epochs=1", *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"] == name and metrics["epochs_run"] == 1
    assert metrics["preset"] == cnn_params.EXPERIMENTS[name]["preset"]
    p = cnn_params.get_params([f"--experiment={name}"])
    scored = "val" if name.startswith("qider") else "test"     # the stand-in's test set is the 8 real photos
    assert metrics[scored]["n"] > 0 and 0 <= metrics[scored]["accuracy"] <= 1
    # The experiment's optimizer and rate reach training: history.csv logs the rate Keras trained the epoch at.
    with open(out / "history.csv") as f:
        assert float(next(csv.DictReader(f))["learning_rate"]) == pytest.approx(p["learning_rate"], rel=1e-6)
    with zipfile.ZipFile(out / "model.keras") as archive:
        optimizer = json.loads(archive.read("config.json"))["compile_config"]["optimizer"]
    assert optimizer["class_name"] == {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}[p["optimizer"]]
    # No experiment names a compute policy: each takes what "auto" picks for this machine, and trains in it.
    assert metrics["precision"] == cnn_device.compute_policy("auto")[0]
    model, _, params = cnn_model.load_model(str(out / "model.keras"))
    assert params["precision"] == metrics["precision"]
    conv_or_dense = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))][0]
    assert conv_or_dense.dtype_policy.name == metrics["precision"]
    if p["tta"] != "none":       # scored on the held-out splits; not worth its cost on the training faces
        assert "tta_" + p["tta"] in metrics["val"] and "tta_" + p["tta"] in metrics["test"]
        assert "tta_" + p["tta"] not in metrics["train"]
    if p["live_augment"]:
        assert (out / "augmented_examples.png").stat().st_size > 0
    if p["teacher"]:
        assert metrics["teacher"].endswith(p["teacher"]) and metrics["teacher_time_s"] > 0
        assert re.search(r"\d+ training faces labelled in \d+ s; its class is the label on \d+\.\d% of them", result.stdout)
        # Its probabilities are kept beside the model, one row per training face, and teach another student.
        kept = np.load(out / "teacher.npz")
        train_files = json.loads((out / "splits.json").read_text())["train"]
        assert list(kept["files"]) == [os.path.relpath(f, data_dir) for f in train_files]
        assert kept["probabilities"].shape == (len(train_files), 7)
        assert np.allclose(kept["probabilities"].sum(1), 1, atol=1e-4)
        assert cnn_teacher.teacher_of(str(out / "teacher.npz")) == metrics["teacher"]   # what a resume checks to reuse them
        second = run_script("cnn_run.py", f"--experiment={name}", f"--data_dir={data_dir}", "--epochs=1",
                            f"--teacher={out / 'teacher.npz'}", f"--out_dir={tmp_path / 'second'}", cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-2000:]
        assert f"teacher {out / 'teacher.npz'} (labels of {metrics['teacher']}): {len(train_files)} training faces" \
            in second.stdout


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_augmented_examples_show_the_faces_under_each_compute_policy(precision, tmp_path):
    import keras
    import matplotlib.image
    import cnn_plots
    keras.mixed_precision.set_global_policy(precision)
    try:
        p = cnn_params.get_params(["--experiment=fer_sota"])
        faces = np.full((6, 48, 48, 1), 160, np.uint8)   # mid grey: flip, rotation and shift (nearest fill) keep it
        cnn_plots.plot_augmented(faces, cnn_data.live_augmenter(p, seed=0), str(tmp_path / "examples.png"), seed=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    picture = matplotlib.image.imread(str(tmp_path / "examples.png"))[..., :3].mean(axis=-1)    # 0..1
    # 7 mid-grey panels a row on white: only the titles are dark. (bfloat16 pixels were once drawn black.)
    assert (picture < 0.2).mean() < 0.01
    assert ((picture > 0.55) & (picture < 0.7)).mean() > 0.3


@pytest.mark.parametrize("preset, width, total", [("fer_sota_wide", 2.0, 7_057_351),
                                                   ("fer_sota_narrow", 0.5, 444_151)])
def test_fer_sota_wide_and_narrow_are_fer_sota_at_another_width(preset, width, total):
    base = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7)
    other = cnn_model.build_model(cnn_params.PRESETS[preset], (48, 48, 1), 7)
    widths = lambda m: [l.filters if hasattr(l, "filters") else l.units for l in m.layers
                        if hasattr(l, "filters") or hasattr(l, "units")]
    assert widths(other)[:-1] == [int(width * w) for w in widths(base)[:-1]]   # the 7-way output stays
    assert widths(other)[-1] == 7
    assert other.count_params() == total


def test_fer_sota_narrow1_is_fer_sota_narrow_less_its_first_convolution():
    narrow = cnn_model.build_model(cnn_params.PRESETS["fer_sota_narrow"], (48, 48, 1), 7)
    narrow1 = cnn_model.build_model(cnn_params.PRESETS["fer_sota_narrow1"], (48, 48, 1), 7)
    convs = lambda m: [l.filters for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs(narrow1) == convs(narrow)[1:]
    # One 16-filter convolution fewer at 48x48, and the next one sees 1 channel instead of 16.
    assert narrow1.count_params() == 441_767
    assert narrow1.output_shape == narrow.output_shape


ZEN3 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma f16c\n"        # AVX2 only
GENOA = "model name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512vl\n"
SAPPHIRE_RAPIDS = "model name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


@pytest.mark.parametrize("gpu, cpuinfo, chosen", [
    (None, ZEN3, "float32"),
    (None, "", "float32"),                                      # no /proc/cpuinfo (macOS)
    (None, GENOA, "mixed_bfloat16"),
    (None, SAPPHIRE_RAPIDS, "mixed_bfloat16"),
    ({"name": "NVIDIA H100 80GB HBM3", "capability": (9, 0)}, ZEN3, "mixed_bfloat16"),
    ({"name": "Tesla T4", "capability": (7, 5)}, SAPPHIRE_RAPIDS, "mixed_float16"),   # no bfloat16 on the GPU
])
def test_auto_precision_takes_bfloat16_only_where_it_is_native(gpu, cpuinfo, chosen, monkeypatch):
    monkeypatch.setattr(cnn_device, "gpu_device", lambda: gpu)
    monkeypatch.setattr(cnn_device, "cpu_info", lambda: cpuinfo)
    policy, note = cnn_device.compute_policy("auto")
    assert policy == chosen and note.startswith(f"precision: {chosen} (auto")


def test_a_named_policy_is_kept_and_emulated_bfloat16_is_warned_about(monkeypatch):
    monkeypatch.setattr(cnn_device, "gpu_device", lambda: None)
    monkeypatch.setattr(cnn_device, "cpu_info", lambda: ZEN3)
    policy, note = cnn_device.compute_policy("mixed_bfloat16")
    assert policy == "mixed_bfloat16"
    assert note.startswith("warning: --precision=mixed_bfloat16") and "--precision=auto picks float32" in note
    assert cnn_device.compute_policy("float32") == ("float32", "")
    monkeypatch.setattr(cnn_device, "cpu_info", lambda: GENOA)
    assert cnn_device.compute_policy("mixed_bfloat16") == ("mixed_bfloat16", "")
    assert cnn_device.cpu_name() == f"AMD EPYC 9B14, {os.cpu_count()} cores, avx512_bf16"


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_fer_sota_trains_a_few_batches_under_each_compute_policy(precision):
    import keras
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7)
        assert model.count_params() == 1_768_423
        cnn_model.compile_model(model, cnn_params.get_params(["--experiment=fer_sota"]))
        # Six batches of 16 faces whose class is where a bright band lies (rows 6k..6k+5 for class k):
        # a pattern the network can learn in a few steps, so the loss must fall far, under either policy.
        classes = np.arange(32) % 7
        faces = np.random.default_rng(0).uniform(0, 96, (32, 48, 48, 1)).astype(np.float32)
        for face, k in zip(faces, classes):
            face[6 * k:6 * k + 6] += 150
        history = model.fit(faces, keras.utils.to_categorical(classes, 7), batch_size=16, epochs=3, verbose=0)
        losses, accuracy = history.history["loss"], history.history["accuracy"]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.5, losses    # it learns the pattern
        assert accuracy[-1] > 0.5, accuracy                                             # chance is 1/7
        assert model.output.dtype == "float32"                       # softmax stays float32
        conv = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)][0]
        assert conv.compute_dtype == ("bfloat16" if precision == "mixed_bfloat16" else "float32")
    finally:
        keras.mixed_precision.set_global_policy("float32")
