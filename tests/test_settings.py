"""Each setting checked where it acts: in the batches, class weights and network that
Keras's fit receives from `cnn_run.main`, and in the plots a run draws."""
import csv
import json

import keras
import matplotlib.figure
import numpy as np
import pytest
from PIL import Image

import cnn_callbacks
import cnn_model
import cnn_run


class Stop(Exception):
    """Raised by the stand-in for fit once it has seen what it was handed."""


@pytest.fixture
def fit_receives(monkeypatch, demo_dir, tmp_path):
    """A function: run cnn_run.main with these arguments on the demo set up to Keras's fit, and
    return what fit received (the network, every training batch of one epoch, the class weights)."""
    def run(*args):
        seen = {}

        def fit(model, x, validation_data=None, epochs=1, class_weight=None, **kwargs):
            seen.update(model=model, class_weight=class_weight,
                        batches=[tuple(np.asarray(keras.ops.convert_to_numpy(t), np.float32) for t in batch)
                                 for batch in x])
            raise Stop
        monkeypatch.setattr(keras.Model, "fit", fit)
        try:
            with pytest.raises(Stop):
                cnn_run.main([f"--data_dir={demo_dir}", f"--out_dir={tmp_path / 'log'}", "--epochs=1", *args])
        finally:
            keras.mixed_precision.set_global_policy("float32")
        seen["faces"] = np.concatenate([b[0] for b in seen["batches"]])
        seen["labels"] = np.concatenate([b[1] for b in seen["batches"]])
        return seen
    return run


def test_class_weights_reach_fit_computed_on_the_faces_it_trains_on(fit_receives):
    # Without augment_dataset the demo set's classes stay uneven (45 to 160 faces).
    seen = fit_receives("--live_augment=False", "--augment_dataset=False")
    counts = np.bincount(seen["labels"].argmax(1), minlength=8).astype(float)
    expected = {c: 2 - (n - counts.min()) / (counts.max() - counts.min()) for c, n in enumerate(counts)}
    assert seen["class_weight"] == pytest.approx(expected)
    assert max(expected.values()) == 2.0 and min(expected.values()) == 1.0
    assert fit_receives("--live_augment=False", "--augment_dataset=False", "--class_weights=False")["class_weight"] is None


def test_mixup_reaches_the_batches(fit_receives):
    plain = fit_receives("--live_augment=False")["labels"]
    assert set(np.unique(plain)) == {0.0, 1.0}                       # one-hot
    mixed = fit_receives("--live_augment=False", "--mixup=0.2")["labels"]
    np.testing.assert_allclose(mixed.sum(1), 1, atol=1e-5)
    blended = ((mixed > 1e-3) & (mixed < 1 - 1e-3)).any(1)
    assert blended.mean() > 0.5                                      # most faces carry two labels


def test_dense_init_reaches_the_built_layers(fit_receives):
    for name, initializer in (("glorot_uniform", "GlorotUniform"), ("he_uniform", "HeUniform")):
        model = fit_receives("--live_augment=False", "--preset=dense", f"--dense_init={name}")["model"]
        hidden = [l for l in model.layers if isinstance(l, keras.layers.Dense) and l.name != "expression"]
        assert len(hidden) == 2
        assert all(type(l.kernel_initializer).__name__ == initializer for l in hidden), name


def test_noise_std_reaches_the_noisy_copies_of_augment_dataset(fit_receives):
    def distinct(faces):
        return len({f.tobytes() for f in faces.astype(np.uint8)})
    quiet = fit_receives("--live_augment=False", "--noise_std=0.0")["faces"]
    noisy = fit_receives("--live_augment=False", "--noise_std=50.0")["faces"]
    assert len(quiet) == len(noisy)
    # Without noise the "noisy" copies are the originals and mirrors again; with it, every face is new.
    assert distinct(quiet) < len(quiet) - 50
    assert distinct(noisy) == len(noisy)


def test_live_augment_and_batch_size_reach_the_batches(fit_receives):
    still = fit_receives("--live_augment=False", "--batch_size=16")
    assert {len(b[0]) for b in still["batches"][:-1]} == {16}
    moved = fit_receives("--batch_size=16")
    # The same faces, each drawn in the same seeded order: only the augmentation differs.
    assert moved["faces"].shape == still["faces"].shape
    assert np.abs(moved["faces"] - still["faces"]).mean() > 5


# ------------------------------------------------------------------ the best epoch and the plateau

