"""A run's folder (out_dir), never lost: one run at a time, a finished run never trained over, an
unfinished run resumed only by its own command, a diverged run that says what the folder holds.

cnn_run.py calls these before it decodes a face (check_resume, finished_run, same_finished_run,
claim_out_dir, move_earlier_run) and when a run goes NaN (diverged_run). docs/reliability.md
says what each promises; the model's own files are written atomically by cnn_storage.py.
"""
import atexit
import json
import os
import socket
import sys
import time

import cnn_storage


def diverged_run(p, model_path, epoch, started):
    """The one line that ends a run whose loss became NaN or infinite: nothing of it is evaluated
    or reported, and what model.keras in out_dir holds is said (Keras's TerminateOnNaN stopped it)."""
    if os.path.exists(model_path) and os.path.getmtime(model_path) >= started:
        holds = f"{model_path} holds this run's best epoch before that"
    elif os.path.exists(model_path):
        holds = f"{model_path} is an earlier run's, not this one's"
    else:
        holds = "no model of this run was saved"
    return (f"error: the training loss became NaN or infinite in epoch {epoch} (--learning_rate={p['learning_rate']} "
            f"may be too high); the run stopped and reports nothing: {holds}; history.csv shows the epochs")


# What may change when an unfinished run is resumed: where it lives, its time budget, and how many
# epochs it runs to (one more epoch resumes and trains just that one). An "auto" value is stored
# as what it became on the machine (precision, strategy), so it is not compared either.
RESUME_MAY_CHANGE = ("out_dir", "max_minutes", "epochs", "demo_dir", "qider_dir", "fresh")


def check_resume(p):
    """An unfinished run in out_dir is resumed only by its own command: other settings would load its
    backup into another network, or go on with other data, so the run stops here in one line naming
    what differs (the folder is left as it was, for its own command to resume)."""
    backup = os.path.join(p["out_dir"], "backup")
    if not os.path.isdir(backup) or os.path.exists(os.path.join(backup, "finished.json")):
        return                  # nothing to resume (and Keras, slow to load, is not loaded for nothing)
    import cnn_model
    done = cnn_model.finished_epochs(p["out_dir"])
    if not done:
        return
    _, differ = settings_differ(p, RESUME_MAY_CHANGE)
    if differ:
        sys.exit(f"error: {p['out_dir']} holds an unfinished run ({done} epochs done) of other settings: "
                 f"{'; '.join(differ)}. Run its own command to resume it, or give another --out_dir")
    if done > p["epochs"]:
        sys.exit(f"error: {p['out_dir']} holds an unfinished run that has done {done} epochs, more than "
                 f"--epochs={p['epochs']}; give --epochs={done} or more to resume it, or another --out_dir")


def settings_differ(p, may_change):
    """The parameters stored with out_dir's model.keras, and each of them that differs from this
    command's, in words ("name X there, Y here"), leaving out may_change and "auto" values."""
    stored = (cnn_storage.stored_meta(os.path.join(p["out_dir"], "model.keras")) or {}).get("params", {})
    return stored, [f"{name} {stored[name]!r} there, {p[name]!r} here" for name in sorted(p)
                    if name in stored and name not in may_change and p[name] != "auto" and stored[name] != p[name]]


def finished_run(out_dir):
    """The metrics of the finished run in out_dir (metrics.json, and no unfinished backup), else None."""
    path = os.path.join(out_dir, "metrics.json")
    if not os.path.isfile(path) or os.path.isdir(os.path.join(out_dir, "backup")):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}                       # written by something else, or cut short: still not to be trained over


# What a finished run may be asked again with and still be the same run: where it lives, where
# the demo set and the QIDER stand-in are drawn, and the switch below.
FINISHED_MAY_CHANGE = ("out_dir", "demo_dir", "qider_dir", "fresh")


