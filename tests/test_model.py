"""cnn_model: networks built from the layer tables, saved with their classes, loaded safely."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import keras

import cnn_callbacks
import cnn_history
import cnn_model
import cnn_storage
import cnn_params


def random_faces(n, side, n_classes):
    """n random grey faces of side x side pixels and one-hot labels of n_classes, the same every call."""
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 255, (n, side, side, 1)).astype(np.float32)
    return faces, keras.utils.to_categorical(rng.integers(0, n_classes, n), n_classes)


@pytest.mark.parametrize("preset, total, frozen", [
    ("dense", 156_743, 0),
    ("conv3", 63_431, 0),
    ("fer_best", 8_434_439, 3_328),
    ("fer_best_bn_first", 8_434_439, 3_328),        # batch norm moved, not added
])
def test_parameter_counts_match_the_fer2013_report(preset, total, frozen):
    model = cnn_model.build_model(cnn_params.PRESETS[preset], (48, 48, 1), 7)
    frozen_count = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert model.count_params() == total
    assert frozen_count == frozen


@pytest.mark.parametrize("preset", ["qider", "qider_nodrop"])
def test_qider_is_table_2_of_the_8_class_report(preset):
    model = cnn_model.build_model(cnn_params.PRESETS[preset], (96, 96, 1), 8)
    assert model.output_shape == (None, 8)
    assert model.count_params() == 263_000           # as both of the report's trained models hold
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert [l.filters for l in convs] == [32, 16, 24] and [l.units for l in dense] == [24, 16, 8]
    assert all(l.padding == "valid" and l.kernel_size == (3, 3) and l.activation.__name__ == "relu" for l in convs)
    assert [l.activation.__name__ for l in dense] == ["relu", "relu", "softmax"]
    dropouts = [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert dropouts == ([0.3, 0.1, 0.4, 0.1] if preset == "qider" else [])


def test_fer_best_puts_each_relu_before_its_batch_norm_as_the_report_lists_them():
    model = cnn_model.build_model(cnn_params.PRESETS["fer_best"], (48, 48, 1), 7)
    kinds = [type(l).__name__ for l in model.layers[2:]]
    block = ["Conv2D", "FusedBatchNormalization", "MaxPooling2D", "Dropout"]
    assert kinds == block * 3 + ["Flatten"] + ["Dense", "FusedBatchNormalization", "Dropout"] * 2 + ["Dense"]
    assert all(l.activation.__name__ == "relu" for l in model.layers if isinstance(l, (keras.layers.Conv2D,))
               and l.name != "expression")
    # Ours (fer_sota) keeps batch norm between the convolution and its ReLU.
    ours = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7)
    assert [type(l).__name__ for l in ours.layers[2:5]] == ["Conv2D", "FusedBatchNormalization", "ReLU"]
    assert ours.layers[2].activation.__name__ == "linear"
    # fer_best_bn_first is the report's network in that order, every block the same otherwise.
    moved = cnn_model.build_model(cnn_params.PRESETS["fer_best_bn_first"], (48, 48, 1), 7)
    block = ["Conv2D", "FusedBatchNormalization", "ReLU", "MaxPooling2D", "Dropout"]
    assert [type(l).__name__ for l in moved.layers[2:]] == (
        block * 3 + ["Flatten"] + ["Dense", "FusedBatchNormalization", "ReLU", "Dropout"] * 2 + ["Dense"])
    assert [l.kernel_size for l in moved.layers if isinstance(l, keras.layers.Conv2D)] == [(3, 3), (3, 3), (5, 5)]
    with pytest.raises(ValueError, match="batchnorm is False, True or 'after_relu'"):
        cnn_model.build_model([("conv", 8, 3, "same", 2, "before", 0.0)], (48, 48, 1), 7)


def test_editing_a_row_changes_that_layer():
    table = [list(row) for row in cnn_params.PRESETS["conv3"]]
    table[0][1] = 16                      # first conv: 32 -> 16 filters
    model = cnn_model.build_model([tuple(r) for r in table], (48, 48, 1), 7)
    first_conv = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)][0]
    assert first_conv.filters == 16
    # 63,431 - (832 - 416) - (9,248 - (9*16*32 + 32))
    assert model.count_params() == 63_431 - 416 - (9_248 - 4_640)
    with pytest.raises(ValueError, match="unknown layer 'conv3d'"):
        cnn_model.build_model([("conv3d", 8, 3, "same", 2, False, 0.0)], (48, 48, 1), 7)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(policy):
    import tensorflow as tf
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras_bn, fused = keras.layers.BatchNormalization(), cnn_model.FusedBatchNormalization()
        # 4 faces of 2x2: 16 values per channel, where Bessel's n / (n - 1) would be off by 7 %.
        x = tf.cast(np.random.default_rng(0).normal(2, 3, (4, 2, 2, 8)).astype(np.float32), keras_bn.compute_dtype)
        for layer in (keras_bn, fused):
            layer.build(x.shape)
            layer.gamma.assign(np.linspace(0.5, 1.5, 8))
            layer.beta.assign(np.linspace(-1, 1, 8))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            outputs = [layer(x, training=True) for layer in (keras_bn, fused)]
            losses = [tf.reduce_sum(tf.cast(y, "float32") ** 2 * np.arange(8)) for y in outputs]
        tolerance = dict(rtol=2e-2, atol=2e-2) if policy == "mixed_bfloat16" else dict(rtol=1e-4, atol=1e-4)
        assert outputs[1].dtype == outputs[0].dtype
        np.testing.assert_allclose(np.float32(outputs[1]), np.float32(outputs[0]), **tolerance)
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(getattr(fused, name).numpy(), getattr(keras_bn, name).numpy(), rtol=1e-5)
        assert not np.allclose(fused.moving_variance.numpy(), 1.0)          # the statistics did move
        np.testing.assert_allclose(np.float32(tape.gradient(losses[1], x)), np.float32(tape.gradient(losses[0], x)),
                                   **tolerance)
        np.testing.assert_allclose(tape.gradient(losses[1], fused.gamma).numpy(),
                                   tape.gradient(losses[0], keras_bn.gamma).numpy(), rtol=1e-3, atol=1e-2)
        np.testing.assert_allclose(np.float32(fused(x)), np.float32(keras_bn(x)), **tolerance)   # inference
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_presets_use_the_fused_batch_norm_unless_told_otherwise():
    # (Its speed is measured in bench/bench.py, not in a timed test.)
    fused = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7)
    plain = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7, fused_batchnorm=False)
    kinds = {m: {type(l).__name__ for l in m.layers if isinstance(l, keras.layers.BatchNormalization)}
             for m in (fused, plain)}
    assert kinds[fused] == {"FusedBatchNormalization"} and kinds[plain] == {"BatchNormalization"}
    assert fused.count_params() == plain.count_params() == 1_768_423


def test_save_and_load_keep_classes_params_and_predictions(tmp_path):
    model = cnn_model.build_model(cnn_params.PRESETS["conv3"], (48, 48, 1), 3)
    path = str(tmp_path / "model.keras")
    cnn_storage.save_model(model, path, ["happy", "sad", "angry"], {"img_height": 48, "img_width": 48})
    assert os.listdir(tmp_path) == ["model.keras"]          # no temporary file left behind
    loaded, classes, params = cnn_model.load_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype(np.float32)
    assert classes == ["happy", "sad", "angry"] and params["img_height"] == 48
    np.testing.assert_allclose(cnn_model.predict(loaded, x), cnn_model.predict(model, x), atol=1e-6)


def test_bad_model_files_get_a_clear_error(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    good = tmp_path / "good.keras"
    cnn_storage.save_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (48, 48, 1), 2), str(good), ["a", "b"], {})
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:2000])
    for path, words in ((tmp_path / "missing.keras", "no such model file"),
                        (text, "not a Keras .keras model file"),
                        (truncated, "not a Keras .keras model file")):
        with pytest.raises(cnn_model.ModelError, match=words) as error:
            cnn_model.load_model(str(path))
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_model_carrying_a_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(
        keras.layers.Lambda(lambda t: t * 2)(inputs)))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(cnn_model.ModelError, match="cannot be loaded"):
        cnn_model.load_model(path)


def test_predict_one_matches_predict():
    model = cnn_model.build_model(cnn_params.PRESETS["conv3"], (48, 48, 1), 7)
    faces = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 1)).astype(np.float32)
    batch = cnn_model.predict(model, faces)
    for face, expected in zip(faces, batch):
        np.testing.assert_allclose(cnn_model.predict_one(model, face), expected, atol=1e-5)


def test_a_model_whose_classes_do_not_match_its_outputs_is_reported(tmp_path):
    path = str(tmp_path / "odd.keras")
    cnn_storage.save_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (48, 48, 1), 7), path, ["a", "b", "c"], {})
    with pytest.raises(cnn_model.ModelError, match="has 7 outputs but 3 class names"):
        cnn_model.load_model(path)


def test_cosine_schedule_anneals_to_the_floor_over_the_epochs(tmp_path):
    import tensorflow as tf
    p = cnn_params.get_params(["--lr_schedule=cosine", "--epochs=3", "--learning_rate=0.01",
                               "--min_learning_rate=0.001", f"--out_dir={tmp_path}"])
    schedule = cnn_callbacks.learning_rate_callback(p).schedule
    assert [round(schedule(e), 6) for e in range(3)] == [0.01, 0.0055, 0.001]
    x, y = random_faces(32, 8, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    history = cnn_model.train(model, ds, ds, p, ["a", "b"])
    assert [round(float(row["learning_rate"]), 6) for row in history] == [0.01, 0.0055, 0.001]
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


def test_a_time_budget_stops_the_run_and_the_cosine_schedule_ends_annealed_within_it(tmp_path, monkeypatch):
    """Planned over 20 epochs, but each epoch takes 10 s and the budget is a minute:
    the run stops after 6 epochs, and the cosine rate reaches its floor in the
    sixth, instead of being cut off on its way down. Epochs trained before a
    resume count towards the budget."""
    import types
    import tensorflow as tf
    ticks = iter(range(0, 10_000, 10))       # read at the start and end of each epoch: 10 s an epoch
    monkeypatch.setattr(cnn_callbacks, "time", types.SimpleNamespace(time=lambda: next(ticks)))
    x, y = random_faces(32, 8, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def run(*overrides):
        p = cnn_params.get_params(["--lr_schedule=cosine", "--learning_rate=0.01", "--min_learning_rate=0.001",
                                   "--max_minutes=1", f"--out_dir={tmp_path}", *overrides])
        model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
        return cnn_model.train(model, ds, ds, p, ["a", "b"])

    history = run("--epochs=20")
    rates = [float(row["learning_rate"]) for row in history]
    assert [float(row["seconds"]) for row in history] == [10.0] * 6
    assert rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(rates, rates[1:]))

    # The same, with the first 3 epochs trained by an earlier start of the run.
    for path in tmp_path.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    run("--epochs=3", "--max_minutes=0")
    os.remove(tmp_path / "backup" / "finished.json")       # as if it had been stopped after epoch 3
    resumed = run("--epochs=20")
    assert len(resumed) == 6
    assert float(resumed[-1]["learning_rate"]) == pytest.approx(0.001)


def test_label_smoothing_trains_towards_softened_targets():
    x, y = random_faces(16, 8, 4)
    model = cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 4)
    cnn_model.compile_model(model, cnn_params.get_params(["--label_smoothing=0.2"]))
    targets = 0.8 * y + 0.2 / 4

    def cross_entropy(labels, probs):
        return float(np.mean(-np.sum(labels * np.log(np.clip(probs, 1e-7, 1.0)), axis=1)))

    # The compiled loss, on confident answers (right on half the faces), where smoothing matters.
    confident = np.where(y == 1, 0.9, 0.1 / 3)
    confident[::2] = np.roll(confident[::2], 1, axis=1)
    loss = float(model.loss(y, confident))
    assert loss == pytest.approx(cross_entropy(targets, confident), rel=1e-4)
    assert abs(loss - cross_entropy(y, confident)) > 0.1
    # ... and the loss the model reports when it evaluates.
    reported = model.evaluate(x, y, verbose=0)[0]
    assert reported == pytest.approx(cross_entropy(targets, model.predict(x, verbose=0)), rel=1e-4)


def test_a_kill_while_the_backup_is_written_leaves_the_last_one_readable(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    faces, labels = random_faces(64, 48, 7)
    model = cnn_model.build_model(cnn_params.PRESETS["conv3"], (48, 48, 1), 7)
    cnn_model.compile_model(model, cnn_params.get_params([]))
    backup_dir = tmp_path / "backup"
    backup = cnn_callbacks.AtomicBackup(str(backup_dir), delete_checkpoint=False)
    model.fit(faces, labels, epochs=1, callbacks=[backup], verbose=0)
    after_epoch_1 = model.get_weights()

    def dies_half_way(filepath, overwrite=True):      # what a SIGKILL mid-write leaves behind
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n and then nothing")
        raise RuntimeError("killed")

    monkeypatch.setattr(model, "save_weights", dies_half_way)
    with pytest.raises(RuntimeError, match="killed"):
        model.fit(faces, labels, epochs=2, callbacks=[backup], verbose=0)
    assert json.loads((backup_dir / "training_metadata.json").read_text())["epoch"] == 1
    fresh = cnn_model.build_model(cnn_params.PRESETS["conv3"], (48, 48, 1), 7)
    fresh.load_weights(str(backup_dir / "latest.weights.h5"))
    for restored, saved in zip(fresh.get_weights(), after_epoch_1):
        np.testing.assert_array_equal(restored, saved)


def test_ctrl_c_swallowed_inside_a_save_still_stops_training(tmp_path, monkeypatch):
    # Keras's saving code has a bare `except:`; a Ctrl-C landing there used to be lost
    # and the run trained on to the end (seen once in CI). Emulate that code here.
    import signal
    import tensorflow as tf
    p = cnn_params.get_params(["--epochs=5", f"--out_dir={tmp_path}"])
    x, y = random_faces(32, 8, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    real_save = cnn_storage.save_model

    def save_that_swallows_ctrl_c(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)     # Ctrl-C lands during the save ...
            for _ in range(1000):                   # (Python runs its handler between bytecodes)
                pass
        except KeyboardInterrupt:
            pass                                    # ... and library code swallows it
        real_save(*args)

    monkeypatch.setattr(cnn_storage, "save_model", save_that_swallows_ctrl_c)
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        cnn_model.train(model, ds, ds, p, ["a", "b"])
    assert signal.getsignal(signal.SIGINT) is handler_before
    # It stopped after the first epoch, with that epoch's model and backup whole.
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2
    assert cnn_model.load_model(str(tmp_path / "model.keras"))[1] == ["a", "b"]


def test_a_run_trained_but_not_yet_evaluated_is_not_trained_again(tmp_path, capsys):
    # A crash or Ctrl-C during the evaluation that follows training: the same command
    # again must evaluate the saved model, not train from scratch over it.
    import tensorflow as tf
    p = cnn_params.get_params(["--epochs=2", f"--out_dir={tmp_path}"])
    x, y = random_faces(32, 8, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    first = cnn_model.train(model, ds, ds, p, ["a", "b"])
    assert len(first) == 2 and (tmp_path / "backup" / "finished.json").exists()
    saved = (tmp_path / "model.keras").read_bytes()

    again = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    untrained = [w.copy() for w in again.get_weights()]
    assert cnn_model.train(again, ds, ds, p, ["a", "b"]) == first
    assert "training already finished" in capsys.readouterr().out
    for now, before in zip(again.get_weights(), untrained):
        np.testing.assert_array_equal(now, before)
    assert (tmp_path / "model.keras").read_bytes() == saved

    cnn_model.clear_backup(str(tmp_path))           # what cnn_run.py does once metrics.json is written
    third = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    cnn_model.train(third, ds, ds, p, ["a", "b"])
    assert "training already finished" not in capsys.readouterr().out


def test_a_run_resumed_from_an_older_history_keeps_its_columns_in_line(tmp_path):
    # A run started before "seconds" was logged, resumed now: CSVLogger appends rows
    # with that column, so the rewritten history must have it too, in the same place.
    import tensorflow as tf
    p = cnn_params.get_params(["--epochs=2", f"--out_dir={tmp_path}"])
    x, y = random_faces(32, 8, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["dense"], (8, 8, 1), 2), p)
    cnn_model.train(model, ds, ds, p, ["a", "b"])
    history = tmp_path / "history.csv"
    with open(history) as f:
        rows = list(csv.DictReader(f))
    old = [{k: v for k, v in row.items() if k != "seconds"} for row in rows[:1]]
    with open(history, "w", newline="") as f:       # epoch 1 as an older version wrote it
        writer = csv.DictWriter(f, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    shutil.rmtree(tmp_path / "backup")
    model.save_weights(str(tmp_path / "w.weights.h5"))
    (tmp_path / "backup").mkdir()
    os.replace(tmp_path / "w.weights.h5", tmp_path / "backup" / "latest.weights.h5")
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')

    resumed = cnn_model.train(model, ds, ds, p, ["a", "b"])
    assert [r["epoch"] for r in resumed] == ["0", "1"]
    assert resumed[0]["seconds"] == "" and float(resumed[1]["seconds"]) > 0
    assert resumed[0]["val_accuracy"] == old[0]["val_accuracy"]
    for row in resumed:
        assert 0 <= float(row["accuracy"]) <= 1 and 0 <= float(row["val_accuracy"]) <= 1
        assert float(row["learning_rate"]) == pytest.approx(p["learning_rate"])


def test_weight_decay_shrinks_kernels_and_leaves_batch_norm_and_biases_alone():
    x, y = random_faces(32, 8, 3)
    table = [("conv", 4, 3, "same", 2, True, 0.0), ("dense", 8, 0, "", 0, True, 0.0)]

    def train(decay):
        keras.utils.set_random_seed(0)
        model = cnn_model.build_model(table, (8, 8, 1), 3)
        # SGD at 0.1 with a decay of 5: each step takes half of every decayed weight away.
        p = cnn_params.get_params(["--optimizer=sgd", "--learning_rate=0.1", f"--weight_decay={decay}"])
        cnn_model.compile_model(model, p)
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
        return [(v.name, np.asarray(v)) for v in model.trainable_weights]     # layer names differ per model

    plain, decayed = train(0.0), train(5.0)
    assert [name for name, _ in plain].count("kernel") == 3      # conv, dense, the softmax layer
    for (name, before), (_, after) in zip(plain, decayed):
        if name == "kernel":                            # 3 steps at a half each leave about an eighth
            assert np.linalg.norm(after) < 0.3 * np.linalg.norm(before)
        if name == "gamma":                             # starts at 1; decayed, it would be near 0.125
            assert after.min() > 0.7
        if name in ("beta", "bias"):                    # start at 0 and move by their gradients alone
            assert 0 < np.abs(after).max() < 1.0


@pytest.mark.parametrize("ema, policy", [(0.0, "float32"), (0.9, "float32"), (0.9, "mixed_float16")])
def test_ema_validates_and_saves_the_average_and_backs_up_the_trained_weights(tmp_path, ema, policy):
    """--ema: the saved best model holds the moving average of the weights, and
    its logged val_accuracy is that average's; the backup a resumed run starts
    from holds the trained weights. Without --ema the two files hold the same.
    Under mixed_float16 too, where Keras wraps the optimizer to scale the loss."""
    import tensorflow as tf
    p = cnn_params.get_params(["--epochs=1", f"--ema={ema}", "--learning_rate=0.01", f"--out_dir={tmp_path}"])
    x, y = random_faces(96, 16, 2)
    train_ds = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(8)
    val_ds = tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(8)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["fer_sota_narrow"], (16, 16, 1), 2), p)
        history = cnn_model.train(model, train_ds, val_ds, p, ["a", "b"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[2].compute_dtype == ("float16" if policy == "mixed_float16" else "float32")

    saved, _, _ = cnn_model.load_model(str(tmp_path / "model.keras"))
    trained = cnn_model.build_model(cnn_params.PRESETS["fer_sota_narrow"], (16, 16, 1), 2)
    trained.load_weights(str(tmp_path / "backup" / "latest.weights.h5"), skip_mismatch=True)
    differ = [not np.array_equal(a, b) for a, b in zip(saved.get_weights(), trained.get_weights())]
    assert any(differ) == (ema > 0)
    saved.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    assert saved.evaluate(val_ds, return_dict=True, verbose=0)["accuracy"] == pytest.approx(
        float(history[0]["val_accuracy"]), abs=1e-6)


def test_without_validation_faces_every_epoch_is_saved_and_the_last_one_kept(tmp_path):
    """validation_split 0: no val_ds, so nothing chooses an epoch; model.keras must hold the
    weights the run ended with, not the first epoch's, and a diverged epoch is never saved."""
    import tensorflow as tf
    p = cnn_params.get_params(["--epochs=3", "--learning_rate=0.01", "--lr_schedule=cosine", f"--out_dir={tmp_path}"])
    x, y = random_faces(64, 16, 2)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = cnn_model.compile_model(cnn_model.build_model(cnn_params.PRESETS["fer_sota_narrow"], (16, 16, 1), 2), p)
    history = cnn_model.train(model, train_ds, None, p, ["a", "b"])
    assert len(history) == 3 and not any(map(cnn_history.validated, history))
    saved, _, _ = cnn_model.load_model(str(tmp_path / "model.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), model.get_weights()))

    # An epoch whose loss is NaN leaves the saved model alone.
    before = (tmp_path / "model.keras").stat().st_mtime_ns
    keeper = cnn_callbacks.SaveBest(str(tmp_path / "model.keras"), ["a", "b"], p)
    keeper.set_model(model)
    keeper.on_epoch_end(3, {"loss": float("nan"), "accuracy": 0.5})
    assert (tmp_path / "model.keras").stat().st_mtime_ns == before
    keeper.on_epoch_end(3, {"loss": 0.5, "accuracy": 0.5})
    assert (tmp_path / "model.keras").stat().st_mtime_ns != before
