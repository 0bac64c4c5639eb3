"""Which test-time augmentation: ten-crop at other crop sizes, and with the whole face added,
against the ten-crop that `--tta=crops` uses (cnn_model.CROP_FRACTION of each side), on the
validation faces the model held out and on the test split, with McNemar's test.

    python bench/tta.py --data_dir=data/fer2013 model.keras

The validation split is rebuilt from the model's stored parameters, as bench/compare.py
does. Each view (a crop, or the whole face, and their mirrors) is predicted once and the
variants average their views' probabilities, so the figures of one variant do not depend
on which others are scored. In float32 on 2 cores of an AMD EPYC, the 32 views took 33
minutes for fer_sota_wide (9,330 faces: a fifth held out, and test), 9 for fer_sota (6,461).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import cnn_data
import cnn_model
import cnn_params
from compare import mcnemar, split_params

FRACTIONS = (0.85, cnn_model.CROP_FRACTION, 0.95)      # crop sides: 41, 43 and 46 of 48 pixels


def variants():
    """Each variant's name and the views it averages."""
    def crops(f):
        return [f"crops {f}: {i}" for i in range(10)]
    whole = ["whole", "whole mirrored"]
    rows = [("none", whole[:1]), ("flip", whole)]
    rows += [(f"ten-crop {f}" + (" (--tta=crops)" if f == cnn_model.CROP_FRACTION else ""), crops(f)) for f in FRACTIONS]
    rows += [(f"ten-crop {cnn_model.CROP_FRACTION} + flip", crops(cnn_model.CROP_FRACTION) + whole),
             ("ten-crop " + ", ".join(map(str, FRACTIONS)) + " + flip", sum(map(crops, FRACTIONS), []) + whole)]
    return rows


def views(images):
    """Every view the variants use, by name: the whole face, its mirror, and ten crops of each size."""
    named = {"whole": images, "whole mirrored": images[:, :, ::-1]}
    for f in FRACTIONS:
        for i, view in enumerate(cnn_model.ten_crop_views(images, f)):
            named[f"crops {f}: {i}"] = view
    return named


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return
    options, paths = cnn_params.read_options(argv, {"data_dir": "data/fer2013"}, files=True)
    if len(paths) != 1:
        sys.exit(__doc__)
    try:
        model, classes, params = cnn_model.load_model(paths[0])
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    try:
        data = cnn_data.load_dataset(split_params(params, options["data_dir"]))
    except cnn_data.DataError as error:
        sys.exit(f"error: {error}")
    splits = [s for s in ("val", "test") if s in data and len(data[s][1])]
    probabilities = {}
    for s in splits:
        for name, view in views(data[s][0].astype(np.float32)).items():
            probabilities[s, name] = cnn_model.predict(model, view)

    def right(s, names):
        return np.mean([probabilities[s, n] for n in names], axis=0).argmax(1) == data[s][1]

    rows = variants()
    default = dict(rows)[f"ten-crop {cnn_model.CROP_FRACTION} (--tta=crops)"]
    theirs = {s: right(s, default) for s in splits}
    width = max(len(name) for name, _ in rows) + 2
    print(f"\n{paths[0]}: accuracy, and against --tta=crops the faces only this variant gets right, only "
          f"--tta=crops does, and McNemar's p ({', '.join(f'{s} {len(data[s][1]):,} faces' for s in splits)})")
    print((f"{'tta':<{width}}{'views':>6}" + "".join(f"{s:>9}{'':>26}" for s in splits)).rstrip())
    for name, names in rows:
        line = f"{name:<{width}}{len(names):>6}"
        for s in splits:
            mine = right(s, names)
            line += f"{100 * mine.mean():>9.2f}" + ("   {:>5} vs {:<5} p = {:.3f}".format(*mcnemar(mine, theirs[s]))
                                                    if names != default else f"{'':>26}")
        print(line.rstrip())


if __name__ == "__main__":
    main(sys.argv[1:])
