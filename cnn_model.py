"""Build a network from a layer table, train it, save it with its class names, load it back.

Written against Keras 3 (`import keras`, never `tf.keras`), so the model code
also runs on the JAX backend (KERAS_BACKEND=jax).
"""
import csv
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
import zipfile

import numpy as np
import keras

import cnn_data

META_FILE = "fer_toolkit.json"   # class names and parameters, stored inside the .keras zip
TEACHER_FILE = "teacher.npz"      # a distilled run's teacher probabilities, kept in its out_dir


class ModelError(Exception):
    """A model file that cannot be used, said in one line."""


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
    cnn_eval.py does; `cnn_model.py export --format=keras` writes Keras's layer.
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


def distribution(name):
    """The tf.distribute strategy to build and train under, and its number of replicas.

    "auto" mirrors over the GPUs when there are several and otherwise uses the
    one default device; "mirrored" always mirrors, over the GPUs or, without
    any, over the CPU devices. Keras's fit then splits each global batch
    between the replicas and averages their gradients.
    """
    import contextlib
    if keras.backend.backend() != "tensorflow":
        if name == "mirrored":
            raise ValueError("--strategy=mirrored needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
        return contextlib.nullcontext(), 1
    import tensorflow as tf
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto" and len(gpus) < 2:
        return contextlib.nullcontext(), 1
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    return strategy.scope(), strategy.num_replicas_in_sync


def machine():
    """What a run computes on, for its metrics.json: e.g. "jax on NVIDIA H100 80GB HBM3"
    or "tensorflow on CPU (AMD EPYC, 2 cores, avx512_bf16)". Wall times mean little
    without it, and a time budget's epochs depend on it."""
    gpu = gpu_device()
    return f"{keras.backend.backend()} on {gpu['name'] if gpu else f'CPU ({cpu_name()})'}"


def gpu_device():
    """The first GPU the backend computes on, as {"name", "capability"} (CUDA compute
    capability as (major, minor), or None when the backend does not say), or None."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        capability = getattr(device, "compute_capability", None)       # "9.0" on CUDA
        return {"name": device.device_kind,
                "capability": tuple(int(part) for part in capability.split(".")) if capability else None}
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return {"name": details.get("device_name", "GPU"), "capability": details.get("compute_capability")}
    if backend == "torch":
        import torch
        if not torch.cuda.is_available():
            return None
        return {"name": torch.cuda.get_device_name(0), "capability": torch.cuda.get_device_capability(0)}
    return None


def cpu_info():
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


BF16_INSTRUCTIONS = ("amx_bf16", "avx512_bf16")   # the CPU flags of native bfloat16 arithmetic


def bf16_instructions(info):
    """The bfloat16 instructions (AMX, AVX512-BF16) that a /proc/cpuinfo text names."""
    return [flag for flag in BF16_INSTRUCTIONS if f" {flag}" in info]


def cpu_name():
    """The processor's model name, its cores and its bfloat16 instructions (AMX or
    AVX512-BF16, which make mixed_bfloat16 pay), from /proc/cpuinfo where there is one."""
    info = cpu_info()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = " ".join(bf16_instructions(info))
    return ", ".join(part for part in (name, f"{os.cpu_count()} cores", flags) if part)


def compute_policy(precision):
    """The Keras dtype policy to train under for --precision, and a line to print about it ("" for none).

    "auto" picks what is fast where the run computes: mixed_bfloat16 on a CPU
    with bfloat16 instructions (AMX or AVX512-BF16: 1.4-1.9x float32's speed)
    and on a GPU that has bfloat16 (compute capability 8.0 on, as the H100
    of our GPU runs, docs/gpu.md), mixed_float16 on an older GPU or one that does
    not report its capability, and float32 on any other CPU. Without those
    instructions a CPU emulates bfloat16: fer_sota trained at 9 images/s under
    mixed_bfloat16 against 94 in float32 on a 2-core AVX2 machine
    (bench/bench.py). Asked for by name there, it is kept, with a warning.
    """
    gpu = gpu_device()
    cpu_bf16 = bool(bf16_instructions(cpu_info()))
    if precision == "auto":
        if gpu:
            chosen = "mixed_bfloat16" if (gpu["capability"] or (0, 0)) >= (8, 0) else "mixed_float16"
            return chosen, f"precision: {chosen} (auto, on {gpu['name']})"
        if cpu_bf16:
            return "mixed_bfloat16", "precision: mixed_bfloat16 (auto: this CPU has bfloat16 instructions)"
        return "float32", "precision: float32 (auto: this CPU has no bfloat16 instructions, AMX or AVX512-BF16)"
    if precision == "mixed_bfloat16" and not gpu and not cpu_bf16:
        return precision, ("warning: --precision=mixed_bfloat16 on a CPU without bfloat16 instructions (AMX or "
                           "AVX512-BF16): it is emulated, and trained fer_sota 10x slower than float32 on such a CPU; "
                           "--precision=auto picks float32 here")
    return precision, ""


def compile_model(model, p):
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
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


# ------------------------------------------------------------------ save and load

def save_model(model, path, classes, params):
    """Write model.keras atomically, with the class names and parameters inside it.

    The model goes to a temporary file in the same folder, which is renamed
    over `path` only when complete: a crash never leaves a half-written model.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=folder)
    os.close(fd)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_FILE, json.dumps({"classes": list(classes), "params": params}, indent=1))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    """Write a JSON file atomically (temporary file, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def load_model(path):
    """Load a .keras file saved by save_model. Returns (model, class names, parameters).

    safe_mode=True: a file that carries code (a Lambda layer) is refused, and
    nothing in it is unpickled.
    """
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file; train one with `python cnn_run.py`, or give --model=PATH "
                         "(--model=pretrained/fer2013.keras needs no training)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras .keras model file (not a zip archive; truncated or another format)")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:      # Keras raises many types here; the message is what matters
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: cannot be loaded as a Keras model: {first_line}") from None
    meta = stored_meta(path)
    if meta is None:
        n = model.output_shape[-1]
        print(f"note: {path} was not saved by this toolkit; its classes are named class_0..class_{n - 1}")
        meta = {"classes": [f"class_{i}" for i in range(n)], "params": {}}
    if model.output_shape[-1] != len(meta["classes"]):
        raise ModelError(f"{path}: the model has {model.output_shape[-1]} outputs "
                         f"but {len(meta['classes'])} class names are stored with it")
    return model, meta["classes"], meta["params"]


def stored_meta(path):
    """The class names and parameters that save_model stored in a .keras file, read
    without loading the network; None for a file that holds none (or no such zip
    file: load_model says what is wrong with it)."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if META_FILE in archive.namelist():
            return json.loads(archive.read(META_FILE))
    return None


