"""Build a network from a layer table, train it, save it with its class names, load it back, predict.

Written against Keras 3 (`import keras`, never `tf.keras`), so the model code
also runs on the JAX backend (KERAS_BACKEND=jax). Beside it, one concern each:
cnn_callbacks.py keeps a training run safe and on schedule, cnn_device.py says
where and in what precision it computes, cnn_teacher.py holds distillation,
cnn_metrics.py the scores, cnn_history.py a run's history.csv, and cnn_export.py
writes other runtimes' formats.
"""
import json
import os
import shutil
import signal
import threading
import zipfile

import keras

import cnn_callbacks
import cnn_history
import cnn_predict
import cnn_storage


ModelError = cnn_predict.ModelError       # a model file that cannot be used, said in one line


# ------------------------------------------------------------------ build

def build_model(table, input_shape, n_classes, dense_init="glorot_uniform", name="fer", vgg16_weights="",
                fused_batchnorm=True):
    """A keras.Model from a layer table of cnn_params.PRESETS.

    Each row is (layer, filters/units, kernel, padding, pool, batchnorm, dropout).
    The model takes pixel values 0..255 and rescales them itself, so a saved
    model needs no preprocessing code beside it. The softmax output stays
    float32 under any mixed-precision policy. Batch norm is our
    FusedBatchNormalization (below), or Keras's own with fused_batchnorm=False.
    """
    batch_norm = FusedBatchNormalization if fused_batchnorm else keras.layers.BatchNormalization
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    flat = False
    for i, row in enumerate(table, 1):
        if len(row) != 7:
            raise ValueError(f"layer table row {i} {row}: expected 7 columns "
                             "(layer, filters/units, kernel, padding, pool, batchnorm, dropout)")
        layer, size, kernel, padding, pool, batchnorm, dropout = row
        if batchnorm not in (False, True, "after_relu"):
            raise ValueError(f"layer table row {i} {row}: batchnorm is False, True or 'after_relu', not {batchnorm!r}")
        # batchnorm True: the layer, batch norm, then ReLU. Otherwise ReLU inside the layer,
        # then batch norm after it for "after_relu" (the FER-2013 report's order).
        activation = None if batchnorm is True else "relu"
        if layer == "conv":
            x = keras.layers.Conv2D(size, kernel, padding=padding, activation=activation)(x)
        elif layer == "vgg16":
            x = _vgg16_base(x, vgg16_weights)
        elif layer == "dense":
            if not flat:
                x, flat = keras.layers.Flatten()(x), True
            x = keras.layers.Dense(size, activation=activation, kernel_initializer=dense_init)(x)
        else:
            raise ValueError(f"layer table row {i} {row}: unknown layer {layer!r}; use 'conv', 'dense' or 'vgg16'")
        if batchnorm:
            x = batch_norm()(x)
        if batchnorm is True:
            x = keras.layers.ReLU()(x)
        if layer == "conv" and pool:
            x = keras.layers.MaxPooling2D(pool)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    if not flat:
        x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="expression")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="fer_toolkit")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, computed by TensorFlow's fused kernel.

    Keras 3 normalises in a string of separate operations (cast to float32,
    mean, variance, scale, shift, cast back), each one a pass over the feature
    maps, and as many again for the gradient: on our 2-core CPU they took a
    third of a fer_sota training step. TensorFlow's fused kernel makes one pass
    each way, and fer_sota trains 1.5x as fast under mixed_bfloat16
    (bench/bench.py measures both). Same weights, same statistics (the batch
    variance without Bessel's correction, as Keras keeps it), same saved
    config. Keras's own code runs where the kernel does not apply: on JAX
    (whose compiler fuses by itself), after a dense layer, with a mask.
    A model saved with this layer needs this module imported to load, as
    cnn_eval.py does; `cnn_export.py --format=keras` writes Keras's layer.
    """

    def call(self, inputs, training=None, mask=None):
        if (keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4 or mask is not None
                or self.axis not in (-1, 3) or self.renorm or self.synchronized):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf
        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones(channels)
        offset = self.beta if self.center else tf.zeros(channels)
        if training and self.trainable:
            x, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, is_training=True)
            # The kernel hands back the variance with Bessel's correction, n / (n - 1).
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), "float32")
            variance = variance * (n - 1) / n
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            x, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False)
        return tf.cast(x, self.compute_dtype)


def _vgg16_base(x, weights_path):
    """The convolutional part of VGG16 on a grayscale face.

    VGG16 wants 3 channels and enough resolution (five 2x2 poolings: 48x48
    ends at 1x1, 96x96 at 3x3), so the grey channel is repeated three times.
    ImageNet weights are used only from a local file (no download at run
    time); with them, pixels are shifted as the weights expect (0..255 less the
    ImageNet mean).
    """
    x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = keras.layers.Rescaling(255.0, offset=-117.0, name="imagenet_range")(x)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=tuple(x.shape[1:]))
    if weights_path:
        base.load_weights(weights_path)
        print(f"vgg16: ImageNet weights from {weights_path}")
    else:
        print("vgg16: no --vgg16_weights file given; the base starts from random weights")
    return base(x)


def compile_model(model, p, weighted=False):
    # Keras decays decoupled from the gradient (AdamW's way), scaled by the learning rate, so the decay
    # anneals with the schedule. None, not 0, turns it off: with 0 Keras would still run a decay step that does nothing.
    decay = p["weight_decay"] or None
    # --ema: the optimizer keeps the moving average of the weights, updated inside each compiled training step.
    average = dict(use_ema=p["ema"] > 0, ema_momentum=p["ema"] or 0.99)
    if p["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(p["learning_rate"], weight_decay=decay, **average)
    elif p["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(p["learning_rate"], momentum=0.9, nesterov=True, weight_decay=decay, **average)
    elif p["optimizer"] == "rmsprop":      # the 8-class report's, with its rho
        optimizer = keras.optimizers.RMSprop(p["learning_rate"], rho=0.9, weight_decay=decay, **average)
    else:
        raise ValueError(f"unknown optimizer {p['optimizer']!r}; use 'adam', 'sgd' or 'rmsprop'")
    if decay:
        # Batch norm's scale and shift and the biases set levels, not capacity: decaying them only pulls
        # activations towards zero (timm leaves them out too).
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=p["label_smoothing"])
    # Several processes fill up a short last batch with faces weighted 0 (cnn_data.array_batches): accuracy
    # must then count sample weights, which Keras does for weighted_metrics alone.
    model.compile(optimizer=optimizer, loss=loss, **({"weighted_metrics": ["accuracy"]} if weighted else
                                                      {"metrics": ["accuracy"]}))
    return model


# ------------------------------------------------------------------ load

def load_model(path):
    """Load a .keras file saved by save_model. Returns (model, class names, parameters).

    safe_mode=True: a file that carries code (a Lambda layer) is refused, and
    nothing in it is unpickled.
    """
    if str(path).endswith(".tflite"):      # the fast models, or any exported TFLite file
        return cnn_predict.load_lite(path)
    if os.path.isdir(path):
        raise ModelError(f"{path}: a folder where a .keras model file is expected (e.g. {os.path.join(path, 'model.keras')})")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file; train one with `python cnn_run.py`, or give --model=PATH "
                         "(--model=shipped or --model=fast, the models inside the toolkit, need no training)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras .keras model file (not a zip archive; truncated or another format)")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:      # Keras raises many types here; the message is what matters
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: cannot be loaded as a Keras model: {first_line}") from None
    meta = cnn_storage.stored_meta(path)
    if meta is None:
        n = model.output_shape[-1]
        print(f"note: {path} was not saved by this toolkit; its classes are named class_0..class_{n - 1}")
        meta = {"classes": [f"class_{i}" for i in range(n)], "params": {}}
    if model.output_shape[-1] != len(meta["classes"]):
        raise ModelError(f"{path}: the model has {model.output_shape[-1]} outputs "
                         f"but {len(meta['classes'])} class names are stored with it")
    return model, meta["classes"], meta["params"]


def load_models(paths):
    """Several model files, .keras or .tflite, to be averaged: cnn_predict.load_models with Keras."""
    return cnn_predict.load_models(paths, load_model)


# ------------------------------------------------------------------ train


def train(model, train_ds, val_ds, p, classes, class_weight=None, steps_per_epoch=None, loss_shares=None):
    """model.fit with the callbacks that keep a run safe, resuming an interrupted one.

    out_dir/backup holds the state of the last finished epoch (cnn_callbacks.AtomicBackup):
    the same command started again after a crash or Ctrl-C continues from there.
    history.csv is cut back to that epoch, so it reads as if the run never stopped.
    When training ends, backup/finished.json says so, and the backup stays until
    the caller has evaluated the model (clear_backup): a crash or Ctrl-C during
    the evaluation then reruns the evaluation, not hours of training.

    A resumed run is the run that would have been: train_ds starts at the first epoch not
    backed up and draws every batch from (seed, epoch, batch) (cnn_data.make_dataset, one
    stream of steps_per_epoch batches an epoch); the model's dropout and noise are seeded by
    the epoch (EpochSeeds); the plateau schedule replays the epochs done. On the same machine
    it ends with the weights and metrics of the same command never interrupted.
    """
    out = p["out_dir"]
    os.makedirs(out, exist_ok=True)
    history_path = os.path.join(out, "history.csv")
    backup_dir = os.path.join(out, "backup")
    finished_path = os.path.join(backup_dir, "finished.json")
    if os.path.exists(finished_path):
        print(f"training already finished ({finished_path}); evaluating its saved model")
        return cnn_history.read_history(history_path)
    done = finished_epochs(out)
    rows = cnn_history.read_history(history_path)[:done]
    if done:
        print(f"resuming from {backup_dir}: {done} of {p['epochs']} epochs already done")
    cnn_history.write_history(history_path, rows)
    best = max((float(r["val_accuracy"]) for r in rows if cnn_history.validated(r)), default=-1.0)

    clock = cnn_callbacks.EpochTime(float(r["seconds"]) for r in rows if r.get("seconds"))
    callbacks = [cnn_callbacks.WholeSetLoss(*loss_shares)] if loss_shares else []    # first: the others read the loss
    callbacks += [
        # Order matters: the learning-rate callback puts the epoch's rate into the
        # logs before the history row is written, and the history row and the best
        # model are written before the backup, so a kill in between redoes the
        # epoch rather than losing its row.
        cnn_callbacks.EpochSeeds(),
        cnn_callbacks.learning_rate_callback(p, clock, rows),
        cnn_callbacks.AveragedValidation(),
        clock,
        keras.callbacks.CSVLogger(history_path, append=True),
        cnn_callbacks.SaveBest(os.path.join(out, "model.keras"), classes, p, best),
        keras.callbacks.TerminateOnNaN(),
        cnn_callbacks.TimeBudget(clock, p["max_minutes"]),
        cnn_callbacks.AtomicBackup(backup_dir, delete_checkpoint=False),
        ctrl_c := cnn_callbacks.CtrlC(),            # last: an epoch's saves finish before Ctrl-C stops the run
    ]
    # Signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps Python's default.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, ctrl_c.press) for s in ctrl_c.SIGNALS} if in_main_thread else {}
    try:
        # shuffle=False: the tf.data pipeline shuffles (Keras would only warn that it cannot).
        model.fit(train_ds, validation_data=val_ds, epochs=p["epochs"], steps_per_epoch=steps_per_epoch,
                  class_weight=class_weight, callbacks=callbacks, shuffle=False, verbose=2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if ctrl_c.pressed:                # pressed after the last epoch's callbacks ran
        raise KeyboardInterrupt(ctrl_c.pressed)
    history = cnn_history.read_history(history_path)
    # The settings too: a run killed while it is evaluated is evaluated again only by its own command.
    cnn_storage.write_json(finished_path, {"epochs": len(history), "params": p})
    return history


def clear_backup(out_dir):
    """Remove out_dir/backup once a run is trained and evaluated: the next run there starts afresh."""
    shutil.rmtree(os.path.join(out_dir, "backup"), ignore_errors=True)


def finished_epochs(out_dir):
    """How many epochs of the run in out_dir are done and backed up (0 for a new run)."""
    path = os.path.join(out_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


# ------------------------------------------------------------------ predict

# Prediction and test-time augmentation need no Keras, so that scoring installs without it; they
# live in cnn_predict.py and keep their names here for the training side.
predict = cnn_predict.predict
predict_one = cnn_predict.predict_one
ten_crops = cnn_predict.ten_crops
ten_crop_views = cnn_predict.ten_crop_views
CROP_FRACTION = cnn_predict.CROP_FRACTION


if __name__ == "__main__":
    # `python cnn_model.py export ...` was the export command before it had a file of its own.
    import sys
    sys.exit("error: cnn_model.py is a module, not a command; to export a model: python cnn_export.py "
             "--model=log/model.keras --format=tflite (python cnn_export.py --help lists the formats)")
