"""Speed figures of the toolkit on this machine, side by side in one run.

    python bench/bench.py --data_dir=data/fer2013 [--presets=conv3,fer_sota,fer_best] [--steps=30]
                          [--policies=float32,mixed_bfloat16] [--stages=fer_sota_narrow] [--epoch_starts=6]

Prints four tables, and a fifth and a sixth on request:
  1. decode-and-augment images/s: the old report's way (decode each file in an
     eager loop, every epoch), Keras's deprecated ImageDataGenerator, and our
     pipeline (decode once into memory, augment in the tf.data map), as it is (every
     draw from (seed, epoch, batch)) and as it was before the exact resume, with and
     without mixup;
  2. training images/s per preset and compute policy, fed by the real pipeline
     and by tensors already in memory (equal figures: the input never stalls training),
     and, for presets with batch norm, the same model with Keras's own batch norm
     instead of our fused one (FusedBatchNormalization), from memory;
  3. achieved training GFLOP/s against the measured matmul peak of this machine;
  4. single-image latency: model.predict() against the compiled predict_on_batch path;
  5. with --stages=PRESET[,...]: where a training step's time goes, stage by
     stage (the rows up to and including each pooling), in CPU milliseconds per
     image, which a shared machine's busy neighbours do not inflate as they do
     wall time (--presets= with nothing after it skips tables 1-4);
  6. with --epoch_starts=N: N epochs of fer_sota through make_dataset with
     tf.data's autotuner on and then off, and how long each epoch waited for
     its first batch (Keras makes a new iterator every epoch).
Absolute times on a shared machine are noisy: compare within one run.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import tensorflow as tf
import keras

import cnn_callbacks
import cnn_data
import cnn_device
import cnn_model
import cnn_params

# --policies=float32 skips bfloat16, which a CPU without AMX or AVX512-BF16 emulates at a tenth of the speed.
ARGS = {"data_dir": "data/fer2013", "presets": "conv3,fer_sota,fer_best", "steps": 30, "images": 2048,
        "policies": "float32,mixed_bfloat16", "stages": "", "epoch_starts": 0}


def timed(fn, repeat=1):
    """Seconds per call of fn, best of `repeat`."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------ 1. input pipeline