def load_models(paths):
    """Several models saved by save_model, to be averaged (an ensemble, or a teacher):
    the models, their class names and each one's stored parameters. A file that cannot
    be used, or whose classes or input differ from the first's, is a one-line ModelError."""
    models, classes, all_params = [], None, []
    for path in paths:
        model, its_classes, params = load_model(path)
        _, height, width, _ = model.input_shape
        if params and (params.get("img_height"), params.get("img_width")) != (height, width):
            raise ModelError(f"{path}: its input is {height}x{width} but its stored parameters say "
                             f"{params.get('img_height')}x{params.get('img_width')}; the file is inconsistent")
        if not models:
            classes = its_classes
        elif (its_classes, model.input_shape) != (classes, models[0].input_shape):
            raise ModelError(f"{path}: its classes ({', '.join(its_classes)}) or input {model.input_shape[1:]} differ "
                             f"from {paths[0]}'s ({', '.join(classes)}; {models[0].input_shape[1:]}): an ensemble "
                             f"averages models of the same classes and input")
        models.append(model)
        all_params.append(params)
    return models, classes, all_params


def teacher_targets(teacher, images, labels, files, classes, p):
    """Distillation's training targets, and the teacher's own probabilities.

    Each face's target is teacher_weight of the teacher's probabilities and the
    rest of its one-hot label. The teacher is a list of saved models (face and
    mirror averaged, several models averaged), or one teacher file (.npz) that
    holds such probabilities, written by an earlier run (see save_teacher_file).
    files are the student's training files, before augment_dataset adds copies."""
    if is_teacher_file(teacher):
        soft = read_teacher_file(teacher[0], len(images), files, classes, p)
    else:
        soft = teacher_probabilities(teacher, images, classes, p)
    one_hot = np.eye(len(classes), dtype=np.float32)[labels]
    return (p["teacher_weight"] * soft + (1 - p["teacher_weight"]) * one_hot).astype(np.float32), soft


