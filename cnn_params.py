"""Every knob of the toolkit, as plain Python values.

Edit this file to change a run, or override any value on the command line:

    python cnn_run.py --data_dir=/path/to/fer2013 --preset=conv3 --epochs=15

An override must name a value defined below and have the same type as it
(`--epochs=15`, `--learning_rate=5e-3`, `--augment_dataset=False`).
`--experiment=NAME` first applies one row of EXPERIMENTS (the runs of the two
reports), then the other overrides on top of it.
"""
import ast
import sys

# ---------------------------------------------------------------- data
experiment = ""             # a key of EXPERIMENTS below; its values are applied before other overrides
data_dir = "data/fer2013"   # holds train/<class>/*, test/<class>/* and optionally val/<class>/*,
                            # or is the original Kaggle fer2013.csv (emotion,pixels,Usage)
demo_dir = "data/demo"      # the built-in demo set is written here once, when data_dir is missing
qider_dir = "data/qider"    # the stand-in for the 8-class report's QIDER (not public), drawn here on first use:
                            # cartoon faces in Table 1's training counts (4,521) and a val/ of 1,346
out_dir = "log"             # model.keras, history.csv, plots and metrics.json go here
fresh = False               # True: an out_dir holding another run (finished or not) is trained afresh; that
                            # run's files, and its eval.json, are first moved into out_dir/earlier_<date-time>/
img_height = 48             # every image is decoded to grayscale and resized to this size
img_width = 48
channels = 1                # grayscale, as FER-2013 (every image is decoded to one channel: the only value)
validation_split = 0.2      # carved out of train/ (stratified, seeded) when there is no val/. 0: train on all of
                            # train/ and keep the last epoch, nothing chosen (fix the recipe on a split first)
split_order = "shuffled"    # which faces of each class it holds out: "shuffled" (seeded), or "name", the first
                            # by file name (CSV row), as Keras's ImageDataGenerator(validation_split) held them out
balance_count = 0           # >0: the FER-2013 report's balanced variant: drop classes with fewer than half
                            # this many training images, undersample the others to this many
drop_blank = False          # leave out blank images (near-zero pixel variance), as the FER-2013 report does
max_image_pixels = 89_478_485   # an image declaring more pixels is refused before decoding (a decompression bomb)

# ------------------------------------------- balancing (the 8-class report)
augment_dataset = True      # the 8-class report's balancing: at most one mirrored copy of each image, then one noisy
                            # copy of each original and of each mirror, up to the largest class (n -> min(4n, largest))
noise_std = 50.0            # std of the Gaussian noise of those copies, in grey levels (0-255)
class_weights = True        # weight each class by 2 - (n_c - min) / (max - min)

# ------------------------- on-the-fly augmentation (the FER-2013 report's ImageDataGenerator)
live_augment = True         # a new random flip, rotation and shift of each image in each epoch
rotation_degrees = 10.0     # the FER-2013 report used 5 (see EXPERIMENTS)
shift_fraction = 0.1        # width and height shift, as a fraction of the image size; the report used 0.25
zoom_fraction = 0.0         # random zoom in or out by up to this fraction of the face (0: off); the 73 % VGG-style
                            # FER-2013 net rescaled its training faces by up to 20 %
random_erasing = 0.0        # chance that a training face gets one random patch filled with noise
                            # (random erasing, Zhong et al. 2017; used by the 73 % VGG-style FER-2013 net); 0: off
mixup = 0.0                 # mixup (Zhang et al. 2018): each training face blended with another of its batch, and the
                            # labels in the same proportion, drawn from Beta(mixup, mixup); 0.2 is usual; 0: off

# ---------------------------------------------------------------- model
preset = "conv3"            # a key of PRESETS below
init_model = ""             # start from the weights of this .keras file ("shipped": the shipped model), same preset:
                            # fine-tuning. Of the same classes, it must have held out this run's validation faces,
                            # as a teacher must (see teacher); of other classes, its head is replaced (cnn_run.start_from)
dense_init = "glorot_uniform"   # "he_uniform" is the improvement the FER-2013 report tried
vgg16_weights = ""          # a local ImageNet file (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5);
                            # empty: the vgg16 preset starts from random weights. Nothing is downloaded.

# ---------------------------------------------------------------- training
epochs = 30
batch_size = 32              # the demo set is small: 32 gives enough steps per epoch to leave the first plateau (64 stalled some seeds)
optimizer = "adam"          # "adam", "sgd" (with Nesterov momentum 0.9) or "rmsprop" (rho 0.9, the 8-class report's)
weight_decay = 0.0          # decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step every kernel shrinks
                            # by learning_rate x weight_decay of itself; biases and batch norm are left alone. 0: off
