"""Write results.md: our runs next to the figures the reports state, from the runs' metrics.json.

    python cnn_results.py                 # every runs/*/metrics.json -> results.md
    python cnn_results.py runs/ other.md

A row shows only what a run measured: accuracy on each split, the epochs it
actually ran and its wall time. The report column quotes the reports. The first
table has one row per experiment of the two reports, from the run named after it;
a long run not finished yet shows where it stands, from its history.csv.
"""
import glob
import json
import os
import sys

import cnn_history

# What the reports state, as they state it: the report, its figure, what the figure measures, and its
# epochs. The FER-2013 report gives each network's val_accuracy, measured on augmented validation faces
# (Keras's ImageDataGenerator augments its validation subset too); the 8-class report's Table 3 its
# accuracy on its validation set, its training set and its 8 new photos.
REPORTED = {
    "dense": ("FER-2013", "36.8 % val_accuracy", 15),
    "conv3": ("FER-2013", "53.1 % val_accuracy", 15),
    "fer_best": ("FER-2013", "63.3 % val_accuracy", 50),
    "vgg16": ("FER-2013", "42.2 % val_accuracy", 10),
    "conv3_balanced": ("FER-2013", "50.5 % val_accuracy", 15),
    "fer_best_balanced": ("FER-2013", "58.8 % val_accuracy", 50),
    "qider_nodrop": ("8-class", "46.9 % validation; 76.4 % train; 2 of 8 photos (25.0 %)", 50),
    "qider": ("8-class", "24.2 % validation; 47.5 % train; 3 of 8 photos (37.5 %)", 50),
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
                    f"| {f'{100 * tta:.1f} ({tta_name})' if tta is not None else '-'} | {REPORTED[name][1] if name in REPORTED else '-'} "
                    f"| {run_time(m) / 60:.1f} min | {m.get('machine', '-')} |")
    return "\n".join(rows) + "\n"


def reports_table(runs_dir):
    """One row per experiment of the two reports: the report's figure beside the full-length run
    named after the experiment (runs_dir/<experiment>/), and its score on the 8 real photos where
    cnn_eval.py wrote one beside its model (runs_dir/<experiment>/eval.json)."""
    rows = ["| experiment | report | the report states | val % | val % augmented | train % | PublicTest % "
            "| 8 photos | epochs (report's) | training | machine |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, (report, figure, epochs) in REPORTED.items():
        run_dir = os.path.join(runs_dir, name)
        path = os.path.join(run_dir, "metrics.json")
        if not os.path.exists(path):
            rows.append(f"| {name} | {report} | {figure} | {part_run(run_dir, epochs)} "
                        f"| {' + '.join(cnn_history.machines(run_dir))} |")
            continue
        with open(path) as f:
            m = json.load(f)
        photos = os.path.join(run_dir, "eval.json")
        scored = "-"
        if os.path.exists(photos):
            with open(photos) as f:
                e = json.load(f)
            scored = f"{round(e['accuracy'] * e['n_labelled'])} of {e['n_labelled']}"
        rows.append(f"| {name} | {report} | {figure} | {percent(m.get('val'))} | {augmented(m.get('val'))} "
                    f"| {percent(m.get('train'))} | {percent(m.get('test'))} | {scored} | {m.get('epochs_run', '')} "
                    f"({epochs}) | {m.get('training_time_s', 0) / 60:.0f} min | {m.get('machine', '-')} |")
    return "\n".join(rows) + "\n"


def part_run(run_dir, epochs):
    """The cells from "val %" to "training" for a run without metrics.json: "not run", or where an
    unfinished run stands (stopped, to be resumed, or still training) from its history.csv - its best
    clean validation accuracy so far and the epochs done. Nothing else was measured yet."""
    history = [r for r in cnn_history.read_history(os.path.join(run_dir, "history.csv"))
               if cnn_history.validated(r)]
    if not history:
        return f"not run | | | | | ({epochs}) |"
    best = max(float(r["val_accuracy"]) for r in history)
    minutes = sum(float(r.get("seconds") or 0) for r in history) / 60
    return f"{100 * best:.1f} best so far | | | | | {len(history)} so far ({epochs}) | {minutes:.0f} min"


def augmented(val):
    """The validation accuracy on augmented faces (the FER-2013 report's metric), where it was measured."""
    return f"{100 * val['augmented']['accuracy']:.1f}" if val and "augmented" in val else "-"


def run_time(m):
    """A resumed run's wall time counts only its last start; its epochs' own times count them all."""
    return max(m.get("wall_time_s", 0), m.get("training_time_s", 0))


def main(argv):
    runs_dir = argv[0] if argv else "runs"
    out = argv[1] if len(argv) > 1 else "results.md"
    text = ("## The reports' experiments\n\n" + reports_table(runs_dir) + "\n## Every run\n\n" + table(runs_dir))
    with open(out, "w") as f:
        f.write("# Results\n\nWritten by `python cnn_results.py` from runs/*/metrics.json.\n\n" + text)
    print(text, end="")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