def is_teacher_file(teacher):
    """Whether --teacher (as a list) names one teacher file rather than models."""
    return len(teacher) == 1 and teacher[0].endswith(".npz")


def teacher_probabilities(paths, images, classes, p):
    """The saved models' probabilities for each face, face and mirror averaged, models averaged.
    A teacher must know the same classes, take the same input, and have held out
    the student's validation faces (check_split). A mismatch is a one-line ModelError."""
    models, its_classes, all_params = load_models(paths)
    if its_classes != list(classes):
        raise ModelError(f"{paths[0]}: a teacher must know the same classes in the same order: it has "
                         f"{', '.join(its_classes)}; the data has {', '.join(classes)}")
    if models[0].input_shape[1:] != images.shape[1:]:
        raise ModelError(f"{paths[0]}: the teacher takes {models[0].input_shape[1:]} faces; the student is fed "
                         f"{images.shape[1:]} (set img_height, img_width and channels alike)")
    for path, params in zip(paths, all_params):
        check_split(path, "the teacher", params, p)
    return np.mean([predict(model, images, tta="flip") for model in models], axis=0).astype(np.float32)


def check_split(path, what, params, p):
    """A model that teaches or starts this run must have held out all of its validation faces,
    or it learned the faces that choose this run's best epoch: the same seed and faces to draw
    from, and a validation_split as large or larger (cnn_data.holds_out). A run that draws no
    validation faces from train/ (none held out, or a val/ folder of its own) has none to keep
    from it (cnn_data.draws_validation)."""
    if not params or not cnn_data.draws_validation(p) or cnn_data.holds_out(params, p):
        return
    keys = ["seed", "validation_split"] + [k for k in cnn_data.SPLIT_SOURCE[1:] if params.get(k, p[k]) != p[k]]
    smaller = " or less" if params.get("validation_split") else ""
    raise ModelError(f"{path}: {what} held out another validation split ("
                     + ", ".join(f"{k} {params.get(k)}" for k in keys) + "); train with "
                     + " ".join(f"--{k}={params.get(k)}" for k in keys) + smaller)


# What a teacher file must agree on with the run that reads it: the split, and the
# balancing copies that augment_dataset appends after the training faces.
TEACHER_FILE_PARAMS = ("seed", "validation_split", "augment_dataset", "noise_std", "img_height", "img_width")


def save_teacher_file(path, soft, files, classes, p):
    """The teacher's probabilities with what they belong to, so that a resumed run, or
    another student on another machine, need not label the faces again (minutes on a
    CPU). Files are stored relative to data_dir, so the data may move."""
    np.savez_compressed(path, probabilities=soft.astype(np.float32), classes=np.array(classes),
                        files=np.array([relative_to(f, p["data_dir"]) for f in files]),
                        teacher=np.array(p["teacher"]), **{k: np.array(p[k]) for k in TEACHER_FILE_PARAMS})