def same_finished_run(p, metrics):
    """A finished run is never trained over silently: the same command gets its metrics back (there is
    nothing to train), another command stops in one line naming what differs and the two ways on."""
    stored, differ = settings_differ(p, FINISHED_MAY_CHANGE)
    if not stored or not metrics:
        differ = [f"{p['out_dir']}'s model.keras or metrics.json does not say which settings made it"]
    if not differ:
        return metrics
    more = f"; and {len(differ) - 3} more" if len(differ) > 3 else ""
    sys.exit(f"error: {p['out_dir']} holds a finished run of other settings ({'; '.join(differ[:3])}{more}); "
             f"give another --out_dir, or --fresh=True to train afresh there (that run's files are first moved "
             f"into {p['out_dir']}/earlier_<date-time>/)")


# The files a run writes in out_dir: --fresh=True moves an earlier run's aside, and only these.
RUN_FILES = ("model.keras", "metrics.json", "history.csv", "splits.json", "machines.txt", "backup", "teacher.npz",
             "loss.png", "accuracy.png", "class_distribution.png", "augmented_examples.png", "confusion_matrix.png",
             "per_class.png")


def move_earlier_run(out_dir):
    """Move an earlier run's files into out_dir/earlier_<date-time>/, so that nothing of it mixes with
    the new run's and nothing of it is lost."""
    present = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if not present:
        return
    aside = os.path.join(out_dir, "earlier_" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(aside, exist_ok=True)
    for name in present:
        os.replace(os.path.join(out_dir, name), os.path.join(aside, name))
    print(f"--fresh=True: the earlier run's files are moved into {aside}/")


LOCK_FILE = "run.lock"


def claim_out_dir(out_dir):
    """One run per out_dir: a second run on the folder of one that is still running would
    write over its model and backup, so it stops at once, naming the holder. The lock file
    holds the run's pid, host and start time, and goes when the run's process ends; one left
    by a process that is gone (killed) is taken over, and that is said. A folder this run made
    goes too when the run ends with nothing in it (refused on its data)."""
    made = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    claim(os.path.join(out_dir, LOCK_FILE), out_dir, "--out_dir")
    atexit.register(release_out_dir, out_dir, made)


def claim(path, what, option):
    """Take the lock file at path for this process, or exit in one line naming the process that
    holds it (`what` is the folder or file it guards, `option` the option that names another).
    A lock left by a process that is gone is taken over, and that is said. Released at exit."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = _lock_holder(path)
            if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
                return                                  # ours: main called again in one process
            if holder.get("host", socket.gethostname()) != socket.gethostname():
                sys.exit(f"error: {what} is in use by the run of pid {holder.get('pid')} on {holder['host']}, "
                         f"started {holder.get('started')}; this machine cannot tell whether it still runs. Give "
                         f"another {option}, or remove {path} if it does not")
            if _alive(holder.get("pid")):
                sys.exit(f"error: {what} is in use by the run of pid {holder['pid']}, started "
                         f"{holder.get('started')}, still running; wait for it to end, or give another {option}")
            print(f"note: {path}: left by pid {holder.get('pid')} (started {holder.get('started')}), which is no "
                  f"longer running; taking it over")
            os.remove(path)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
    atexit.register(release, path)


def release(path):
    """Remove this process's lock file at path (another process's is left alone)."""
    if os.path.exists(path) and _lock_holder(path).get("pid") == os.getpid():
        os.remove(path)


def release_out_dir(out_dir, made):
    """At the end of the run's process: remove its lock, and the folder if it made it and left it empty."""
    release(os.path.join(out_dir, LOCK_FILE))
    if made and os.path.isdir(out_dir) and not os.listdir(out_dir):
        os.rmdir(out_dir)


def _lock_holder(path):
    """What a lock file says; {} for one that cannot be read (written half by a killed run)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _alive(pid):
    """Whether a process of this pid runs on this machine."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # someone else's process: alive
        return True
    return True