learning_rate = 1e-3         # 2e-3 killed conv3 on FER-2013 in its first epoch (every ReLU off); 1e-3 learns on both data sets
lr_schedule = "plateau"     # "plateau" (the FER-2013 report's "best" network), "constant" (the rate never changes, as
                            # a plain Keras fit: the reports' other networks) or "cosine" (learning_rate down to
                            # min_learning_rate over epochs)
lr_monitor = "val_loss"     # plateau: what it watches, "val_loss" (Keras's default) or "val_accuracy" (the FER-2013
                            # report's words: "when it detects the accuracy is not improving")
lr_patience = 3             # plateau: epochs without progress of lr_monitor before ...
lr_factor = 0.1             # ... the learning rate is multiplied by this ...
min_learning_rate = 1e-5    # ... down to this floor
label_smoothing = 0.0       # train towards (1 - x) on the true class and x spread evenly: FER-2013's labels are noisy
ema = 0.0                   # keep an exponential moving average of the weights (Polyak averaging), updated after each
                            # step with this momentum: 0.999 averages over about the last 1000 steps (3 epochs of
                            # FER-2013 at batch 64). Validation, and so the saved best model, use the average. 0: off.
                            # Under the cosine schedule it gained nothing (fer_sota_wide on a GPU; docs/lab/gpu.md)
teacher = ""                # distillation (Hinton et al. 2015): a saved .keras model (several, comma-separated: their
                            # average) whose probabilities for each training face, face and mirror averaged, become
                            # part of its training target; it must share the classes and hold out the validation
                            # faces (the same seed, a validation_split as large or larger). The
                            # probabilities are kept in out_dir/teacher.npz, which can be the teacher of another run
teacher_weight = 0.7        # the teacher's share of each target; the rest is the one-hot label
seed = 1337                 # same seed, same machine: same split, same weights, same metrics
tta = "none"                # test-time augmentation when scoring: "none", "flip" (image and mirror averaged)
                            # or "crops" (ten-crop: 4 corners and centre, each with its mirror)
max_minutes = 0.0           # stop before an epoch that would end past this training-time budget (0: no budget);
                            # the cosine schedule then anneals over the epochs that fit it, when fewer than epochs do
strategy = "auto"           # "auto": tf.distribute.MirroredStrategy when several GPUs are visible, else one device;
                            # "mirrored": MirroredStrategy over every GPU (or every CPU device) of this machine (on
                            # JAX: keras.distribution's DataParallel over its GPUs); "multi_worker": several machines,
                            # on JAX only (KERAS_DISTRIBUTION_* set on each; docs/distribution.md).
                            # batch_size is per device: the global batch is batch_size x devices.
precision = "auto"          # "auto": mixed_bfloat16 on a CPU with AMX/AVX512-BF16 (1.4-1.9x faster training)
                            # or a GPU that has bfloat16, mixed_float16 on an older GPU, float32 on any other
                            # CPU (which emulates bfloat16: 10x slower there); or name one: "float32",
                            # "mixed_bfloat16", "mixed_float16". The softmax output always stays float32.
                            # XLA (jit_compile) is left to Keras's automatic choice: forcing it made
                            # conv nets 3-12x slower on this CPU.