def test_save_best_keeps_the_epoch_of_the_highest_val_accuracy_not_the_last(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    saver = cnn_callbacks.SaveBest(str(tmp_path / "model.keras"), ["a", "b"], {})
    saver.set_model(model)
    for epoch, accuracy in enumerate([0.50, 0.70, 0.60, 0.65]):
        model.layers[0].bias.assign([float(epoch), 0.0])             # each epoch's weights are told apart
        saver.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": accuracy})
    kept, _, _ = cnn_model.load_model(str(tmp_path / "model.keras"))
    assert kept.layers[0].bias.numpy().tolist() == [1.0, 0.0]       # epoch 2 of 4, the 0.70


def test_the_saved_model_scores_the_best_validation_accuracy_of_its_history(demo_dir, tmp_path):
    from conftest import run_script
    out = tmp_path / "log"
    # A high rate on a small network, so that validation accuracy rises and falls.
    result = run_script("cnn_run.py", f"--data_dir={demo_dir}", f"--out_dir={out}", "--epochs=5",
                        "--preset=dense", "--learning_rate=1e-2", "--lr_schedule=constant", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out / "history.csv") as f:
        history = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(history) == 5
    assert metrics["val"]["accuracy"] == pytest.approx(max(history), abs=1e-6)


def tiny_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def started_schedule(p, model, past_rows=()):
    """The learning-rate callback of p on the model, as fit starts it."""
    schedule = cnn_callbacks.learning_rate_callback(p, past_rows=past_rows)
    schedule.set_model(model)
    schedule.on_train_begin()
    return schedule


def rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_the_plateau_schedule_cuts_by_its_factor_after_its_patience_down_to_its_floor():
    model = tiny_model()
    p = {"lr_schedule": "plateau", "lr_monitor": "val_loss", "lr_factor": 0.5, "lr_patience": 2,
         "min_learning_rate": 2e-3, "learning_rate": 1e-2}
    schedule = started_schedule(p, model)
    rates = []
    for epoch in range(8):                                           # val_loss never improves after epoch 0
        schedule.on_epoch_end(epoch, {"val_loss": 1.0})
        rates.append(rate(model))
    assert rates == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3, 2e-3, 2e-3])


def test_the_plateau_schedule_watching_val_accuracy_keeps_the_rate_while_accuracy_rises():
    """An over-confident network: its validation accuracy rises every epoch while its
    validation loss rises too. Watching val_loss (Keras's default) the rate is cut after
    each patience; watching val_accuracy (the report's "accuracy not improving") it is kept
    until the accuracy stalls."""
    accuracy = [0.50, 0.52, 0.54, 0.56, 0.58, 0.58, 0.57, 0.57]
    loss = [1.10, 1.12, 1.14, 1.16, 1.18, 1.20, 1.22, 1.24]

    def rates(monitor):
        model = tiny_model()
        p = {"lr_schedule": "plateau", "lr_monitor": monitor, "lr_factor": 0.5, "lr_patience": 2,
             "min_learning_rate": 1e-4, "learning_rate": 1e-2}
        schedule = started_schedule(p, model)
        out = []
        for epoch in range(len(loss)):
            schedule.on_epoch_end(epoch, {"val_loss": loss[epoch], "val_accuracy": accuracy[epoch]})
            out.append(rate(model))
        return out

    assert rates("val_loss") == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3, 1.25e-3, 1.25e-3])
    assert rates("val_accuracy") == pytest.approx([1e-2] * 6 + [5e-3] * 2)


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_the_plateau_schedule_of_a_resumed_run_cuts_where_the_unbroken_ones_does(monitor):
    """ReduceLROnPlateau counts the epochs without improvement in memory. Resumed after
    epoch k, it replays epochs 0..k-1 from history.csv, so the rate of every later epoch is
    the unbroken run's; without the replay (a fresh count), some resumes cut later."""
    losses = [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.79, 0.83, 0.84, 0.86, 0.87, 0.7, 0.75]
    if monitor == "val_accuracy":
        losses = [1 - x for x in losses]        # the same improvements, upwards
    p = {"lr_schedule": "plateau", "lr_monitor": monitor, "lr_factor": 0.5, "lr_patience": 2,
         "min_learning_rate": 1e-4, "learning_rate": 1e-2}

    def rates(resume_at, replay=True):
        model = tiny_model()                    # the backup restores its rate
        rows, out = [], []
        for epoch, loss in enumerate(losses):
            if epoch in (0, resume_at):     # a new process: the callback built again from the history so far
                schedule = started_schedule(p, model, past_rows=rows if replay else ())
            logs = {monitor: loss}
            schedule.on_epoch_end(epoch, logs)
            rows.append({monitor: str(loss), "learning_rate": str(logs["learning_rate"])})
            out.append(rate(model))
        return out

    unbroken = rates(None)
    assert unbroken[-1] < unbroken[0]                                 # it does cut, more than once
    assert len(set(unbroken)) >= 3
    for k in range(1, len(losses)):
        assert rates(k) == unbroken, k
    assert any(rates(k, replay=False) != unbroken for k in range(1, len(losses)))

