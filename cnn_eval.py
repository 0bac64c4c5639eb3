"""Score new face images with a model that cnn_run.py saved.

    python cnn_eval.py                                  # log/model.keras on test_images/<class>/*
    python cnn_eval.py --model=PATH --images=DIR        # DIR: class subfolders, or plain image files
    python cnn_eval.py photo1.jpg photo2.png            # single files (predicted only)
    python cnn_eval.py --tta=flip                       # average each image with its mirror

A subfolder named after a class of the model is scored against that class; any
other subfolder, and loose files, are predicted only. It prints one row per
image, then accuracy and loss over the labelled ones, and writes eval.json
beside the model (or to --out=PATH).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import cnn_data

OPTIONS = {"model": "log/model.keras", "images": "test_images", "out": "", "tta": "none"}


def parse_args(argv):
    """--model, --images, --out and --tta, plus image files named on their own."""
    options, files = dict(OPTIONS), []
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            if name not in OPTIONS or not value:
                sys.exit(f"error: {arg}: expected one of {', '.join(f'--{k}=...' for k in OPTIONS)}")
            options[name] = value
        else:
            files.append(arg)
    if options["tta"] not in ("none", "flip"):
        sys.exit(f"error: --tta={options['tta']}: expected none or flip")
    return options, files


def gather(images_dir, files, classes):
    """The (path, true class or None) pairs to score; a class folder the model does not know is reported."""
    if files:
        return [(f, None) for f in files]
    if not os.path.isdir(images_dir):
        sys.exit(f"error: {images_dir}: no such folder; give --images=DIR or image files")
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
    try:
        model, classes, params = cnn_model.load_model(options["model"])
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    _, height, width, channels = model.input_shape
    if params and (params.get("img_height"), params.get("img_width")) != (height, width):
        sys.exit(f"error: {options['model']}: its input is {height}x{width} but its stored parameters say "
                 f"{params.get('img_height')}x{params.get('img_width')}; the file is inconsistent")

    # Decode each file the way the training data was prepared: grayscale, resized.
    scored, pixels = [], []
    for path, true in gather(options["images"], files, classes):
        try:
            pixels.append(cnn_data.decode_image(path, height, width))
            scored.append((path, true))
        except (ValueError, OSError) as error:
            print(f"skipped {path}: {error}")
    if not scored:
        sys.exit(f"error: no image could be read from {' '.join(files) or options['images']}")
    probabilities = cnn_model.predict(model, np.stack(pixels)[..., None], tta=options["tta"])

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
    result = cnn_model.score(probabilities[labelled], labels, classes)
    report = {"model": options["model"], "classes": classes, "tta": options["tta"], "n_scored": len(scored),
              "accuracy": result["accuracy"], "loss": result["loss"], "n_labelled": result["n"],
              "per_class": result.get("per_class", {}), "predictions": predictions}
    out = options["out"] or os.path.join(os.path.dirname(os.path.abspath(options["model"])), "eval.json")
    cnn_model.write_json(out, report)
    print(f"\nwrote {out}")
    if result["n"]:
        correct = int(round(result["accuracy"] * result["n"]))
        print(f"loss: {result['loss']:.4f}")
        print(f"accuracy: {result['accuracy']:.4f} ({correct}/{result['n']})")


if __name__ == "__main__":
    main(sys.argv[1:])
