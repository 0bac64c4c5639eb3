"""Accuracy of saved models side by side: each alone and every average of them, on
the validation faces they were chosen on and on the test split, with McNemar's
test for each pair.

    python bench/compare.py --data_dir=data/fer2013 [--tta=none|flip|crops] a.keras b.keras [...]

The validation split is rebuilt from the models' stored seed and
validation_split. With one seed, a smaller validation_split holds out a part of
a larger one's faces (the split takes each class's first faces of one seeded
shuffle), so models of one seed and different splits are compared on the
smallest split's faces, which none of them trained on (cnn_split.holds_out, the
rule that teachers and fine-tunes pass too). When the seeds differ, or the
faces the split drew from (drop_blank, balance_count), or one model trained on
all of train/ (validation_split 0), the faces one of them trained on would be
scored as held out, so they are compared on the test split only. McNemar's test
pairs two models on the same faces: it counts the faces that only the first gets right and those that only
the second gets right, and asks how likely so uneven a split is by chance
(two-sided, with continuity correction). A difference of a few tenths of a point
on 5,741 faces is usually not a difference. Models are named by their file, and by
as many folders above it as tell them apart (runs/a/model.keras, runs/b/model.keras).
"""
import itertools
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import cnn_data
import cnn_model
import cnn_params
import cnn_split

# What rebuilds the split a model was trained and chosen on, taken from its stored parameters:
# the faces and seed it was drawn from (cnn_split.SPLIT_SOURCE), its size, and the face size.
SPLIT_PARAMS = cnn_split.SPLIT_SOURCE + ("validation_split", "img_height", "img_width", "channels")


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return
    options, paths = cnn_params.read_options(argv, {"data_dir": "data/fer2013", "tta": "none"}, files=True)
    if not paths or options["tta"] not in cnn_params.CHOICES["tta"]:
        sys.exit(__doc__)
    try:
        models, classes, all_params = cnn_model.load_models(paths)
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    p = split_params(all_params[0], options["data_dir"])
    shares = [params.get("validation_split") or 0.0 for params in all_params]
    p["validation_split"] = min(shares)
    shared_split = p["validation_split"] > 0 and all(cnn_split.holds_out(params, p) for params in all_params)
    if shared_split and len(set(shares)) > 1:
        print(f"note: the models held out different shares of train/; they are compared on the "
              f"validation_split {p['validation_split']} faces, which every one of them held out")
    if not shared_split:
        stored = [cnn_split.split_settings(params) for params in all_params]   # older models store less
        shown = ["seed", "validation_split"] + [k for k in cnn_split.SPLIT_SOURCE[1:]
                                                 if len({params.get(k) for params in stored}) > 1]
        print("note: the models did not hold out the same validation faces ("
              + "; ".join(f"{name}: " + ", ".join(f"{k} {params.get(k)}" for k in shown)
                          for name, params in zip(short_names(paths), stored))
              + "); they are compared on the test split only")
    try:
        data = cnn_data.load_dataset(p)
    except cnn_data.DataError as error:
        sys.exit(f"error: {error}")
    if data["classes"] != classes:
        sys.exit(f"error: {options['data_dir']}: its classes ({', '.join(data['classes'])}) are not the models' "
                 f"({', '.join(classes)})")

    splits = [s for s in ("val", "test") if s in data and len(data[s][1]) and (s != "val" or shared_split)]
    names = short_names(paths)
    probabilities = [{s: cnn_model.predict(model, data[s][0], options["tta"]) for s in splits} for model in models]
    right = [{s: probs[s].argmax(1) == data[s][1] for s in splits} for probs in probabilities]
    averages = []
    for k in range(1, len(names) + 1):
        for group in itertools.combinations(range(len(names)), k):
            averages.append((" + ".join(names[i] for i in group),
                             [np.mean(np.mean([probabilities[i][s] for i in group], axis=0).argmax(1) == data[s][1])
                              for s in splits]))
    pairs = [(f"{names[a]} vs {names[b]}", [mcnemar(right[a][s], right[b][s]) for s in splits])
             for a, b in itertools.combinations(range(len(names)), 2)]
    header = "model (several: probabilities averaged)"
    # One column of figures, however long the names.
    width = max(len(label) for label in [header] + [label for label, _ in averages + pairs]) + 2

    print(f"\naccuracy, tta={options['tta']} ({', '.join(f'{s} {len(data[s][1]):,} faces' for s in splits)})")
    print(f"{header:<{width}}" + "".join(f"{s:>9}" for s in splits))
    for label, row in averages:
        print(f"{label:<{width}}" + "".join(f"{a:>9.4f}" for a in row))
    if pairs:
        print(f"\nMcNemar, tta={options['tta']}: faces only the first gets right, only the second, p")
        for label, tests in pairs:
            print(f"{label:<{width}}" + "".join("   {}: {} vs {}, p = {:.3f}".format(s, *t)
                                                for s, t in zip(splits, tests)))


def split_params(params, data_dir):
    """The run parameters that rebuild the split a model was trained and chosen on: the defaults,
    then its stored SPLIT_PARAMS, reading data_dir."""
    p = dict(cnn_params.get_params([]), data_dir=data_dir)
    p.update({k: params[k] for k in SPLIT_PARAMS if k in params})
    return p


def short_names(paths):
    """The fewest trailing parts of each path that tell the models apart: a.keras beside b.keras, but
    run1/model.keras beside run2/model.keras, since every run saves a model.keras."""
    parts = [os.path.abspath(path).split(os.sep) for path in paths]
    for k in range(1, max(map(len, parts)) + 1):
        names = [os.path.join(*q[-k:]) for q in parts]
        if len(set(names)) == len(names):
            return names
    return [os.path.normpath(path) for path in paths]          # one file named twice


def mcnemar(a_right, b_right):
    """(only a right, only b right, two-sided p) for two models' per-face correctness."""
    only_a, only_b = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    z = max(abs(only_a - only_b) - 1, 0) / math.sqrt(only_a + only_b)
    return only_a, only_b, math.erfc(z / math.sqrt(2))


if __name__ == "__main__":
    main(sys.argv[1:])