def read_teacher_file(path, n_faces, files, classes, p):
    """The probabilities of a teacher file, checked against the run that reads them: the
    same classes, validation split (when the run draws one from train/), training files
    in the same order, and balancing copies."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {key: f[key] for key in f.files}
        soft = stored["probabilities"]
        stored_params = {k: stored[k].item() for k in TEACHER_FILE_PARAMS}
        its_classes, its_files = list(stored["classes"]), list(stored["files"])
    except Exception as error:      # not a zip, a key missing, ...: which one matters less than the file
        raise ModelError(f"{path}: not a teacher file written by cnn_run.py ({type(error).__name__}: {error})") from None
    if its_classes != list(classes):
        raise ModelError(f"{path}: the teacher's classes are {', '.join(its_classes)}; the data has {', '.join(classes)}")
    check_split(path, "the teacher file's run", stored_params, p)
    for key in TEACHER_FILE_PARAMS[2:]:
        if stored_params[key] != p[key]:
            raise ModelError(f"{path}: written with --{key}={stored_params[key]}; this run has --{key}={p[key]}")
    if its_files != [relative_to(f, p["data_dir"]) for f in files] or soft.shape != (n_faces, len(classes)):
        raise ModelError(f"{path}: labels other training faces ({len(its_files):,} files) than this run's "
                         f"({len(files):,} in {p['data_dir']}); label them again with --teacher=MODEL.keras")
    return soft


def teacher_of(path):
    """The --teacher that wrote a teacher file ("" when it is none, or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return str(f["teacher"])
    except Exception:
        return ""


def relative_to(path, folder):
    """A file's path inside folder (as written), or the path itself when it is not inside (a CSV row)."""
    prefix = os.path.join(folder, "")
    return path[len(prefix):] if path.startswith(prefix) else path


# ------------------------------------------------------------------ train

class SaveBest(keras.callbacks.Callback):
    """Save model.keras (atomically, with class names) whenever val_accuracy improves;
    with no validation faces (validation_split 0), after every epoch: the last one is kept."""

    def __init__(self, path, classes, params, best=-1.0):
        super().__init__()
        # Not self.params: Keras sets that attribute on every callback.
        self.path, self.classes, self.run_params, self.best = path, classes, params, best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(logs.get("loss", 0.0)):     # a diverged epoch is never kept
            return
        if "val_accuracy" not in logs or logs["val_accuracy"] > self.best:    # no validation: the newest epoch
            self.best = logs.get("val_accuracy", self.best)
            # With --ema the score is the averaged weights' (AveragedValidation), so they are what is saved.
            swap_averaged_weights(self.model)
            try:
                save_model(self.model, self.path, self.classes, self.run_params)
            finally:
                swap_averaged_weights(self.model)


def swap_averaged_weights(model):
    """Swap the model's trained weights with the optimizer's moving average of them (--ema);
    a second call swaps them back. Does nothing when the optimizer keeps no average.

    Keras's own SwapEMAWeights callback swaps for validation but, to save the average
    as well, would leave it in the model for the backup: a resumed run would then go on
    training from the average. Here the trained weights are always back in the model
    before the backup is written. (The average lives in private optimizer attributes,
    the ones SwapEMAWeights uses.)
    """
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)   # LossScaleOptimizer wraps it
    if not getattr(optimizer, "use_ema", False):
        return
    for weight, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
        trained = keras.ops.convert_to_numpy(weight)
        weight.assign(average)
        average.assign(trained)


class AveragedValidation(keras.callbacks.Callback):
    """Validate the averaged weights (--ema) instead of the trained ones: val_accuracy,
    and so the choice of the best epoch, is the average's."""

    def on_test_begin(self, logs=None):
        swap_averaged_weights(self.model)

    on_test_end = on_test_begin


class EpochTime(keras.callbacks.Callback):
    """Put each epoch's duration into its history row ("seconds"): summed, they give
    a resumed run's training time, which no single process saw whole. The epochs
    timed before a resume (past_seconds) count towards the time budget too."""

    def __init__(self, past_seconds=()):
        super().__init__()
        self.seconds = list(past_seconds)

    def epochs_that_fit(self, epochs, max_seconds):
        """How many epochs in all fit max_seconds of training, judged by the mean
        epoch so far; `epochs` when there is no budget or no epoch timed yet."""
        if not max_seconds or not self.seconds:
            return epochs
        mean = sum(self.seconds) / len(self.seconds)
        return max(1, min(epochs, int(max_seconds / mean)))

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.time() - self.started, 3))
        if logs is not None:
            logs["seconds"] = self.seconds[-1]


