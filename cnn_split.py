"""The validation split and its rules: which training faces a run holds out, and whether a model
or a teacher of another run held out the same ones.

A run with no val/ folder holds out validation_split of train/: the same share of each class,
drawn by the seed (split_order "shuffled"), or each class's first files by name, as Keras's
ImageDataGenerator(validation_split) does (split_order "name", the 8-class report's reading).
These faces choose the best epoch, so a model that teaches the run, starts it (init_model) or
is compared with it (bench/compare.py) must never have trained on them: holds_out tells.
"""
import os

import numpy as np


def stratified_split(labels, fraction, seed):
    """Indices (train, val): the same fraction of each class goes to val, chosen by the seed."""
    rng = np.random.default_rng(seed)
    return _first_of_each_class(labels, rng.permutation, lambda n: int(round(n * fraction)))    # val may be empty


def name_order_split(labels, fraction):
    """Indices (train, val) as Keras's ImageDataGenerator(validation_split) draws them: the
    first int(n * fraction) faces of each class, in the order they were listed (by file
    name, or CSV row), go to val. No seed: the same faces whatever the run."""
    return _first_of_each_class(labels, lambda members: members, lambda n: int(n * fraction))


def _first_of_each_class(labels, order, n_val):
    """Indices (train, val), each sorted: each class's members put in order, its first n_val(count) to val."""
    train, val = [], []
    for c in np.unique(labels):
        members = order(np.flatnonzero(labels == c))
        count = n_val(len(members))
        val += list(members[:count])
        train += list(members[count:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


# What decides which training faces a split draws from, besides its size: the seed, the
# order it takes them in, and the faces that drop_blank and balance_count leave out first.
SPLIT_SOURCE = ("seed", "split_order", "drop_blank", "balance_count")
# What a run written before a setting of SPLIT_SOURCE existed did, when it does not store it.
SPLIT_BEFORE = {"split_order": "shuffled"}


def split_settings(params):
    """A model's or teacher file's stored parameters, with SPLIT_BEFORE where it stores none."""
    return {**SPLIT_BEFORE, **params}


def holds_out(params, p):
    """Whether a run with parameters `params` held out every validation face of a run with
    parameters p, and so never trained on them: the same faces and seed to draw from, and
    a validation_split as large or larger. A split takes each class's first faces of one
    seeded shuffle, so a smaller one lies inside a larger one. What `params` does not
    store is not held against it (a teacher file keeps its seed and split, and the list
    of its faces tells the rest), but for a setting that came later (SPLIT_BEFORE). The
    seed draws nothing in name order, where the first faces of a class are always the same."""
    its = split_settings(params)
    stored = {k: its.get(k, p[k]) for k in SPLIT_SOURCE}
    by_name = stored["split_order"] == p["split_order"] == "name"
    same_source = all(stored[k] == p[k] for k in SPLIT_SOURCE if not (by_name and k == "seed"))
    return same_source and (params.get("validation_split") or 0.0) >= p["validation_split"]


def draws_validation(p):
    """Whether a run holds out validation faces of train/ (a validation_split and no val/
    folder of its own): only then do a teacher's or a base model's stored seed and split
    (holds_out) tell whether it trained on them."""
    return p["validation_split"] > 0 and not os.path.isdir(os.path.join(p["data_dir"], "val"))


def split_mismatch(path, what, params, p):
    """None when a model (or teacher file) with stored parameters `params` held out all of this
    run's validation faces, else the one line that says it did not. A model that teaches or
    starts this run must have, or it learned the faces that choose this run's best epoch: the
    same seed and faces to draw from, and a validation_split as large or larger (holds_out).
    A run that draws no validation faces from train/ has none to keep from it (draws_validation)."""
    if not params or not draws_validation(p) or holds_out(params, p):
        return None
    its = split_settings(params)
    keys = ["seed", "validation_split"] + [k for k in SPLIT_SOURCE[1:] if its.get(k, p[k]) != p[k]]
    smaller = " or less" if params.get("validation_split") else ""
    return (f"{path}: {what} held out another validation split (" + ", ".join(f"{k} {its.get(k)}" for k in keys)
            + "); train with " + " ".join(f"--{k}={its.get(k)}" for k in keys) + smaller)


def has_validation(p):
    """Whether a run has validation faces to watch: some held out of train/, or a val/ folder."""
    return p["validation_split"] > 0 or os.path.isdir(os.path.join(p["data_dir"], "val"))