# ------------------------------------------------------------------ the plots, by what they draw

@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved, by file name, with its axes, read before it is written."""
    figures = {}
    save = matplotlib.figure.Figure.savefig

    def record(fig, path, *args, **kwargs):
        figures[str(path).rsplit("/", 1)[-1]] = fig.axes
        return save(fig, path, *args, **kwargs)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figures


def test_each_plot_draws_the_runs_own_numbers(drawn, demo_dir, tmp_path):
    out = tmp_path / "log"
    try:
        cnn_run.main([f"--data_dir={demo_dir}", f"--out_dir={out}", "--epochs=3", "--preset=dense"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with open(out / "history.csv") as f:
        history = list(csv.DictReader(f))
    metrics = json.loads((out / "metrics.json").read_text())
    for metric in ("loss", "accuracy"):
        train, val = drawn[f"{metric}.png"][0].get_lines()
        assert list(train.get_xdata()) == [1, 2, 3] and list(val.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == pytest.approx([float(r[metric]) for r in history])
        assert list(val.get_ydata()) == pytest.approx([float(r["val_" + metric]) for r in history])
    splits = json.loads((out / "splits.json").read_text())
    for ax, split in zip(drawn["class_distribution.png"], ("train", "val", "test")):
        heights = [int(bar.get_height()) for bar in ax.patches]
        per_class = [sum(f"/{c}/" in path for path in splits[split]) for c in metrics["classes"]]
        assert heights == per_class and sum(heights) == metrics[split]["n"], split
    matrix = drawn["confusion_matrix.png"][0]
    counts = np.array(metrics["test"]["confusion_matrix"])
    np.testing.assert_allclose(matrix.images[0].get_array(), counts / counts.sum(1, keepdims=True))
    written = [int(t.get_text().split("(")[1].rstrip(")")) for t in matrix.texts]
    assert written == counts.ravel().tolist()
    bars = drawn["per_class.png"][0].patches
    recall = [metrics["test"]["per_class"][c]["recall"] for c in metrics["classes"]]
    precision = [metrics["test"]["per_class"][c]["precision"] for c in metrics["classes"]]
    assert [b.get_height() for b in bars] == pytest.approx(recall + precision)


def test_the_contact_sheet_draws_each_photo_with_its_prediction_and_top_3(external_faces, tmp_path):
    """eval.png read back: a cell per photo, the face as the network saw it (48x48 grey, enlarged
    three times), the predicted class in green where it is the true one and red where not, and
    three bars as long as the top three probabilities."""
    import cnn_eval
    import cnn_photos
    from conftest import REPO
    out = tmp_path / "eval.json"
    cnn_eval.main([f"--model={REPO}/pretrained/fer2013.keras", f"--images={external_faces}", f"--out={out}"])
    report = json.loads(out.read_text())
    sheet = np.asarray(Image.open(tmp_path / "eval.png").convert("RGB")).astype(int)
    (cell_w, cell_h), side = cnn_photos.CELL, cnn_photos.FACE_SIDE
    assert sheet.shape == (cell_h, 8 * cell_w, 3) and report["n_scored"] == 8
    for i, p in enumerate(report["predictions"]):
        left = i * cell_w
        face = sheet[50:50 + side, left + (cell_w - side) // 2:left + (cell_w + side) // 2]
        assert (face[..., 0] == face[..., 1]).all() and (face[..., 1] == face[..., 2]).all()      # grey
        assert (face[::3, ::3] == face[1::3, 1::3]).all() and face.std() > 10                      # 48x48, enlarged
        titles = sheet[0:48, left:left + cell_w]
        colour = (cnn_photos.GREEN if p["true"] == p["predicted"] else cnn_photos.RED) if p["true"] else None
        if colour:
            assert (np.abs(titles - colour).sum(-1) < 30).sum() > 20, (p["path"], colour)
        top3 = sorted(p["probabilities"].values(), reverse=True)[:3]
        bar_left, bar_width = left + 78, cell_w - 78 - 10
        for rank, probability in enumerate(top3):
            row = sheet[50 + side + 10 + 26 * rank + 8, bar_left:bar_left + bar_width + 1]
            blue = int((np.abs(row - cnn_photos.BLUE).sum(-1) < 10).sum())
            assert abs(blue - round(probability * bar_width)) <= 2, (p["path"], rank, blue, probability)


# ------------------------------------------------------------------ the suite itself

def test_missing_shared_data_skips_here_and_fails_under_ci(monkeypatch):
    from conftest import missing
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        missing("../shared/data/x not found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        missing("../shared/data/x not found")
