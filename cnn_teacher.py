"""Distillation (Hinton et al. 2015): a teacher's probabilities for each training face,
face and mirror averaged, as part of the student's target, and the teacher.npz file
that keeps them beside a run so that a resume, or another student, reads them back.

A teacher, like a model to fine-tune, must have held out the student's validation
faces: cnn_split.split_mismatch says so, and the run stops before any face is decoded.
"""
import os

import numpy as np

import cnn_split
import cnn_model

TEACHER_FILE = "teacher.npz"      # a distilled run's teacher probabilities, kept in its out_dir


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
    the student's validation faces (cnn_split.split_mismatch). A mismatch is a one-line cnn_model.ModelError."""
    models, its_classes, all_params = cnn_model.load_models(paths)
    if its_classes != list(classes):
        raise cnn_model.ModelError(f"{paths[0]}: a teacher must know the same classes in the same order: it has "
                         f"{', '.join(its_classes)}; the data has {', '.join(classes)}")
    if models[0].input_shape[1:] != images.shape[1:]:
        raise cnn_model.ModelError(f"{paths[0]}: the teacher takes {models[0].input_shape[1:]} faces; the student is fed "
                         f"{images.shape[1:]} (set img_height, img_width and channels alike)")
    for path, params in zip(paths, all_params):
        _check_split(path, "the teacher", params, p)
    return np.mean([cnn_model.predict(model, images, tta="flip") for model in models], axis=0).astype(np.float32)


# What a teacher file must agree on with the run that reads it: the split, and the
# balancing copies that augment_dataset appends after the training faces.
TEACHER_FILE_PARAMS = ("seed", "validation_split", "augment_dataset", "noise_std", "img_height", "img_width")


def save_teacher_file(path, soft, files, classes, p):
    """The teacher's probabilities with what they belong to, so that a resumed run, or
    another student on another machine, need not label the faces again (minutes on a
    CPU). Files are stored relative to data_dir, so the data may move."""
    np.savez_compressed(path, probabilities=soft.astype(np.float32), classes=np.array(classes),
                        files=np.array([relative_to(f, p["data_dir"]) for f in files]),
                        teacher=np.array(p["teacher"]), split_order=np.array(p["split_order"]),
                        **{k: np.array(p[k]) for k in TEACHER_FILE_PARAMS})


def read_teacher_file(path, n_faces, files, classes, p):
    """The probabilities of a teacher file, checked against the run that reads them: the
    same classes, validation split (when the run draws one from train/), training files
    in the same order, and balancing copies."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {key: f[key] for key in f.files}
        soft = stored["probabilities"]
        stored_params = {k: stored[k].item() for k in TEACHER_FILE_PARAMS}
        if "split_order" in stored:     # files written before --split_order existed split "shuffled" (SPLIT_BEFORE)
            stored_params["split_order"] = stored["split_order"].item()
        its_classes, its_files = list(stored["classes"]), list(stored["files"])
    except Exception as error:      # not a zip, a key missing, ...: which one matters less than the file
        raise cnn_model.ModelError(f"{path}: not a teacher file written by cnn_run.py ({type(error).__name__}: {error})") from None
    if its_classes != list(classes):
        raise cnn_model.ModelError(f"{path}: the teacher's classes are {', '.join(its_classes)}; the data has {', '.join(classes)}")
    _check_split(path, "the teacher file's run", stored_params, p)
    for key in TEACHER_FILE_PARAMS[2:]:
        if stored_params[key] != p[key]:
            raise cnn_model.ModelError(f"{path}: written with --{key}={stored_params[key]}; this run has --{key}={p[key]}")
    if its_files != [relative_to(f, p["data_dir"]) for f in files] or soft.shape != (n_faces, len(classes)):
        raise cnn_model.ModelError(f"{path}: labels other training faces ({len(its_files):,} files) than this run's "
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


def _check_split(path, what, params, p):
    said = cnn_split.split_mismatch(path, what, params, p)
    if said:
        raise cnn_model.ModelError(said)
