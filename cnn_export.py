"""Export a trained model for other runtimes: TFLite (float32, or tflite_int8: its weights stored
as int8, the fast model for video), SavedModel, ONNX, or a plain float32 .keras file (keras_f16:
the same, its weights stored as float16).

    python cnn_export.py --model=log/model.keras --format=tflite [--out=PATH]

The exported model takes 0..255 grey pixels and computes in float32, whatever
precision trained it. Its class names, in output order, go beside it: NAME.labels.txt for a
file NAME.tflite or NAME.onnx (two exports in one folder keep their own), labels.txt inside a
SavedModel folder.
"""
import io
import os
import sys
import tempfile
import zipfile

import numpy as np
import keras

import cnn_model
import cnn_out_dir
import cnn_params
import cnn_storage


EXPORT_FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "tflite_int8": "tf_saved_model",
                  "onnx": "onnx", "keras": "keras", "keras_f16": "keras"}


def float32_copy(model):
    """The same network with every layer in float32 and no optimizer state: a model
    trained under mixed_bfloat16 then runs fast on any CPU and its file is a third the size.
    Its batch norm layers are Keras's own, so the file loads without this module."""
    def float32_layer(layer):     # Keras's own batch norm, so that plain Keras loads the file
        kind = keras.layers.BatchNormalization if type(layer) is cnn_model.FusedBatchNormalization else layer.__class__
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
    rewritten = io.BytesIO()
    with zipfile.ZipFile(rewritten, "w") as archive:
        for info, data in entries:
            archive.writestr(info, weights if info.filename == "model.weights.h5" else data)
    cnn_storage.write_bytes(path, rewritten.getvalue())


def export(model_path, fmt, out=""):
    """Export a saved model for use outside Keras: a TensorFlow SavedModel folder, a
    TFLite (LiteRT) file, or ONNX (needs the onnx export packages), with the
    class names beside it, one per line, in output order (labels_path). "keras"
    writes a float32 .keras file without optimizer state, for shipping;
    "keras_f16" the same with its weights stored as float16 (half the size)."""
    if fmt not in EXPORT_FORMATS:
        raise cnn_model.ModelError(f"--format={fmt}: expected one of {', '.join(EXPORT_FORMATS)}")
    model, classes, params = cnn_model.load_model(model_path)
    suffix = {"saved_model": "_saved_model", "tflite": ".tflite", "tflite_int8": "_int8.tflite", "onnx": ".onnx",
              "keras": "_float32.keras", "keras_f16": "_float16.keras"}[fmt]
    out = out or os.path.splitext(model_path)[0] + suffix
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Every format gets the float32 network, whatever precision trained it: a mixed_bfloat16 graph
    # puts TensorFlow's own ops (Flex) into a TFLite file, which the plain TFLite interpreter refuses.
    model = float32_copy(model)
    if fmt in ("keras", "keras_f16"):
        cnn_storage.save_model(model, out, classes, dict(params, precision="float32"))
        if fmt == "keras_f16":
            store_weights_as_float16(out)
        return out, None
    model(np.zeros((1,) + tuple(model.input_shape[1:]), np.float32))   # ONNX export wants a called model
    try:
        if fmt == "tflite_int8":
            int8_weights_tflite(model, out)
        else:
            model.export(out, format=EXPORT_FORMATS[fmt], verbose=False)
    except ImportError as error:
        raise cnn_model.ModelError(f"--format={fmt} needs a package that is not installed: {error}") from None
    labels = labels_path(out)
    cnn_storage.write_bytes(labels, ("\n".join(classes) + "\n").encode())
    return out, labels


def labels_path(out):
    """Where an export's class names go: inside a folder (SavedModel), else NAME.labels.txt beside
    the file NAME.tflite, which cnn_lite reads before a labels.txt of the folder. One labels.txt for a
    folder of files would be shared, and the second export's classes would name the first one's outputs."""
    if os.path.isdir(out):
        return os.path.join(out, "labels.txt")
    return os.path.splitext(out)[0] + ".labels.txt"


def int8_weights_tflite(model, out):
    """A TFLite file of the network with its weights stored as int8 and its activations computed in
    float ("dynamic range" quantization): a quarter of the float32 file, several times faster on a
    CPU, and no calibration faces needed (bench/fast.py measures it beside full int8)."""
    import tensorflow as tf
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        content = converter.convert()
    cnn_storage.write_bytes(out, content)


USAGE = ("usage: python cnn_export.py --model=log/model.keras --format=tflite|tflite_int8|saved_model|onnx|keras|keras_f16 "
         "[--out=PATH]")


def main(argv):
    """The command line: --model, --format and --out; one line for anything else."""
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        sys.exit(0)
    options = cnn_params.read_options(argv, {"model": "log/model.keras", "format": "tflite", "out": ""})
    if options["out"]:
        if os.path.isdir(options["out"]) and options["format"] != "saved_model":
            sys.exit(f"error: --out={options['out']}: a folder; expected the file to write, like "
                     f"--out={os.path.join(options['out'], 'model.tflite')}")
        cnn_out_dir.make_folder(os.path.dirname(os.path.abspath(options["out"])), f"--out={options['out']}")
    try:
        written, labels = export(options["model"], options["format"], options["out"])
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    except OSError as error:             # a full disk, or the export's folder taken away meanwhile
        sys.exit(f"error: {options['out'] or options['model']}: the export could not be written ({error.strerror or error})")
    print(f"wrote {written}" + (f" and {labels}" if labels else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