# ------------------------------------------------------------------ layer tables
# One row per layer, read left to right like the reports' tables:
#   layer    filters/units  kernel  padding   pool  batchnorm  dropout
# A "conv" row is Conv2D with ReLU, then max pooling (pool x pool) and dropout when
# those columns are set. batchnorm True puts batch norm between the layer and its
# ReLU; "after_relu" puts it after the ReLU, the order the FER-2013 report's tables
# list. The first "dense" row flattens before it.
# The output layer, Dense(number of classes, softmax), is added after the table.
PRESETS = {
    # FER-2013 report: a plain dense network (156,743 parameters at 48x48x1, 7 classes)
    "dense": [
        ("dense",  64,  0, "",      0, False, 0.0),
        ("dense", 128,  0, "",      0, False, 0.0),
    ],
    # FER-2013 report: three 32-filter convolutions (63,431 parameters)
    "conv3": [
        ("conv",   32,  5, "valid", 2, False, 0.0),
        ("conv",   32,  3, "valid", 2, False, 0.0),
        ("conv",   32,  5, "valid", 2, False, 0.0),
        ("dense",  64,  0, "",      0, False, 0.0),
        ("dense", 128,  0, "",      0, False, 0.0),
    ],
    # FER-2013 report: its "best" network with BN and dropout (8,434,439 parameters,
    # 3,328 of them not trainable). The report's table labels the filters
    # inconsistently; its parameter counts fix these sizes. Each layer's ReLU comes
    # before its batch norm, as the table lists them.
    "fer_best": [
        ("conv",  128,  3, "same",  2, "after_relu", 0.25),
        ("conv",  256,  3, "same",  2, "after_relu", 0.25),
        ("conv",  512,  5, "same",  2, "after_relu", 0.25),
        ("dense", 256,  0, "",      0, "after_relu", 0.5),
        ("dense", 512,  0, "",      0, "after_relu", 0.5),
    ],
    # FER-2013 report: VGG16's convolutional part (a "vgg16" row), then Dense 512,
    # 128 and 64; BN and dropout 0.25 after the base, BN and dropout 0.5 on the
    # dense layers, in the "best" network's order. 15,056,583 parameters at 48x48
    # (2,432 not trainable).
    "vgg16": [
        ("vgg16",   0,  0, "",      0, "after_relu", 0.25),
        ("dense", 512,  0, "",      0, "after_relu", 0.5),
        ("dense", 128,  0, "",      0, "after_relu", 0.5),
        ("dense",  64,  0, "",      0, "after_relu", 0.5),
    ],
    # Ours, for accuracy per FLOP at 48x48 grayscale: a VGG-style stack of double
    # 3x3 convolutions with BN (32-64-128-256 filters), 1,768,423 parameters.
    "fer_sota": [
        ("conv",   32,  3, "same",  0, True,  0.0),
        ("conv",   32,  3, "same",  2, True,  0.1),
        ("conv",   64,  3, "same",  0, True,  0.0),
        ("conv",   64,  3, "same",  2, True,  0.1),
        ("conv",  128,  3, "same",  0, True,  0.0),
        ("conv",  128,  3, "same",  2, True,  0.2),
        ("conv",  256,  3, "same",  0, True,  0.0),
        ("conv",  256,  3, "same",  2, True,  0.3),
        ("dense", 256,  0, "",      0, True,  0.5),
    ],
    # 8-class report, Table 2 (96x96x1 input, valid padding and ReLU everywhere, as its
    # published code has them): 263,000 parameters with its 8 classes.
    "qider": [
        ("conv",   32,  3, "valid", 2, False, 0.0),
        ("conv",   16,  3, "valid", 0, False, 0.3),
        ("conv",   24,  3, "valid", 2, False, 0.1),
        ("dense",  24,  0, "",      0, False, 0.4),
        ("dense",  16,  0, "",      0, False, 0.1),
    ],
}

# The 8-class report's comparison run: the same network without dropout (derived,
# so that editing a row of "qider" changes both).
PRESETS["qider_nodrop"] = [row[:6] + (0.0,) for row in PRESETS["qider"]]

# The FER-2013 report's "best" network with each batch norm moved between its layer and the ReLU (the
# order of fer_sota and of most published networks): the same 8,434,439 parameters, to measure what the
# report's order costs (docs/lab/reports.md). Derived, so that editing a row of "fer_best" changes both.
PRESETS["fer_best_bn_first"] = [row[:5] + (True,) + row[6:] for row in PRESETS["fer_best"]]

# fer_sota at twice the width (64-128-256-512 filters and Dense 512, as the 73 %
# VGG network), for a GPU, where it costs little more time per epoch. Derived, so
# that editing a row of "fer_sota" changes both.
PRESETS["fer_sota_wide"] = [(row[0], 2 * row[1]) + row[2:] for row in PRESETS["fer_sota"]]