class TimeBudget(keras.callbacks.Callback):
    """Stop before an epoch that would not finish within max_minutes of training,
    counting the epochs before a resume. The next epoch is assumed to take as
    long as the mean one so far."""

    def __init__(self, clock, max_minutes):
        super().__init__()
        self.clock, self.max_seconds = clock, max_minutes * 60

    def on_epoch_end(self, epoch, logs=None):
        # The same count the cosine schedule anneals over, so the two never disagree.
        if self.max_seconds and len(self.clock.seconds) >= self.clock.epochs_that_fit(math.inf, self.max_seconds):
            print(f"time budget of {self.max_seconds / 60:g} minutes reached after epoch {epoch + 1}")
            self.model.stop_training = True


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, with each backup file replaced whole.

    Keras writes latest.weights.h5 in place: a SIGKILL that lands during that
    write (our resume test caught one) leaves a half-written file, and the next
    start fails to read it. Here the weights go to a temporary file that is then
    renamed, and the epoch count is written after them the same way, so a kill
    leaves the last finished epoch's backup as it was.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._weights_path.replace(".weights.h5", ".tmp.weights.h5")   # Keras wants this suffix
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self._weights_path)
        write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class CtrlC(keras.callbacks.Callback):
    """Ctrl-C stops training between two batches, never in the middle of a save.

    Python raises KeyboardInterrupt wherever the signal lands, and Keras's model
    saving has a bare `except:` that can swallow it: one CI run trained on to the
    end after its Ctrl-C. Here the signal only sets a flag, and the interrupt is
    raised from this callback, after the batch (or the epoch's saves) finished.
    A second Ctrl-C interrupts at once.
    """

    def __init__(self):
        super().__init__()
        self.pressed = False

    def press(self, signum, frame):
        self.pressed = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_train_batch_end(self, batch, logs=None):
        if self.pressed:
            raise KeyboardInterrupt

    on_test_batch_end = on_epoch_end = on_train_batch_end


def train(model, train_ds, val_ds, p, classes, class_weight=None):
    """model.fit with the callbacks that keep a run safe, resuming an interrupted one.

    out_dir/backup holds the state of the last finished epoch (AtomicBackup):
    the same command started again after a crash or Ctrl-C continues from there.
    history.csv is cut back to that epoch, so it reads as if the run never stopped.
    When training ends, backup/finished.json says so, and the backup stays until
    the caller has evaluated the model (clear_backup): a crash or Ctrl-C during
    the evaluation then reruns the evaluation, not hours of training.
    """
    out = p["out_dir"]
    os.makedirs(out, exist_ok=True)
    history_path = os.path.join(out, "history.csv")
    backup_dir = os.path.join(out, "backup")
    finished_path = os.path.join(backup_dir, "finished.json")
    if os.path.exists(finished_path):
        print(f"training already finished ({finished_path}); evaluating its saved model")
        return _read_history(history_path)
    done = finished_epochs(out)
    rows = _read_history(history_path)[:done]
    if done:
        print(f"resuming from {backup_dir}: {done} of {p['epochs']} epochs already done")
    _write_history(history_path, rows)
    best = max((float(r["val_accuracy"]) for r in rows if validated(r)), default=-1.0)

    clock = EpochTime(float(r["seconds"]) for r in rows if r.get("seconds"))
    callbacks = [
        # Order matters: the learning-rate callback puts the epoch's rate into the
        # logs before the history row is written, and the history row and the best
        # model are written before the backup, so a kill in between redoes the
        # epoch rather than losing its row.
        learning_rate_callback(p, clock),
        AveragedValidation(),
        clock,
        keras.callbacks.CSVLogger(history_path, append=True),
        SaveBest(os.path.join(out, "model.keras"), classes, p, best),
        keras.callbacks.TerminateOnNaN(),
        TimeBudget(clock, p["max_minutes"]),
        AtomicBackup(backup_dir, delete_checkpoint=False),
        ctrl_c := CtrlC(),            # last: an epoch's saves finish before Ctrl-C stops the run
    ]
    # Signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps Python's default.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, ctrl_c.press) if in_main_thread else None
    try:
        # shuffle=False: the tf.data pipeline shuffles (Keras would only warn that it cannot).
        model.fit(train_ds, validation_data=val_ds, epochs=p["epochs"], class_weight=class_weight,
                  callbacks=callbacks, shuffle=False, verbose=2)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    if ctrl_c.pressed:                # pressed after the last epoch's callbacks ran
        raise KeyboardInterrupt
    history = _read_history(history_path)
    write_json(finished_path, {"epochs": len(history)})
    return history