def bench_input(files, p):
    n = len(files)
    augmenter = cnn_data.live_augmenter(p, seed=0)

    def naive_loop():                          # the old way: one eager decode per file, every epoch
        for path, _ in files:
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=1)
            image = tf.image.resize(image, (48, 48))
            augmenter(image[None], training=True)

    from tensorflow.keras.preprocessing.image import ImageDataGenerator   # deprecated: a baseline only
    folder = os.path.dirname(os.path.dirname(files[0][0]))
    generator = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True, rotation_range=5,
                                   width_shift_range=0.25, height_shift_range=0.25).flow_from_directory(
        folder, target_size=(48, 48), color_mode="grayscale", batch_size=64, shuffle=True)

    def image_data_generator():
        for _ in range(n // 64):
            next(generator)

    images, _, _, _ = cnn_data.load_images(files, 48, 48, split="bench")
    labels = np.zeros(len(images), np.int32)

    def epoch_of(dataset):
        def one_epoch():
            for _ in dataset:
                pass
        one_epoch()                            # build the graph once
        return one_epoch

    pipelines = []
    for mixup in (0.0, 0.2):
        pipelines += [(f"before: shuffle buffer, seed streams{', mixup' if mixup else ''}",
                       epoch_of(stream_seeded_dataset(images, labels, 7, 64, cnn_data.live_augmenter(p, 0), 0, mixup))),
                      (f"ours: (seed, epoch, batch) draws{', mixup' if mixup else ''}",
                       epoch_of(cnn_data.make_dataset(images, labels, 7, 64, training=True, augmenter=augmenter,
                                                      mixup=mixup)))]
    results = [("naive eager loop (decode every epoch)", n / timed(naive_loop)),
               ("ImageDataGenerator (deprecated)", (n // 64) * 64 / timed(image_data_generator)),
               ("ours: one-time decode", n / timed(lambda: cnn_data.load_images(files, 48, 48, split="bench")))]
    # The two tf.data pipelines in turns, best of three each, so that a busy neighbour slows both alike.
    best = {name: float("inf") for name, _ in pipelines}
    for _ in range(3):
        for name, one_epoch in pipelines:
            best[name] = min(best[name], timed(one_epoch))
    results += [(f"tf.data epoch, {name}", n / best[name]) for name, _ in pipelines]
    width = max(len(name) for name, _ in results) + 2
    print(f"\n1. decode and augment, {n} FER-2013 images\n{'method':<{width}}{'images/s':>10}")
    for name, rate in results:
        print(f"{name:<{width}}{rate:>10.0f}")


def stream_seeded_dataset(images, labels, n_classes, batch_size, augmenter, seed, mixup):
    """make_dataset's training pipeline as it was before the exact resume (2026-12-02), for
    table 1's comparison: a shuffle buffer reshuffled each iteration, the augmenter's seed
    state running on from call to call, mixup's seeds from a tf.data random stream."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=seed,
                                                                      reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, n_classes)),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if mixup > 0:
        def mix(batch, seeds):
            x, y = tf.cast(batch[0], tf.float32), batch[1]
            g1 = tf.random.stateless_gamma(tf.shape(x)[:1], seeds[:2], alpha=mixup)
            g2 = tf.random.stateless_gamma(tf.shape(x)[:1], seeds[2:], alpha=mixup)
            return cnn_data.mix_faces(x, y, g1 / (g1 + g2))
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)
        ds = tf.data.Dataset.zip((ds, seeds)).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


# ------------------------------------------------------------------ 2 and 3. training throughput

def forward_flops(model):
    """Multiply-adds x 2 of the Conv2D and Dense layers, per image."""
    flops = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2 * h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return flops


def matmul_peak(dtype, n=2048, repeat=5):
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    tf.linalg.matmul(a, a).numpy()
    seconds = timed(lambda: tf.linalg.matmul(a, a).numpy(), repeat)
    return 2 * n ** 3 / seconds / 1e9


class BatchTimer(keras.callbacks.Callback):
    """Images/s over the batches after the first, so fit()'s set-up is not counted as training."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    def rate(self, batch_size):
        return (len(self.times) - 1) * batch_size / (self.times[-1] - self.times[0])


def images_per_second(model, dataset, steps):
    timer = BatchTimer()
    model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
    return timer.rate(64)


def bench_training(images, labels, presets, policies, steps, p):
    rows = []
    for precision in policies:
        keras.mixed_precision.set_global_policy(precision)
        for preset in presets:
            keras.utils.set_random_seed(0)
            model = cnn_model.build_model(cnn_params.PRESETS[preset], (48, 48, 1), 7)
            cnn_model.compile_model(model, dict(p, optimizer="adam", learning_rate=1e-3))
            real = cnn_data.make_dataset(images, labels, 7, 64, training=True,
                                         augmenter=cnn_data.live_augmenter(p, seed=0)).repeat()
            first = next(iter(cnn_data.make_dataset(images[:64], labels[:64], 7, 64)))
            memory = tf.data.Dataset.from_tensors(first).repeat()       # no input work at all
            model.fit(memory, steps_per_epoch=3, epochs=1, verbose=0)   # compile the train step
            rate_real = images_per_second(model, real, steps)
            rate_memory = images_per_second(model, memory, steps)
            gflops = 3 * forward_flops(model) * rate_real / 1e9      # backward ~ 2x forward
            rate_keras_bn = None
            if any(row[5] for row in cnn_params.PRESETS[preset]):    # a batchnorm column set
                keras.utils.set_random_seed(0)
                plain = cnn_model.build_model(cnn_params.PRESETS[preset], (48, 48, 1), 7, fused_batchnorm=False)
                cnn_model.compile_model(plain, dict(p, optimizer="adam", learning_rate=1e-3))
                plain.fit(memory, steps_per_epoch=3, epochs=1, verbose=0)
                rate_keras_bn = images_per_second(plain, memory, steps)
            rows.append((preset, precision, model.count_params(), rate_real, rate_memory, gflops, rate_keras_bn))
    keras.mixed_precision.set_global_policy("float32")
    peaks = {policy: matmul_peak(tf.as_dtype(policy.replace("mixed_", ""))) for policy in policies}
    column = max(len(preset) for preset in ("preset", *presets)) + 2     # the preset column fits every name
    print(f"\n2-3. training, batch 64, {steps} steps\n"
          f"{'preset':<{column}}{'policy':<16}{'params':>11}{'pipeline img/s':>16}{'memory img/s':>14}"
          f"{'ratio':>7}{'GFLOP/s':>9}{'% of peak':>10}{'Keras BN img/s':>16}{'fused BN gain':>15}")
    for preset, precision, params, real, memory, gflops, keras_bn in rows:
        bn = f"{keras_bn:>16.0f}{memory / keras_bn:>14.2f}x" if keras_bn else f"{'-':>16}{'-':>15}"
        print(f"{preset:<{column}}{precision:<16}{params:>11,}{real:>16.0f}{memory:>14.0f}{real / memory:>7.2f}"
              f"{gflops:>9.1f}{100 * gflops / peaks[precision]:>9.1f}%{bn}")
    for precision, peak in peaks.items():
        print(f"matmul peak, 2048x2048, {precision}: {peak:.0f} GFLOP/s")
    speedup = {r[0]: r[3] for r in rows if r[1] == "mixed_bfloat16"}
    for preset, precision, _, real, _, _, _ in rows:
        if precision == "float32" and preset in speedup:
            print(f"{preset}: mixed_bfloat16 trains {speedup[preset] / real:.1f}x as fast as float32")


# ------------------------------------------------------------------ 4. single-image latency

def bench_latency(presets, repeat=50):
    column = max(len(preset) for preset in ("preset", *presets)) + 2
    print(f"\n4. single-image latency (median of {repeat})\n{'preset':<{column}}{'model.predict ms':>18}{'predict_on_batch ms':>21}")
    face = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
    for preset in presets:
        model = cnn_model.build_model(cnn_params.PRESETS[preset], (48, 48, 1), 7)
        times = {}
        for name, fn in (("predict", lambda: model.predict(face, verbose=0)),
                         ("on_batch", lambda: cnn_model.predict_one(model, face[0]))):
            fn()
            samples = [timed(fn) for _ in range(repeat)]
            times[name] = 1000 * float(np.median(samples))
        print(f"{preset:<{column}}{times['predict']:>18.2f}{times['on_batch']:>21.2f}")


# ------------------------------------------------------------------ 5. cost of each stage

def cpu_ms_per_image(model, memory, steps, batch=64):
    """Process CPU time of a training step, per image, fed from memory (float32)."""
    start = time.process_time()
    model.fit(memory, steps_per_epoch=steps, epochs=1, verbose=0)
    return 1000 * (time.process_time() - start) / (steps * batch)


def bench_stages(presets, steps, p, repeat=3):
    """Train the network from each stage onward and take differences: what each stage costs.

    A stage ends at a row that pools; the network "from stage k" is the table
    from that stage's first row, fed tensors of the shape that stage receives.
    """
    for preset in presets:
        table = cnn_params.PRESETS[preset]
        full = cnn_model.build_model(table, (48, 48, 1), 7)
        pooled = [layer.output.shape[1:] for layer in full.layers if isinstance(layer, keras.layers.MaxPooling2D)]
        starts = [0] + [i + 1 for i, row in enumerate(table) if row[0] == "conv" and row[4]]
        shapes = [(48, 48, 1)] + [tuple(shape) for shape in pooled]
        rng = np.random.default_rng(0)
        tails = []
        for start, shape in zip(starts, shapes):
            model = cnn_model.build_model(table[start:], shape, 7)
            cnn_model.compile_model(model, dict(p, optimizer="adam", learning_rate=1e-3))
            x = rng.uniform(0, 255, (64, *shape)).astype(np.float32)
            y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 64)]
            memory = tf.data.Dataset.from_tensors((x, y)).repeat()
            model.fit(memory, steps_per_epoch=3, epochs=1, verbose=0)     # compile the train step, once
            tails.append((model, memory, shape, forward_flops(model)))
        samples = [[] for _ in tails]
        for _ in range(repeat):                       # alternate, so that a busy minute hits every tail alike
            for sample, (model, memory, _, _) in zip(samples, tails):
                sample.append(cpu_ms_per_image(model, memory, steps))
        costs = [float(np.median(sample)) for sample in samples] + [0.0]
        flops = [f for _, _, _, f in tails] + [0]
        print(f"\n5. {preset}: training cost by stage, CPU ms per image (median of {repeat}, batch 64, {steps} steps)\n"
              f"{'stage':<8}{'input':>12}{'rows':>6}{'forward MFLOP':>15}{'CPU ms/img':>12}{'share':>8}")
        ends = starts[1:] + [len(table)]
        for k, (start, end, (_, _, shape, _)) in enumerate(zip(starts, ends, tails)):
            label = "head" if table[start][0] == "dense" else str(k + 1)
            cost = costs[k] - costs[k + 1]
            print(f"{label:<8}{'x'.join(map(str, shape)):>12}{end - start:>6}{(flops[k] - flops[k + 1]) / 1e6:>15.1f}"
                  f"{cost:>12.2f}{100 * cost / costs[0]:>7.0f}%")
        print(f"{'all':<8}{'':>12}{len(table):>6}{flops[0] / 1e6:>15.1f}{costs[0]:>12.2f}")


# ------------------------------------------------------------------ 6. the wait at each epoch's start

class FirstBatch(cnn_callbacks.EpochTime):
    """The run's epoch clock (each epoch's seconds), and how many of them passed before its first batch was done."""

    def __init__(self):
        super().__init__()
        self.waits = []

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.first = None

    def on_train_batch_end(self, batch, logs=None):
        if self.first is None:
            self.first = time.time() - self.started

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.waits.append(self.first)


def bench_epoch_starts(images, labels, epochs):
    """make_dataset turns the autotuner off; "on" puts it back, as it was before 2026-11-27."""
    p = cnn_params.get_params(["--experiment=fer_sota", "--mixup=0.2"])    # as the 115-minute run trained
    keras.mixed_precision.set_global_policy(cnn_device.compute_policy("auto")[0])
    print(f"\n6. fer_sota with mixup 0.2, {len(images)} images an epoch, {epochs} epochs each, "
          f"{keras.mixed_precision.global_policy().name}: the wait for each epoch's first batch\n"
          f"{'autotune':<10}{'epoch s (median)':>18}{'waits over 2 s':>16}{'longest wait s':>16}{'time waiting':>14}")
    for autotune in (True, False):
        dataset = cnn_data.make_dataset(images, labels, 7, 64, training=True, augmenter=cnn_data.live_augmenter(p, 0),
                                        seed=0, mixup=p["mixup"], epochs=(0, epochs + 1))
        options = tf.data.Options()
        options.autotune.enabled = autotune
        model = cnn_model.build_model(cnn_params.PRESETS["fer_sota"], (48, 48, 1), 7)
        cnn_model.compile_model(model, p)
        clock = FirstBatch()
        model.fit(dataset.with_options(options), epochs=epochs + 1, steps_per_epoch=cnn_data.batches_per_epoch(len(images), 64),
                  verbose=0, callbacks=[clock])
        seconds, waits = np.array(clock.seconds[1:]), np.array(clock.waits[1:])   # the first builds the graph
        print(f"{'on' if autotune else 'off':<10}{np.median(seconds):>18.1f}{(waits > 2).sum():>10} of {epochs:<3}"
              f"{waits.max():>16.1f}{100 * waits.sum() / seconds.sum():>13.0f}%")
    keras.mixed_precision.set_global_policy("float32")


def load_sample(data_dir, n):
    """n training files drawn at random (the same ones every run), decoded, with their labels."""
    files, _ = cnn_data.list_split(os.path.join(data_dir, "train"))
    files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:n]]
    images, names, _, _ = cnn_data.load_images(files, 48, 48, split="bench")
    classes = sorted(set(names))
    return files, images, np.array([classes.index(name) for name in names], np.int32)