# fer_sota at half the width (16-32-64-128 filters and Dense 128): a quarter of the
# FLOPs, for a CPU without bfloat16 instructions, where fer_sota fits few epochs in an hour
# (docs/lab/accuracy.md).
PRESETS["fer_sota_narrow"] = [(row[0], row[1] // 2) + row[2:] for row in PRESETS["fer_sota"]]

# fer_sota_narrow with one convolution at 48x48 instead of two: more epochs in an hour of a CPU without
# bfloat16 (docs/lab/accuracy.md, "Distilled"). A layer table to try, not an experiment's default.
PRESETS["fer_sota_narrow1"] = PRESETS["fer_sota_narrow"][1:]

# ------------------------------------------------------------------ experiments
# The runs of the two reports, one command each: python cnn_run.py --experiment=conv3
# Each row overrides the values above; --name=value on the command line still wins.
# The FER-2013 report: ImageDataGenerator's flips, rotation 5 and shifts of 0.25 (rescaling is the model's first
# layer), 20 % of train/ held out, its "corrupt" (blank) images removed, Adam, batch 64.
_FER2013_REPORT = dict(data_dir="data/fer2013", drop_blank=True, augment_dataset=False, class_weights=False,
                       live_augment=True, rotation_degrees=5.0, shift_fraction=0.25, validation_split=0.2,
                       optimizer="adam", batch_size=64)
# For the dense, 3-conv and VGG16 networks it names Adam and nothing more: Keras's default rate, 1e-3, never changed.
_ADAM_AS_IS = dict(learning_rate=1e-3, lr_schedule="constant")
# It applied its augmentation to "most" networks, not saying which. Its dense, 3-conv and balanced 3-conv figures
# are those of runs without it; with it, ours land far under them (measured: docs/lab/reports.md). Its "best"
# network and VGG16 keep it.
_NOT_AUGMENTED = dict(live_augment=False)
# For its "best" network: 0.005 and ReduceLROnPlateau with factor 0.1, patience 2, floor 1e-5, mode auto (which
# for Keras's default monitor, val_loss, means "min").
_BEST_RECIPE = dict(learning_rate=5e-3, lr_schedule="plateau", lr_factor=0.1, lr_patience=2, min_learning_rate=1e-5)
# The 8-class report (Table 2 and its published code): RMSprop at 0.0025, batch 32, 50 epochs, augment_dataset and
# class weights, no live augmentation, 96x96, on the stand-in for QIDER with its own val/.
_QIDER_REPORT = dict(data_dir="data/qider", img_height=96, img_width=96, augment_dataset=True, class_weights=True,
                     live_augment=False, optimizer="rmsprop", learning_rate=2.5e-3, lr_schedule="constant",
                     batch_size=32, epochs=50)
_FER_SOTA = dict(data_dir="data/fer2013", preset="fer_sota", augment_dataset=False, class_weights=False,
                 live_augment=True, rotation_degrees=10.0, shift_fraction=0.1, optimizer="adam",
                 learning_rate=1e-3, lr_schedule="cosine", batch_size=64, epochs=200, max_minutes=60.0, tta="crops")
EXPERIMENTS = {
    "dense": dict(_FER2013_REPORT, **_ADAM_AS_IS, **_NOT_AUGMENTED, preset="dense", epochs=15),
    "conv3": dict(_FER2013_REPORT, **_ADAM_AS_IS, **_NOT_AUGMENTED, preset="conv3", epochs=15),
    # The report's two attempts to improve it are switches on this row: --batch_size=32 (fewer images per batch)
    # and --dense_init=he_uniform (its dense layers' initialiser).
    "fer_best": dict(_FER2013_REPORT, **_BEST_RECIPE, preset="fer_best", epochs=50),
    # 10 epochs at batch 64 on the 48x48 faces (the report resizes nothing); random weights unless --vgg16_weights.
    "vgg16": dict(_FER2013_REPORT, **_ADAM_AS_IS, preset="vgg16", epochs=10),
    # The balanced variant: disgust dropped, the other six classes cut to about 3,000 faces, "under the same
    # conditions"; for its best network, batch 32 instead of 64.
    "conv3_balanced": dict(_FER2013_REPORT, **_ADAM_AS_IS, **_NOT_AUGMENTED, preset="conv3", epochs=15,
                           balance_count=3000),
    "fer_best_balanced": dict(_FER2013_REPORT, **_BEST_RECIPE, preset="fer_best", epochs=50, balance_count=3000,
                              batch_size=32),
    # Ours: as many epochs as fit an hour (the cosine anneals over those), many more on a CPU with bfloat16
    # instructions than on one without (docs/lab/accuracy.md).
    "fer_sota": _FER_SOTA,
    # For a CPU without bfloat16 instructions (most laptops): half the width fits more than twice the epochs of
    # fer_sota in an hour, and over so few epochs rotations and shifts held it back, so flips only; ten-crop
    # looks at shifted faces this network never saw, so flip TTA (measured: docs/lab/accuracy.md).
    "fer_sota_narrow": dict(_FER_SOTA, preset="fer_sota_narrow", rotation_degrees=0.0, shift_fraction=0.0, tta="flip"),
    # For a GPU: the recipe of the shipped model (pretrained/fer2013.keras), which also had a teacher
    # (docs/lab/gpu.md, "the three-run ensemble teaches one network"). Twice the width, random erasing and mixup
    # against its over-fitting, the cosine over 157 epochs: minutes on an H100, hours on a 2-core CPU
    # (measured: docs/lab/gpu.md).
    "fer_sota_wide": dict(_FER_SOTA, preset="fer_sota_wide", random_erasing=0.5, mixup=0.2, epochs=157, max_minutes=0.0),
    # Your own classes from the shipped model: its network and its layers but its head (a new one for your
    # classes, fitted first), then the whole network at a tenth of the learning rate it was trained with, so
    # that what it learned from 28,709 faces is adjusted rather than overwritten (docs/train.md, "Your own
    # classes"). Give your set: python cnn_run.py --experiment=finetune --data_dir=my_faces/
    "finetune": dict(preset="fer_sota_wide", init_model="shipped", img_height=48, img_width=48, augment_dataset=False,
                     class_weights=True, live_augment=True, rotation_degrees=10.0, shift_fraction=0.1,
                     optimizer="adam", learning_rate=1e-4, lr_schedule="cosine", batch_size=64, epochs=10),
    "qider": dict(_QIDER_REPORT, preset="qider"),
    "qider_nodrop": dict(_QIDER_REPORT, preset="qider_nodrop"),
}

# fer_sota_narrow taught by the shipped model: for a laptop, a network of a sixteenth of its FLOPs that learns
# from its probabilities as well as from the labels (docs/lab/accuracy.md, "Distilled"). Derived, so that editing
# fer_sota_narrow changes both. The teacher labels the training faces first, outside the hour's budget.
EXPERIMENTS["fer_sota_narrow_distilled"] = dict(EXPERIMENTS["fer_sota_narrow"], teacher="pretrained/fer2013.keras")


# The values a text parameter can take, checked before anything runs.
CHOICES = {"optimizer": ("adam", "sgd", "rmsprop"), "lr_schedule": ("plateau", "constant", "cosine"),
           "lr_monitor": ("val_loss", "val_accuracy"), "split_order": ("shuffled", "name"),
           "tta": ("none", "flip", "crops"),
            "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"), "strategy": ("auto", "mirrored", "multi_worker")}


# The range of each number, checked before anything runs: (lowest, highest), None for no bound;
# a bound in a list is excluded ([0.0] means "above 0"). teacher_weight and validation_split, shares
# with words of their own, are checked in get_params.
RANGES = {"img_height": (8, 4096), "img_width": (8, 4096), "channels": (1, 1),
          "balance_count": (0, None), "max_image_pixels": (1, None), "noise_std": (0.0, 255.0),
          "rotation_degrees": (0.0, 180.0), "shift_fraction": (0.0, 1.0), "zoom_fraction": (0.0, [1.0]),
          "random_erasing": (0.0, 1.0), "mixup": (0.0, 1.0), "epochs": (1, None), "batch_size": (1, None),
          "weight_decay": (0.0, None), "learning_rate": ([0.0], None), "lr_patience": (0, None),
          "lr_factor": ([0.0], [1.0]), "min_learning_rate": (0.0, None), "label_smoothing": (0.0, [1.0]),
          "ema": (0.0, [1.0]), "seed": (0, None), "max_minutes": (0.0, None)}


def _in_range(name, value):
    """None when value lies in RANGES[name], else what it takes, in words."""
    low, high = RANGES[name]
    finite = value == value and value not in (float("inf"), float("-inf"))    # not NaN, nor 1e999 read as infinity
    below = value <= low[0] if isinstance(low, list) else value < low
    above = high is not None and (value >= high[0] if isinstance(high, list) else value > high)
    if finite and not (below or above):
        return None
    if low == high:
        return f"a number of {low}"
    words = [f"above {low[0]}" if isinstance(low, list) else f"at least {low}"]
    if high is not None:
        words.append(f"below {high[0]}" if isinstance(high, list) else f"at most {high}")
    return ("a finite number, " if not finite else "a number ") + " and ".join(words)


def _defaults():
    """The plain values of this module (lower-case names of int, float, str or bool)."""
    return {name: value for name, value in globals().items()
            if not name.startswith("_") and name.islower()
            and isinstance(value, (int, float, str, bool))}


def _parse(name, text, default):
    """Turn the text of --name=text into a value of the same type as the default."""
    if isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"--{name}={text}: expected a {type(default).__name__}, like --{name}={default!r}")
    if isinstance(default, float) and type(value) is int:
        value = float(value)          # --learning_rate=1 means 1.0
    if type(value) is not type(default):
        raise ValueError(f"--{name}={text}: expected a {type(default).__name__}, like --{name}={default!r}")
    return value


