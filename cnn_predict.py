"""A saved model of either kind, loaded and run, with NumPy and OpenCV alone until a Keras file is asked for.

Scoring needs no TensorFlow: the fast models are .tflite files that LiteRT runs (cnn_lite.py), and
test-time augmentation is plain array work. A .keras file is loaded by cnn_model.load_model, which
the caller passes in (load_models' load_keras) so that this module never imports Keras itself:
`pip install .` (the scorer alone) then scores photos and videos, and `pip install .[train]`
adds Keras for training and for .keras files.
"""
import os

import numpy as np

import cnn_lite


class ModelError(Exception):
    """A model file that cannot be used, said in one line."""


KERAS_MISSING = ("a .keras model needs TensorFlow and Keras, which the scorer alone does not install: "
                 'pip install ".[train]" in the toolkit\'s folder (or pip install -r requirements.txt), '
                 "or score with --model=fast, the shipped network in int8")


def load_lite(path):
    """(LiteModel, class names, {}) of a .tflite file, or a one-line ModelError naming it."""
    try:
        model, classes = cnn_lite.load_lite_model(path)
    except ValueError as error:
        raise ModelError(str(error)) from None
    return model, classes, {}


def load_models(paths, load_keras=None):
    """Several model files, to be averaged (an ensemble, or a teacher): the models, their class
    names and each one's stored parameters. A .tflite file is loaded here; any other file by
    load_keras (cnn_model.load_model), and when that is None, a ModelError says what to install.
    A file that cannot be used, or whose classes or input differ from the first's, is a one-line ModelError."""
    models, classes, all_params = [], None, []
    for path in paths:
        if str(path).endswith(".tflite"):
            model, its_classes, params = load_lite(path)
        elif load_keras is None:
            raise ModelError(f"{path}: no such model file" if not os.path.exists(path) else f"{path}: {KERAS_MISSING}")
        else:
            model, its_classes, params = load_keras(path)
        _, height, width, _ = model.input_shape
        if params and (params.get("img_height"), params.get("img_width")) != (height, width):
            raise ModelError(f"{path}: its input is {height}x{width} but its stored parameters say "
                             f"{params.get('img_height')}x{params.get('img_width')}; the file is inconsistent")
        if not models:
            classes = its_classes
        elif (its_classes, tuple(model.input_shape)) != (classes, tuple(models[0].input_shape)):
            raise ModelError(f"{path}: its classes ({', '.join(its_classes)}) or input {tuple(model.input_shape[1:])} "
                             f"differ from {paths[0]}'s ({', '.join(classes)}; {tuple(models[0].input_shape[1:])}): "
                             f"an ensemble averages models of the same classes and input")
        models.append(model)
        all_params.append(params)
    return models, classes, all_params


def is_keras_file(path):
    return not str(path).endswith(".tflite")


# ------------------------------------------------------------------ predict

def predict(model, images, tta="none", batch_size=256):
    """Class probabilities for a (n, h, w, 1) array of 0..255 pixels, by a Keras model or a LiteModel.

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
    # A few faces (one photo's, one frame's) go through the compiled predict step directly:
    # model.predict sets up a data adapter on every call, tens of milliseconds each.
    run = ((lambda view: model.predict_on_batch(view)) if len(images) <= batch_size else
           (lambda view: model.predict(view, batch_size=batch_size, verbose=0)))
    probabilities = [np.asarray(run(view)) for view in views]
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
    """The ten crops resized back to the input size (bilinear, pixel centres aligned as Keras's
    resize aligns them): what the network sees under tta="crops"."""
    import cv2
    height, width = images.shape[1:3]
    return [np.stack([cv2.resize(np.ascontiguousarray(face), (width, height), interpolation=cv2.INTER_LINEAR)
                      .reshape(height, width, -1) for face in crop]).astype(np.float32)
            for crop in ten_crops(images, fraction)]


def predict_one(model, image):
    """Probabilities for one (h, w, 1) image through the compiled predict step.

    model.predict() sets up a data adapter and a progress bar on every call;
    predict_on_batch reuses the compiled function, so one face costs about a
    millisecond instead of tens (bench/bench.py measures both).
    """
    return np.asarray(model.predict_on_batch(image[None].astype(np.float32)))[0]