def has_scipy():
    """Whether scipy imports (Keras's ImageDataGenerator needs scipy.ndimage)."""
    try:
        import scipy.ndimage
        del scipy
        return True
    except ImportError:
        return False


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return
    args = cnn_params.read_options(argv, ARGS)
    if args["presets"] and not has_scipy():                             # now, not after the first timings
        sys.exit("error: table 1 times Keras's ImageDataGenerator, which needs scipy: "
                 "pip install -r bench/requirements.txt (or --presets= with --stages=... for table 5 alone)")
    p = cnn_params.get_params(["--experiment=conv3"])
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {cnn_device.machine()}")
    if args["presets"]:                  # --presets= (empty) with --stages=... prints table 5 alone
        files, images, labels = load_sample(args["data_dir"], args["images"])
        bench_input(files, p)
        presets = args["presets"].split(",")
        bench_training(images, labels, presets, args["policies"].split(","), args["steps"], p)
        bench_latency(presets)
    if args["stages"]:
        bench_stages(args["stages"].split(","), args["steps"], p)
    if args["epoch_starts"]:
        _, images, labels = load_sample(args["data_dir"], 6400)     # 100 batches: about 12 s an epoch with AMX
        bench_epoch_starts(images, labels, args["epoch_starts"])


if __name__ == "__main__":
    main(sys.argv[1:])
