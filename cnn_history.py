"""A run's history.csv: one row an epoch, as Keras's CSVLogger writes it, read and
written back here. Kept apart from cnn_model.py, and free of Keras, so that
cnn_results.py can read where an unfinished run stands without loading TensorFlow
(20 s on a 2-core machine) for a CSV file.
"""
import csv
import os


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
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def validated(row):
    """Whether an epoch was validated: without validation faces CSVLogger writes NA there,
    and a row cut short by a killed run has no value at all."""
    return row.get("val_accuracy") not in (None, "", "NA")
