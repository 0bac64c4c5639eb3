"""Write results.md: our runs next to the figures the reports state, from the runs' metrics.json.

    python cnn_results.py                 # every runs/*/metrics.json -> results.md
    python cnn_results.py runs/ other.md

A row shows only what a run measured: accuracy on each split, the epochs it
actually ran and its wall time. The report column quotes the reports.
"""
import glob
import json
import os
import sys

# What the reports state, as they state it: the FER-2013 report gives each network's
# val_accuracy (measured on augmented validation faces, as Keras's ImageDataGenerator
# does); the 8-class report's Table 3 its accuracy on its validation set and on its 8 photos.
REPORTED = {
    "dense": "36.8 % (validation)",
    "conv3": "53.1 % (validation)",
    "fer_best": "63.3 % (validation)",
    "vgg16": "42.2 % (validation)",
    "conv3_balanced": "50.5 % (validation)",
    "fer_best_balanced": "58.8 % (validation)",
    "qider_nodrop": "46.9 % (validation), 76.4 % (train), 25.0 % (8 photos)",
    "qider": "24.2 % (validation), 47.5 % (train), 37.5 % (8 photos)",
}


def percent(split):
    return f"{100 * split['accuracy']:.1f}" if split and split.get("n") else "-"


def table(runs_dir):
    rows = ["| run | experiment | preset | data | epochs run | train % | val % | val % augmented | test % "
            "| test % with TTA | the report states | wall time | machine |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "metrics.json"))):
        with open(path) as f:
            m = json.load(f)
        run = os.path.basename(os.path.dirname(path))
        name = m.get("experiment") or "-"
        test = m.get("test", {})
        tta_name = m.get("tta", "none")
        tta = test.get("tta_" + tta_name, {}).get("accuracy")
        data = "demo set" if "demo" in m.get("data_dir", "") else os.path.basename(m.get("data_dir", "").rstrip("/"))
        rows.append(f"| {run} | {name} | {m.get('preset', '')} | {data} | {m.get('epochs_run', '')} "
                    f"| {percent(m.get('train'))} | {percent(m.get('val'))} | {augmented(m.get('val'))} | {percent(test)} "
                    f"| {f'{100 * tta:.1f} ({tta_name})' if tta is not None else '-'} | {REPORTED.get(name, '-')} "
                    f"| {run_time(m) / 60:.1f} min | {m.get('machine', '-')} |")
    return "\n".join(rows) + "\n"


def augmented(val):
    """The validation accuracy on augmented faces (the FER-2013 report's metric), where it was measured."""
    return f"{100 * val['augmented']['accuracy']:.1f}" if val and "augmented" in val else "-"


def run_time(m):
    """A resumed run's wall time counts only its last start; its epochs' own times count them all."""
    return max(m.get("wall_time_s", 0), m.get("training_time_s", 0))


def main(argv):
    runs_dir = argv[0] if argv else "runs"
    out = argv[1] if len(argv) > 1 else "results.md"
    text = table(runs_dir)
    with open(out, "w") as f:
        f.write("# Results\n\nWritten by `python cnn_results.py` from runs/*/metrics.json.\n\n" + text)
    print(text, end="")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