def get_params(argv=()):
    """The values above, then the experiment's, then --name=value overrides from argv.

    Raises ValueError with a one-line message for an unknown name or a wrong type.
    """
    params = _defaults()
    overrides = {}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise ValueError(f"{arg}: expected --name=value, e.g. --epochs=5")
        name, text = arg[2:].split("=", 1)
        overrides[name] = text
    experiment = overrides.pop("experiment", "")
    if experiment:
        if experiment not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {experiment!r}; choose one of: {', '.join(EXPERIMENTS)}")
        for name, value in EXPERIMENTS[experiment].items():     # a misspelt key would be ignored silently
            if name not in params:
                raise ValueError(f"experiment {experiment!r}: unknown parameter {name}")
            if type(value) is not type(params[name]):
                raise ValueError(f"experiment {experiment!r}: {name}={value!r} should be a "
                                 f"{type(params[name]).__name__}, like {params[name]!r}")
        params.update(EXPERIMENTS[experiment], experiment=experiment)
    for name, text in overrides.items():
        if name not in params:
            raise ValueError(f"unknown parameter --{name}; valid names: {', '.join(sorted(params))}")
        params[name] = _parse(name, text, params[name])
    if params["preset"] not in PRESETS:
        raise ValueError(f"--preset={params['preset']}: unknown preset; choose one of: {', '.join(PRESETS)}")
    if not 0.0 <= params["teacher_weight"] <= 1.0:
        raise ValueError(f"--teacher_weight={params['teacher_weight']}: a share, from 0 (labels only) to 1 (teacher only)")
    for name in RANGES:
        if _in_range(name, params[name]):
            typed = overrides.get(name, params[name])        # as typed: 1e999, not the inf it became
            raise ValueError(f"--{name}={typed}: expected {_in_range(name, params[name])}")
    for name, allowed in CHOICES.items():
        if params[name] not in allowed:
            raise ValueError(f"--{name}={params[name]}: choose one of: {', '.join(allowed)}")
    if not 0.0 <= params["validation_split"] < 1.0:
        raise ValueError(f"--validation_split={params['validation_split']}: a share of train/, from 0 (none held out) "
                         f"to below 1")
    return params


