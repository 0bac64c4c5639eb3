"""Score new face images with a model that cnn_run.py saved.

    python cnn_eval.py                                  # log/model.keras on test_images/<class>/*
    python cnn_eval.py --model=PATH --images=DIR        # DIR: class subfolders, or plain image files
    python cnn_eval.py photo1.jpg photo2.png            # single files (predicted only)
    python cnn_eval.py my_photos/ photo.jpg             # a folder named on its own is read as --images reads it
    python cnn_eval.py --tta=flip                       # average each image with its mirror
    python cnn_eval.py --tta=crops                      # ten-crop: 4 corners and centre, each mirrored
    python cnn_eval.py --detect_faces=True photo.jpg    # crop the largest face first, as FER-2013's are
    python cnn_eval.py --model=a.keras,b.keras          # an ensemble: the models' probabilities averaged

eval.png beside eval.json shows each image as the network saw it, with its
true and predicted class and the top-3 probabilities.

A subfolder named after a class of the model is scored against that class; any
other subfolder, and loose files, are predicted only. It prints one row per
image, then accuracy and loss over the labelled ones, and writes eval.json
beside the model, the first of an ensemble (or to --out=PATH).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import cnn_data
import cnn_metrics
import cnn_params

OPTIONS = {"model": "log/model.keras", "images": "test_images", "out": "", "tta": "none", "detect_faces": "False"}
SHEET_MAX = 64    # faces drawn on eval.png


def parse_args(argv):
    """--model, --images, --out, --tta and --detect_faces, plus image files named on their own."""
    options, files = dict(OPTIONS), []
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        sys.exit(0)
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            if name not in OPTIONS or not value:
                sys.exit(f"error: {arg}: expected one of {', '.join(f'--{k}=...' for k in OPTIONS)}")
            options[name] = value
        else:
            files.append(arg)
    if options["tta"] not in cnn_params.CHOICES["tta"]:
        sys.exit(f"error: --tta={options['tta']}: expected one of: {', '.join(cnn_params.CHOICES['tta'])}")
    if options["detect_faces"] not in ("True", "False"):
        sys.exit(f"error: --detect_faces={options['detect_faces']}: expected True or False")
    options["detect_faces"] = options["detect_faces"] == "True"
    return options, files


def gather(images_dir, files, classes):
    """The (path, true class or None) pairs to score: the files named on their own (a folder among them
    is read as --images reads one), else the folder --images names."""
    if files:
        pairs = []
        for f in files:
            pairs += read_folder(f, classes) if os.path.isdir(f) else [(f, None)]
        return pairs
    if not os.path.isdir(images_dir):
        sys.exit(f"error: {images_dir}: no such folder; give --images=DIR or image files")
    return read_folder(images_dir, classes)


def read_folder(images_dir, classes):
    """A folder's loose images (no true class) and its class subfolders' images; a class folder the
    model does not know is reported, and its images are scored without a true class."""
    pairs = []
    for entry in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, entry)
        if os.path.isfile(path):
            pairs.append((path, None))
        elif os.path.isdir(path) and not entry.startswith("."):
            known = entry in classes
            if not known:
                print(f"warning: {path}: {entry!r} is not a class of this model ({', '.join(classes)}); "
                      f"its images are predicted but left out of the accuracy")
            pairs += [(os.path.join(path, f), entry if known else None) for f in sorted(os.listdir(path))
                      if os.path.isfile(os.path.join(path, f))]
    return pairs


def main(argv):
    options, files = parse_args(argv)
    import cnn_model
    paths = options["model"].split(",")
    try:
        models, classes, _ = cnn_model.load_models(paths)
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    height, width = models[0].input_shape[1:3]

    # Decode each file the way the training data was prepared: grayscale, resized.
    scored, pixels = [], []
    for path, true in gather(options["images"], files, classes):
        try:
            pixels.append(cnn_data.decode_image(path, height, width, detect_faces=options["detect_faces"]))
            scored.append((path, true))
        except (ValueError, OSError) as error:
            print(f"skipped {path}: {error}")
    if not scored:
        sys.exit(f"error: no image could be read from {' '.join(files) or options['images']}")
    faces = np.stack(pixels)[..., None]
    # An ensemble's answer is the mean of its models' probabilities (each with the same TTA).
    probabilities = np.mean([cnn_model.predict(model, faces, tta=options["tta"]) for model in models], axis=0)

    print(f"\n{'file':<48}{'true':>10}{'predicted':>11}{'confidence':>12}")
    predictions = []
    for (path, true), probs in zip(scored, probabilities):
        predicted = classes[int(probs.argmax())]
        shown = path if len(path) <= 47 else "..." + path[-44:]
        print(f"{shown:<48}{true or '-':>10}{predicted:>11}{probs.max():>12.3f}")
        predictions.append({"path": path, "true": true, "predicted": predicted,
                            "probabilities": {c: round(float(q), 5) for c, q in zip(classes, probs)}})
    labelled = [i for i, (_, true) in enumerate(scored) if true is not None]
    labels = np.array([classes.index(scored[i][1]) for i in labelled], dtype=np.int64)
    result = cnn_metrics.score(probabilities[labelled], labels, classes)
    report = {"model": options["model"], "classes": classes, "tta": options["tta"], "n_scored": len(scored),
              "accuracy": result["accuracy"], "loss": result["loss"], "n_labelled": result["n"],
              "per_class": result.get("per_class", {}), "predictions": predictions}
    out = options["out"] or os.path.join(os.path.dirname(os.path.abspath(paths[0])), "eval.json")
    cnn_model.write_json(out, report)
    sheet = os.path.splitext(out)[0] + ".png"
    # A sheet of thousands of faces would take minutes and gigabytes to draw; the
    # first SHEET_MAX show what the network saw, eval.json holds every prediction.
    contact_sheet(pixels[:SHEET_MAX], scored[:SHEET_MAX], probabilities[:SHEET_MAX], classes, sheet)
    shown = "" if len(scored) <= SHEET_MAX else f" (the sheet shows the first {SHEET_MAX} of {len(scored)})"
    print(f"\nwrote {out} and {sheet}{shown}")
    if result["n"]:
        correct = int(round(result["accuracy"] * result["n"]))
        print(f"loss: {result['loss']:.4f}")
        print(f"accuracy: {result['accuracy']:.4f} ({correct}/{result['n']})")


def contact_sheet(pixels, scored, probabilities, classes, path, columns=8):
    """Each scored image as fed to the network, its true and predicted class, and top-3 bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = min(len(pixels), columns)
    rows = -(-len(pixels) // cols)
    fig = plt.figure(figsize=(1.9 * cols, 3.1 * rows))
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1.2] * rows, hspace=0.45)
    for i, (face, (path_i, true), probs) in enumerate(zip(pixels, scored, probabilities)):
        r, c = divmod(i, cols)
        predicted = classes[int(probs.argmax())]
        colour = "black" if true is None else ("green" if true == predicted else "red")
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(face, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{os.path.basename(path_i)[:16]}\ntrue: {true or '?'}\npredicted: {predicted}",
                     fontsize=7, color=colour)
        ax.axis("off")
        top3 = np.argsort(probs)[::-1][:3]
        bars = fig.add_subplot(grid[2 * r + 1, c])
        bars.barh(range(3), probs[top3][::-1], color="tab:blue")
        bars.set_yticks(range(3), [classes[k] for k in top3[::-1]], fontsize=6)
        bars.set_xlim(0, 1)
        bars.tick_params(axis="x", labelsize=5)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
