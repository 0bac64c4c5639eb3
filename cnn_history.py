"""A run's history.csv: one row an epoch, as Keras's CSVLogger writes it, read and
written back here; and machines.txt, the machines that trained the run. Kept apart
from cnn_model.py, and free of Keras, so that cnn_results.py can read where an
unfinished run stands, and on what, without loading TensorFlow (20 s on a 2-core
machine) for two text files.
"""
import csv
import io
import math
import os

import cnn_storage


def read_history(path):
    """The rows of a history.csv as dicts of strings; [] when there is none yet."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    """Write rows back (a resumed run keeps only the epochs its backup holds); no rows, no file."""
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return
    # The columns in CSVLogger's order, so the rows it appends line up; "seconds"
    # (blank) is added to a history from before it was recorded.
    fields = ["epoch"] + sorted(set(rows[0]) - {"epoch"} | {"seconds"})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    cnn_storage.write_bytes(path, text.getvalue().encode())     # a kill leaves the old history or the new


def validated(row):
    """Whether an epoch was validated: without validation faces CSVLogger writes NA there,
    and a row cut short by a killed run has no value at all."""
    return row.get("val_accuracy") not in (None, "", "NA")


def diverged(row):
    """Whether an epoch's training loss was NaN or infinite (Keras's TerminateOnNaN stopped it there)."""
    try:
        return not math.isfinite(float(row.get("loss")))
    except (TypeError, ValueError):
        return True


MACHINES_FILE = "machines.txt"


def note_machine(out_dir, machine):
    """Add the machine that trains now to out_dir/machines.txt, once: a run resumed on another
    machine names both, since each computes otherwise (a seed fixes the weights on one machine)."""
    if machine not in machines(out_dir):
        with open(os.path.join(out_dir, MACHINES_FILE), "a") as f:
            f.write(machine + "\n")


def machines(out_dir):
    """The machines that trained the run in out_dir, in the order they started; [] before any."""
    path = os.path.join(out_dir, MACHINES_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]
