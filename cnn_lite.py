"""A TFLite model, run by LiteRT alone (no TensorFlow), that scores faces as a Keras model does.

The default model for scoring (`--model=fast`, pretrained/fer2013_int8.tflite) is the shipped
network with its weights stored as int8 (cnn_export.py --format=tflite_int8): on a 2-core CPU it
scores one face several times faster than Keras does, with the same PublicTest accuracy; the
fastest (`--model=fastest`) is a smaller network stored the same way (docs/speed.md, "The fast
models"). LiteModel offers what cnn_predict.predict and cnn_faces use of a Keras model
(input_shape, output_shape, predict_on_batch, predict), so test-time augmentation and the face
pipeline work unchanged, and it may be called from several threads.
"""
import os
import threading

import numpy as np


class LiteModel:
    """One .tflite file, one face at a time through a LiteRT interpreter (its input is (1, h, w, 1))."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=path, num_threads=threads or os.cpu_count())
        self.interpreter.allocate_tensors()
        self.lock = threading.Lock()
        self.given = self.interpreter.get_input_details()[0]
        self.answer = self.interpreter.get_output_details()[0]
        self.input_shape = (None, *self.given["shape"][1:])
        self.output_shape = (None, *self.answer["shape"][1:])

    def predict_on_batch(self, images):
        rows = []
        with self.lock:         # an interpreter holds its input and output: one thread at a time
            for image in np.asarray(images, np.float32):
                self.interpreter.set_tensor(self.given["index"], image[None])
                self.interpreter.invoke()
                rows.append(self.interpreter.get_tensor(self.answer["index"])[0].copy())
        return np.array(rows, np.float32).reshape(-1, self.output_shape[-1])

    def predict(self, images, batch_size=None, verbose=0):
        return self.predict_on_batch(images)


def labels_of(path):
    """The class names of a .tflite file, in output order: <name>.labels.txt beside it (as
    cnn_export.py writes it), else a labels.txt in its folder (as pretrained/ holds one for its
    models). Raises ValueError when there is neither."""
    for candidate in (os.path.splitext(path)[0] + ".labels.txt", os.path.join(os.path.dirname(path), "labels.txt")):
        if os.path.isfile(candidate):
            with open(candidate) as f:
                return [line.strip() for line in f if line.strip()]
    raise ValueError(f"{path}: no {os.path.basename(os.path.splitext(path)[0])}.labels.txt or labels.txt beside it "
                     "to name its classes (cnn_export.py writes NAME.labels.txt beside NAME.tflite)")


def load_lite_model(path):
    """(LiteModel, class names) of a .tflite file; ValueError naming the file when it cannot be used."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such model file")
    classes = labels_of(path)
    try:
        model = LiteModel(path)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: not a TFLite model LiteRT can run ({str(error).splitlines()[0]})") from None
    if model.output_shape[-1] != len(classes):
        raise ValueError(f"{path}: {model.output_shape[-1]} outputs but {len(classes)} class names beside it")
    return model, classes