def usage():
    """What --help prints: the values above as this file writes them, comments and all, and the names
    of the presets and experiments (the file itself is the reference; nothing here can drift from it)."""
    with open(__file__) as f:
        lines = f.read().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("# ---"))     # the data section
    last = next(i for i, line in enumerate(lines) if line.startswith("# ---") and "layer tables" in line)
    knobs = "\n".join(lines[first:last]).rstrip()
    return (f"Parameters (cnn_params.py), each overridable as --name=value:\n\n{knobs}\n\n"
            f"presets (--preset=NAME): {', '.join(PRESETS)}\n"
            f"experiments (--experiment=NAME): {', '.join(EXPERIMENTS)}\n")


def read_options(argv, defaults, files=False):
    """The --name=value options of every script but cnn_run.py (cnn_eval.py, cnn_export.py, the
    bench scripts), read as get_params reads cnn_run.py's: each value takes its default's type
    (text stays text). files=True: the other arguments are file names, returned after the
    options. An unknown name, a missing value or a wrong type ends the program with one line."""
    options, named = dict(defaults), []
    for arg in argv:
        name, _, text = arg[2:].partition("=")
        if not arg.startswith("--") and files:
            named.append(arg)
        elif arg.startswith("--") and name in defaults and not text:
            sys.exit(f"error: {arg}: no value; expected --{name}=VALUE (default: {defaults[name] or 'none'})")
        elif not arg.startswith("--") or name not in defaults:
            sys.exit(f"error: {arg}: expected one of {', '.join(f'--{k}=...' for k in defaults)}"
                     + (", and file names" if files else ""))
        else:
            try:
                options[name] = _parse(name, text, defaults[name])
            except ValueError as error:
                sys.exit(f"error: {error}")
    return (options, named) if files else options


def params_or_exit(argv):
    """get_params for a script: a bad override ends the program with one line, no traceback."""
    try:
        return get_params(argv)
    except ValueError as error:
        sys.exit(f"error: {error}")
