"""Your own classes: fine-tuning the shipped model against training the same network from scratch,
side by side, on two small sets, each run with the same budget of minutes.

    python bench/finetune.py [--fer_dir=data/fer2013] [--classes=happy,sad,surprise] [--per_class=200]
                             [--minutes=4] [--epochs=10] [--sets=fer_subset,qider]

The sets:
- fer_subset: --per_class training faces of each of --classes from FER-2013's train/ (the first by
  name), 60 more of each as val/, and every PublicTest face of those classes as test/. The shipped
  model was trained on FER-2013's train/, these faces among them: this set measures a few classes of
  faces of the kind it knows, and its test accuracy (PublicTest, which no model here trained on) is
  the figure to read.
- qider: the cartoon stand-in for the 8-class report's QIDER (4,521 training faces, 1,346 in val/,
  8 classes, one of them, negative, not FER-2013's), at 48x48: faces and classes the shipped model never saw.
Each set is trained twice, one command each: `--experiment=finetune` (the shipped model's layers
but its head, a new head fitted first, then the whole network at learning rate 1e-4) and the same
command with `--init_model= --learning_rate=1e-3` (the same network from random weights, at the
rate the shipped model was trained with). Each gets --epochs epochs or --minutes of training,
whichever ends first. With no FER-2013 at --fer_dir, the archive in ../shared/data/fer2013 is
extracted to a temporary folder. A benchmark, not a test: it prints what it measures.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

import cnn_params
from fast import fer2013        # FER-2013 at --fer_dir, else the shared archive extracted once

ARGS = {"fer_dir": "data/fer2013", "classes": "happy,sad,surprise", "per_class": 200, "minutes": 4.0, "epochs": 10,
        "sets": "fer_subset,qider"}
VAL_PER_CLASS = 60


def fer_subset(fer_dir, classes, per_class, folder):
    """train/ and val/ from FER-2013's train/, test/ from its PublicTest, for these classes only."""
    for name in classes:
        files = sorted(os.listdir(os.path.join(fer_dir, "train", name)))
        for split, chosen in (("train", files[:per_class]), ("val", files[per_class:per_class + VAL_PER_CLASS])):
            os.makedirs(os.path.join(folder, split, name))
            for f in chosen:
                shutil.copy(os.path.join(fer_dir, "train", name, f), os.path.join(folder, split, name, f))
        shutil.copytree(os.path.join(fer_dir, "test", name), os.path.join(folder, "test", name))
    return folder


def train(data_dir, out_dir, minutes, epochs, options):
    command = [sys.executable, os.path.join(HERE, "cnn_run.py"), "--experiment=finetune", f"--data_dir={data_dir}",
               f"--out_dir={out_dir}", f"--max_minutes={minutes}", f"--epochs={epochs}", *options]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(out_dir, "metrics.json")) as f:
        return json.load(f)


def main(argv):
    args = cnn_params.read_options(argv, ARGS)
    work = tempfile.mkdtemp(prefix="bench_finetune_")
    sets = {}
    if "fer_subset" in args["sets"]:
        sets["fer_subset"] = fer_subset(fer2013(args["fer_dir"]), args["classes"].split(","), args["per_class"],
                                        os.path.join(work, "fer_subset"))
    if "qider" in args["sets"]:
        sets["qider"] = os.path.join(work, "qider")       # drawn by cnn_run.py on first use (--qider_dir)
    print(f"{os.cpu_count()} CPU cores; each run: {args['epochs']} epochs or {args['minutes']} minutes of training, "
          f"whichever ends first\n")
    print("| set | start | epochs | training minutes | val accuracy | test accuracy |\n|---|---|---:|---:|---:|---:|")
    for name, folder in sets.items():
        extra = [f"--qider_dir={folder}"] if name == "qider" else []
        for start, options in (("the shipped model (--experiment=finetune)", []),
                               ("random weights (--init_model= --learning_rate=1e-3)", ["--init_model=", "--learning_rate=1e-3"])):
            metrics = train(folder, os.path.join(work, f"{name}_{len(options)}"), args["minutes"], args["epochs"],
                            extra + options)
            test = f"{100 * metrics['test']['accuracy']:.2f} %" if "test" in metrics else "-"
            print(f"| {name} | {start} | {metrics['epochs_run']} | {metrics['training_time_s'] / 60:.1f} | "
                  f"{100 * metrics['val']['accuracy']:.2f} % | {test} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