def validated(row):
    """Whether an epoch of history.csv was validated: without validation faces, CSVLogger writes NA there."""
    return row.get("val_accuracy", "") not in ("", "NA")


def clear_backup(out_dir):
    """Remove out_dir/backup once a run is trained and evaluated: the next run there starts afresh."""
    shutil.rmtree(os.path.join(out_dir, "backup"), ignore_errors=True)


def learning_rate_callback(p, clock=None):
    """"plateau": divide the rate when val_loss stalls (the FER-2013 report's "best" recipe).
    "constant": learning_rate throughout (the reports' other networks).
    "cosine": anneal from learning_rate to min_learning_rate over `epochs`, by
    epoch number, so a resumed run and a rerun with the same seed get the same rates.
    With a time budget (max_minutes) and the run's EpochTime clock, over the
    epochs that fit the budget instead, when fewer do: on a slower or busier
    machine than planned, the run still ends annealed rather than being stopped
    on its way down. The rates then depend on the machine's speed.
    """
    if p["lr_schedule"] == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=p["lr_factor"],
                                                 patience=p["lr_patience"], min_lr=p["min_learning_rate"])
    if p["lr_schedule"] == "constant":
        # A scheduler all the same, so that history.csv logs the rate of every epoch as under the others.
        return keras.callbacks.LearningRateScheduler(lambda epoch: p["learning_rate"])
    if p["lr_schedule"] == "cosine":
        top, floor = p["learning_rate"], p["min_learning_rate"]

        def rate(epoch):
            epochs = clock.epochs_that_fit(p["epochs"], p["max_minutes"] * 60) if clock else p["epochs"]
            last = max(epochs - 1, 1)
            return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * min(epoch / last, 1.0)))
        return keras.callbacks.LearningRateScheduler(rate)
    raise ValueError(f"unknown lr_schedule {p['lr_schedule']!r}; use 'plateau', 'constant' or 'cosine'")


