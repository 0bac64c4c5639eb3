"""The shipped FER-2013 model works on a fresh clone, with no training."""
import json
import os
import re

import numpy as np
import pytest

import cnn_data
import cnn_metrics
import cnn_model
import cnn_storage
import cnn_params
import cnn_teacher
from conftest import REPO, run_script

PRETRAINED = os.path.join(REPO, "pretrained", "fer2013.keras")
FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_shipped_model_loads_small_and_float32():
    assert os.path.getsize(PRETRAINED) < 20 * 2**20
    model, classes, params = cnn_model.load_model(PRETRAINED)
    assert classes == FER_CLASSES
    assert model.input_shape == (None, 48, 48, 1)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert {v.dtype for v in model.weights} == {"float32"}      # stored as float16, computed in float32
    assert params["preset"] == "fer_sota_wide" and model.count_params() == 7_057_351


def test_shipped_model_scores_the_8_real_photos(external_faces, tmp_path):
    result = run_script("cnn_eval.py", f"--model={PRETRAINED}", f"--images={external_faces}",
                        "--detect_faces=True", f"--out={tmp_path / 'eval.json'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    # "negative" is not a FER class; the other 7 photos are each scored right (measured: 7 of 7).
    assert result.stdout.strip().endswith("accuracy: 1.0000 (7/7)"), result.stdout[-500:]
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["n_scored"] == 8 and (tmp_path / "eval.png").exists()
    assert all(p["predicted"] == p["true"] for p in report["predictions"] if p["true"] is not None)


def test_shipped_model_on_a_publictest_sample(fer2013_dir):
    """Every 5th PublicTest image (718 faces): the shipped model must stay near its measured 0.688 (the
    reports' conv3 scores 0.36-0.44), the fast model, its int8 copy run by LiteRT, with it, and the
    fastest model a little under it."""
    files, _ = cnn_data.list_split(os.path.join(fer2013_dir, "test"))
    files = files[::5]
    faces, names, _, _ = cnn_data.load_images(files, 48, 48, split="sample")
    model, classes, _ = cnn_model.load_model(PRETRAINED)
    labels = np.array([classes.index(n) for n in names])
    shipped = cnn_model.predict(model, faces)
    accuracy = cnn_metrics.score(shipped, labels, classes)["accuracy"]
    assert len(labels) == 718 and accuracy > 0.675, accuracy   # measured: 0.688
    fast, fast_classes, _ = cnn_model.load_model(os.path.join(REPO, "pretrained", "fer2013_int8.tflite"))
    assert fast_classes == classes and fast.input_shape == (None, 48, 48, 1)
    int8 = cnn_model.predict(fast, faces)
    assert abs(cnn_metrics.score(int8, labels, classes)["accuracy"] - accuracy) < 0.01
    assert np.mean(int8.argmax(axis=1) == shipped.argmax(axis=1)) > 0.97     # the same network, int8 weights
    assert os.path.getsize(os.path.join(REPO, "pretrained", "fer2013_int8.tflite")) < 8 * 2**20
    # The fastest model, a smaller network taught by the shipped one: about 2 points under it
    # (measured on all of PublicTest: 67.0 % against 68.9 %), a quarter of the file.
    fastest, fastest_classes, _ = cnn_model.load_model(os.path.join(REPO, "pretrained", "fer2013_fastest.tflite"))
    assert fastest_classes == classes and fastest.input_shape == (None, 48, 48, 1)
    small = cnn_metrics.score(cnn_model.predict(fastest, faces), labels, classes)["accuracy"]
    assert accuracy - 0.045 < small < accuracy + 0.01, (small, accuracy)
    assert os.path.getsize(os.path.join(REPO, "pretrained", "fer2013_fastest.tflite")) < 2.5 * 2**20


def test_the_shipped_model_teaches_a_student(fer_tiny, tmp_path):
    """Distillation: each training target is teacher_weight of the teacher's probabilities (face
    and mirror averaged) and the rest of the one-hot label; a teacher that knows other classes or
    did not hold out the student's validation faces is refused in one line, unless the student
    holds out none."""
    files, _ = cnn_data.list_split(os.path.join(fer_tiny, "train"))
    faces, names, paths, _ = cnn_data.load_images(files, 48, 48, split="train")
    labels = np.array([FER_CLASSES.index(n) for n in names])
    p = cnn_params.get_params(["--teacher_weight=0.7", f"--data_dir={fer_tiny}"])
    targets, own = cnn_teacher.teacher_targets([PRETRAINED], faces, labels, paths, FER_CLASSES, p)
    teacher, _, params = cnn_model.load_model(PRETRAINED)
    pixels = faces.astype(np.float32)
    soft = (teacher.predict(pixels, verbose=0) + teacher.predict(pixels[:, :, ::-1], verbose=0)) / 2
    assert targets.shape == (len(labels), 7) and targets.dtype == np.float32
    assert np.allclose(own, soft, atol=1e-5)
    assert np.allclose(targets, 0.7 * soft + 0.3 * np.eye(7)[labels], atol=1e-5)
    assert np.allclose(targets.sum(1), 1, atol=1e-5)
    assert not np.allclose(targets, np.eye(7)[labels], atol=0.05)        # the teacher does change the targets
    with pytest.raises(cnn_model.ModelError, match="validation split .*--seed=1337"):
        cnn_teacher.teacher_targets([PRETRAINED], faces, labels, paths, FER_CLASSES, dict(p, seed=7))
    other = tmp_path / "other_split.keras"          # the shipped model, saved as if trained with --seed=7
    cnn_storage.save_model(teacher, str(other), FER_CLASSES, dict(params, seed=7))
    with pytest.raises(cnn_model.ModelError, match="other_split.keras: the teacher held out another validation split"):
        cnn_teacher.teacher_targets([PRETRAINED, str(other)], faces, labels, paths, FER_CLASSES, p)  # each one is checked
    # A teacher that held out a larger share with the same seed held out the student's faces too;
    # one that held out less, or split other faces (drop_blank), trained on some of them.
    larger = tmp_path / "larger_split.keras"
    cnn_storage.save_model(teacher, str(larger), FER_CLASSES, dict(params, validation_split=0.3))
    assert np.allclose(cnn_teacher.teacher_targets([str(larger)], faces, labels, paths, FER_CLASSES, p)[0], targets, atol=1e-5)
    with pytest.raises(cnn_model.ModelError, match=r"larger_split.keras: the teacher held out another validation split "
                                                   r"\(seed 1337, validation_split 0.3\); train with --seed=1337 --validation_split=0.3 or less$"):
        cnn_teacher.teacher_targets([str(larger)], faces, labels, paths, FER_CLASSES, dict(p, validation_split=0.4))
    blank = tmp_path / "no_blank.keras"
    cnn_storage.save_model(teacher, str(blank), FER_CLASSES, dict(params, drop_blank=True))
    with pytest.raises(cnn_model.ModelError, match=r"no_blank.keras: .*drop_blank True\); train with .* --drop_blank=True"):
        cnn_teacher.teacher_targets([str(blank)], faces, labels, paths, FER_CLASSES, p)
    # The shipped model stores no split_order (it came first) and split shuffled: a student split by
    # name, as ImageDataGenerator does, holds out other faces, and is told which setting to change.
    with pytest.raises(cnn_model.ModelError, match=r"split_order shuffled\); train with .* --split_order=shuffled"):
        cnn_teacher.teacher_targets([PRETRAINED], faces, labels, paths, FER_CLASSES, dict(p, split_order="name"))
    # A student with a val/ folder of its own holds out no faces of train/ to keep from a teacher.
    (tmp_path / "own_val" / "val").mkdir(parents=True)
    own_val, _ = cnn_teacher.teacher_targets([str(other)], faces, labels, paths, FER_CLASSES,
                                           dict(p, data_dir=str(tmp_path / "own_val")))
    assert np.allclose(own_val, targets, atol=1e-5)
    # Nor has a student that holds out nothing (validation_split 0).
    all_faces, _ = cnn_teacher.teacher_targets([PRETRAINED, str(other)], faces, labels, paths, FER_CLASSES,
                                             dict(p, validation_split=0.0))
    assert np.allclose(all_faces, targets, atol=1e-5)
    with pytest.raises(cnn_model.ModelError, match="same classes"):
        cnn_teacher.teacher_targets([PRETRAINED], faces, labels, paths, FER_CLASSES[::-1], p)

    # Kept in a teacher file, the probabilities teach again without the model, even from
    # another folder (files are stored relative to data_dir); other faces are refused.
    kept = str(tmp_path / "teacher.npz")
    cnn_teacher.save_teacher_file(kept, own, paths, FER_CLASSES, dict(p, teacher=PRETRAINED))
    assert cnn_teacher.teacher_of(kept) == PRETRAINED and cnn_teacher.teacher_of(str(other)) == ""
    moved = [path.replace(fer_tiny, "/elsewhere/fer") for path in paths]
    again, again_own = cnn_teacher.teacher_targets([kept], faces, labels, moved, FER_CLASSES,
                                                 dict(p, data_dir="/elsewhere/fer"))
    assert np.array_equal(again, targets) and np.array_equal(again_own, own)
    refusals = [((faces, paths[::-1], p), "labels other training faces"),
                ((faces[:-1], paths[:-1], p), "labels other training faces"),
                ((faces, paths, dict(p, seed=7)), "validation split .*--seed=1337"),
                ((faces, paths, dict(p, augment_dataset=not p["augment_dataset"])), "written with --augment_dataset=")]
    for (its_faces, its_paths, its_p), message in refusals:
        with pytest.raises(cnn_model.ModelError, match=message):
            cnn_teacher.teacher_targets([kept], its_faces, labels[:len(its_faces)], its_paths, FER_CLASSES, its_p)
    # A student with a val/ folder of its own holds out nothing of train/: the labels of the same
    # training faces teach it whatever seed wrote them, as the teacher model itself does above.
    own_dir = str(tmp_path / "own_val")        # its val/ folder was made above
    from_own_val, _ = cnn_teacher.teacher_targets([kept], faces, labels, [path.replace(fer_tiny, own_dir) for path in paths],
                                                FER_CLASSES, dict(p, seed=7, data_dir=own_dir))
    assert np.array_equal(from_own_val, targets)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(open(kept, "rb").read()[:1000])
    with pytest.raises(cnn_model.ModelError, match="broken.npz: not a teacher file written by cnn_run.py"):
        cnn_teacher.teacher_targets([str(broken)], faces, labels, paths, FER_CLASSES, p)
    refused = run_script("cnn_run.py", f"--data_dir={fer_tiny}", f"--teacher={PRETRAINED}", "--seed=7",
                         f"--out_dir={tmp_path / 'log'}", cwd=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "fer2013.keras: the teacher held out another validation split" in last


def test_compare_scores_models_their_average_and_pairs(fer_tiny, tmp_path):
    """bench/compare.py rebuilds the models' own validation split and prints each model's
    accuracy, their average's, and McNemar's test for the pair (a model of another split is
    refused by the cnn_split.split_mismatch check that the teacher test covers). The second model has the first
    one's file name in another folder, as every run's model.keras does: each keeps its own row."""
    model, classes, params = cnn_model.load_model(PRETRAINED)
    dense = [layer for layer in model.layers if layer.weights][-1]          # the output Dense
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + 3.0 * (np.arange(7) == FER_CLASSES.index("happy"))])   # leans towards happy
    os.makedirs(tmp_path / "leaning")
    leaning = str(tmp_path / "leaning" / "fer2013.keras")
    cnn_storage.save_model(model, leaning, classes, params)
    result = run_script(os.path.join(REPO, "bench", "compare.py"), f"--data_dir={fer_tiny}", PRETRAINED, leaning,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    data = cnn_data.load_dataset(cnn_params.get_params([f"--data_dir={fer_tiny}"]))
    shipped, _, _ = cnn_model.load_model(PRETRAINED)
    a, b = "pretrained/fer2013.keras", "leaning/fer2013.keras"
    expected = {}
    for name, m in ((a, shipped), (b, model)):
        expected[name] = {s: cnn_model.predict(m, data[s][0]) for s in ("val", "test")}
    expected[f"{a} + {b}"] = {s: (expected[a][s] + expected[b][s]) / 2 for s in ("val", "test")}
    # An accuracy row is a name, then one figure per split.
    rows = {" ".join(line.split()[:-2]): line.split()[-2:] for line in result.stdout.splitlines()
            if re.fullmatch(r".+ \d\.\d{4} +\d\.\d{4}", line)}
    assert set(rows) == set(expected)
    for name, probs in expected.items():
        printed = [float(x) for x in rows[name]]
        assert np.allclose(printed, [np.mean(probs[s].argmax(1) == data[s][1]) for s in ("val", "test")], atol=1e-4)
    shipped_right, leaning_right = (expected[n]["val"].argmax(1) == data["val"][1] for n in (a, b))
    only = (np.sum(shipped_right & ~leaning_right), np.sum(~shipped_right & leaning_right))
    assert only[0] + only[1] > 0                                             # the two do differ
    assert re.search(rf"{a} vs {b} +val: {only[0]} vs {only[1]}, p = [01]\.\d{{3}}", result.stdout)


def test_mcnemar_matches_the_textbook_figure():
    import importlib.util
    spec = importlib.util.spec_from_file_location("compare", os.path.join(REPO, "bench", "compare.py"))
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    a = np.array([True] * 10 + [False] * 2 + [True] * 50)
    b = np.array([False] * 10 + [True] * 2 + [True] * 50)
    only_a, only_b, p = compare.mcnemar(a, b)
    assert (only_a, only_b) == (10, 2) and abs(p - 0.0433) < 1e-3    # chi2 = (|10 - 2| - 1)^2 / 12 = 4.08
    assert compare.mcnemar(a, a)[2] == 1.0


def compare_with_a_copy(fer_tiny, tmp_path, name, **stored):
    """bench/compare.py on the shipped model and a copy of it whose stored parameters say
    otherwise (`stored`): the same weights, so any difference in the printout is the split."""
    model, classes, params = cnn_model.load_model(PRETRAINED)
    copy = str(tmp_path / name)
    cnn_storage.save_model(model, copy, classes, dict(params, **stored))
    result = run_script(os.path.join(REPO, "bench", "compare.py"), f"--data_dir={fer_tiny}", PRETRAINED, copy,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return model, result


@pytest.mark.parametrize("name, stored, told", [("all_faces.keras", dict(validation_split=0.0), "validation_split 0.0)"),
                                                ("no_blank.keras", dict(drop_blank=True), "drop_blank True)"),
                                                ("by_name.keras", dict(split_order="name"), "split_order name)")])
def test_compare_falls_back_to_the_test_split_when_the_models_held_out_other_faces(fer_tiny, tmp_path, name, stored, told):
    """A model trained on all of train/ (validation_split 0) has learned the faces the other
    model was chosen on, and so has one that split the faces left after dropping the blank
    ones, or took each class's first faces by name: compare.py scores the pair on the test
    split alone, and says why."""
    model, result = compare_with_a_copy(fer_tiny, tmp_path, name, **stored)
    assert re.search(rf"{name}: seed 1337, .*{re.escape(told)}; they are compared on the test split only", result.stdout)
    assert re.search(r"accuracy, tta=none \(test 28 faces\)", result.stdout)
    data = cnn_data.load_dataset(cnn_params.get_params([f"--data_dir={fer_tiny}"]))
    accuracy = np.mean(cnn_model.predict(model, data["test"][0]).argmax(1) == data["test"][1])
    rows = dict(re.findall(r"^(\S.*?) +(\d\.\d{4})$", result.stdout, re.M))     # one figure per row: test only
    assert set(rows) == {"fer2013.keras", name, f"fer2013.keras + {name}"}
    assert all(float(figure) == pytest.approx(accuracy, abs=1e-4) for figure in rows.values())
    assert re.search(rf"fer2013.keras vs {name} +test: 0 vs 0, p = 1\.000$", result.stdout, re.M)


def test_compare_scores_models_of_one_seed_on_the_faces_all_held_out(fer_tiny, tmp_path):
    """A model that held out 10 % of train/ with the shipped model's seed held out part of
    the shipped model's 20 %: compare.py scores the pair on that 10 %, and says so."""
    model, result = compare_with_a_copy(fer_tiny, tmp_path, "tenth.keras", validation_split=0.1)
    assert "compared on the validation_split 0.1 faces, which every one of them held out" in result.stdout
    data = cnn_data.load_dataset(cnn_params.get_params([f"--data_dir={fer_tiny}", "--validation_split=0.1"]))
    assert len(data["val"][1]) == 14                                     # 2 of each class's 16, not the 20 % (21)
    assert re.search(r"accuracy, tta=none \(val 14 faces, test 28 faces\)", result.stdout)
    accuracy = np.mean(cnn_model.predict(model, data["val"][0]).argmax(1) == data["val"][1])
    rows = re.findall(r"^(\S.*?) +(\d\.\d{4}) +\d\.\d{4}$", result.stdout, re.M)
    assert len(rows) == 3 and all(float(figure) == pytest.approx(accuracy, abs=1e-4) for _, figure in rows)


def test_tta_bench_scores_each_variant_as_predict_does(fer_tiny, tmp_path):
    """bench/tta.py rebuilds the model's validation split and scores each TTA variant: none,
    flip and ten-crop at CROP_FRACTION must give what cnn_model.predict gives with that tta,
    and each other row counts the faces it alone gets right against --tta=crops."""
    result = run_script(os.path.join(REPO, "bench", "tta.py"), f"--data_dir={fer_tiny}", PRETRAINED, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    data = cnn_data.load_dataset(cnn_params.get_params([f"--data_dir={fer_tiny}"]))
    model, _, _ = cnn_model.load_model(PRETRAINED)
    right = {tta: {s: cnn_model.predict(model, data[s][0], tta).argmax(1) == data[s][1] for s in ("val", "test")}
             for tta in ("none", "flip", "crops")}
    figure = r"(\d+\.\d\d)(?:\s+(\d+) vs (\d+)\s+p = [01]\.\d{3})?"
    rows = {name.strip(): numbers for name, *numbers in
            re.findall(rf"^(\S.*?)\s+\d+\s+{figure}\s+{figure}\s*$", result.stdout, re.M)}
    assert len(rows) == 7, result.stdout
    crops = f"ten-crop {cnn_model.CROP_FRACTION} (--tta=crops)"
    for name, tta in (("none", "none"), ("flip", "flip"), (crops, "crops")):
        val, test = float(rows[name][0]), float(rows[name][3])
        assert (val, test) == pytest.approx((100 * right[tta]["val"].mean(), 100 * right[tta]["test"].mean()), abs=0.006)
    assert rows[crops][1:3] == ["", ""]                          # the row the others are paired with
    only_none = [int(np.sum(right["none"]["test"] & ~right["crops"]["test"])),
                 int(np.sum(~right["none"]["test"] & right["crops"]["test"]))]
    assert [int(n) for n in rows["none"][4:6]] == only_none