def finished_epochs(out_dir):
    """How many epochs of the run in out_dir are done and backed up (0 for a new run)."""
    path = os.path.join(out_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def _read_history(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_history(path, rows):
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return
    # The columns in CSVLogger's order, so the rows it appends line up; "seconds"
    # (blank) is added to a history from before it was recorded.
    fields = ["epoch"] + sorted(set(rows[0]) - {"epoch"} | {"seconds"})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------ predict and score

def predict(model, images, tta="none", batch_size=256):
    """Class probabilities for a (n, h, w, 1) array of 0..255 pixels.

    Test-time augmentation averages the probabilities of several views of each face:
    tta="flip": the image and its mirror (faces are near-symmetric, their labels fully so);
    tta="crops": ten-crop, the four corner crops and the centre crop (CROP_FRACTION
    of each side), each with its mirror, resized back to the input size.
    """
    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    if tta not in ("none", "flip", "crops"):
        raise ValueError(f"unknown tta {tta!r}; use 'none', 'flip' or 'crops'")
    images = images.astype(np.float32)
    if tta == "none":
        views = [images]
    elif tta == "flip":
        views = [images, images[:, :, ::-1]]
    else:
        views = ten_crop_views(images)
    probabilities = [np.asarray(model.predict(view, batch_size=batch_size, verbose=0)) for view in views]
    return np.mean(probabilities, axis=0)


CROP_FRACTION = 0.9     # ten-crop side, as a fraction of the image side (43 of 48 pixels)


def ten_crops(images, fraction=CROP_FRACTION):
    """The 10 views of ten-crop TTA, each (n, c, c, channels): top-left, top-right,
    bottom-left, bottom-right and centre crops, then the same five mirrored."""
    h, w = images.shape[1:3]
    ch, cw = int(round(h * fraction)), int(round(w * fraction))
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    crops = [images[:, y:y + ch, x:x + cw] for y, x in corners]
    return crops + [crop[:, :, ::-1] for crop in crops]


def ten_crop_views(images, fraction=CROP_FRACTION):
    """The ten crops resized back to the input size: what the network sees under tta="crops"."""
    size = images.shape[1:3]
    return [np.asarray(keras.ops.image.resize(crop, size)) for crop in ten_crops(images, fraction)]


def confusion_matrix(labels, predicted, n_classes):
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def score(probabilities, labels, classes):
    """Accuracy, categorical cross-entropy, macro-F1, per-class precision, recall,
    F1 and support, and the confusion matrix, of predictions against integer labels.

    A class never predicted has precision 0; macro-F1 averages the F1 of the
    classes present in the labels, so a class absent from a split does not count.
    """
    if len(labels) == 0:
        return {"loss": None, "accuracy": None, "n": 0}
    picked = probabilities[np.arange(len(labels)), labels]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), len(classes))
    hits, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros(len(classes)), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(len(classes)), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros(len(classes)), where=precision + recall > 0)
    return {"loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
            "accuracy": float(hits.sum() / len(labels)),
            "n": int(len(labels)),
            "macro_f1": float(f1[support > 0].mean()),
            "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]),
                              "f1": float(f1[i]), "support": int(support[i])} for i, c in enumerate(classes)},
            "confusion_matrix": matrix.tolist()}


def stuck_on_one_class(result, classes, share=0.95):
    """A one-line warning when nearly every prediction is the same class, else "".

    That is a network that stopped learning: with no batch norm and a large
    learning rate its ReLUs can all die in the first epoch, and its loss then
    sits at ln(number of classes) for the rest of the run.
    """
    if not result.get("n"):
        return ""
    predicted = np.asarray(result["confusion_matrix"]).sum(axis=0)
    top = int(predicted.argmax())
    if predicted[top] < share * predicted.sum():
        return ""
    return (f"warning: the model predicts {classes[top]!r} for {predicted[top] / predicted.sum():.0%} of "
            f"these images: it has stopped learning; try a smaller --learning_rate (e.g. 1e-3) "
            f"or a preset with batch norm")


def predict_one(model, image):
    """Probabilities for one (h, w, 1) image through the compiled predict step.

    model.predict() sets up a data adapter and a progress bar on every call;
    predict_on_batch reuses the compiled function, so one face costs about a
    millisecond instead of tens (bench/bench.py measures both).
    """
    return np.asarray(model.predict_on_batch(image[None].astype(np.float32)))[0]


# ------------------------------------------------------------------ export

EXPORT_FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx", "keras": "keras",
                  "keras_f16": "keras"}


def float32_copy(model):
    """The same network with every layer in float32 and no optimizer state: a model
    trained under mixed_bfloat16 then runs fast on any CPU and its file is a third the size.
    Its batch norm layers are Keras's own, so the file loads without this module."""
    def float32_layer(layer):     # Keras's own batch norm, so that plain Keras loads the file
        kind = keras.layers.BatchNormalization if type(layer) is FusedBatchNormalization else layer.__class__
        return kind.from_config({**layer.get_config(), "dtype": "float32"})
    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def store_weights_as_float16(path):
    """Rewrite the weights inside a .keras file as float16, atomically: half the file.

    Keras casts each stored array to its variable's dtype when it loads one, so
    the model still loads, and computes, in float32 with any Keras and backend;
    only the last digits of each weight are lost (on the shipped model: no
    probability moved by more than 0.008, 2 of 3,589 PublicTest labels changed).
    """
    import h5py     # installed with Keras, which keeps its weights in HDF5
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        with zipfile.ZipFile(path) as archive:
            archive.extract("model.weights.h5", tmp)
            entries = [(info, archive.read(info)) for info in archive.infolist()]
        halved = os.path.join(tmp, "half.h5")
        with h5py.File(os.path.join(tmp, "model.weights.h5"), "r") as source, h5py.File(halved, "w") as target:
            def copy(name, item):       # the same groups, attributes and arrays; float32 arrays as float16
                if isinstance(item, h5py.Dataset):
                    array = item[()]
                    target.create_dataset(name, data=array.astype(np.float16) if array.dtype == np.float32 else array)
                else:
                    target.require_group(name)
                target[name].attrs.update(item.attrs)
            target.attrs.update(source.attrs)
            source.visititems(copy)
        with open(halved, "rb") as f:
            weights = f.read()
        rewritten = os.path.join(tmp, "model.keras")
        with zipfile.ZipFile(rewritten, "w") as archive:
            for info, data in entries:
                archive.writestr(info, weights if info.filename == "model.weights.h5" else data)
        os.replace(rewritten, path)


def export(model_path, fmt, out=""):
    """Export a saved model for use outside Keras: a TensorFlow SavedModel folder, a
    TFLite (LiteRT) file, or ONNX (needs the onnx export packages), with the
    class names beside it in labels.txt, one per line, in output order. "keras"
    writes a float32 .keras file without optimizer state, for shipping;
    "keras_f16" the same with its weights stored as float16 (half the size)."""
    if fmt not in EXPORT_FORMATS:
        raise ModelError(f"--format={fmt}: expected one of {', '.join(EXPORT_FORMATS)}")
    model, classes, params = load_model(model_path)
    suffix = {"saved_model": "_saved_model", "tflite": ".tflite", "onnx": ".onnx", "keras": "_float32.keras",
              "keras_f16": "_float16.keras"}[fmt]
    out = out or os.path.splitext(model_path)[0] + suffix
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Every format gets the float32 network, whatever precision trained it: a mixed_bfloat16 graph
    # puts TensorFlow's own ops (Flex) into a TFLite file, which the plain TFLite interpreter refuses.
    model = float32_copy(model)
    if fmt in ("keras", "keras_f16"):
        save_model(model, out, classes, dict(params, precision="float32"))
        if fmt == "keras_f16":
            store_weights_as_float16(out)
        return out, None
    model(np.zeros((1,) + tuple(model.input_shape[1:]), np.float32))   # ONNX export wants a called model
    try:
        model.export(out, format=EXPORT_FORMATS[fmt], verbose=False)
    except ImportError as error:
        raise ModelError(f"--format={fmt} needs a package that is not installed: {error}") from None
    labels = os.path.join(out if os.path.isdir(out) else os.path.dirname(os.path.abspath(out)), "labels.txt")
    with open(labels, "w") as f:
        f.write("\n".join(classes) + "\n")
    return out, labels


if __name__ == "__main__":
    # python cnn_model.py export --model=log/model.keras --format=tflite [--out=PATH]
    import sys
    usage = ("usage: python cnn_model.py export --model=log/model.keras "
             "--format=tflite|saved_model|onnx|keras|keras_f16 [--out=PATH]")
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage)
        sys.exit(0)
    options = dict(arg[2:].split("=", 1) for arg in sys.argv[2:] if arg.startswith("--") and "=" in arg)
    if sys.argv[1:2] != ["export"] or not set(options) <= {"model", "format", "out"}:
        sys.exit(usage)
    try:
        written, labels = export(options.get("model", "log/model.keras"), options.get("format", "tflite"),
                                 options.get("out", ""))
    except ModelError as error:
        sys.exit(f"error: {error}")
    print(f"wrote {written}" + (f" and {labels}" if labels else ""))
