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
import tempfile
import time

import cnn_storage


def diverged_run(p, epoch):
    """The one line that ends a run whose loss became NaN or infinite (Keras's TerminateOnNaN stopped
    it): nothing of it is evaluated or reported, and its files are moved into
    out_dir/diverged_<date-time>/, so that the same folder trains afresh with a smaller learning rate
    (left in place, its finished backup would be "evaluated" by the next command, whatever its settings)."""
    kept = os.path.exists(os.path.join(p["out_dir"], "model.keras"))
    aside = move_earlier_run(p["out_dir"], "diverged_")
    holds = (f"its best epoch before that is kept in {aside}/model.keras" if kept else "no model of this run was saved")
    return (f"error: the training loss became NaN or infinite in epoch {epoch} (--learning_rate={p['learning_rate']} "
            f"may be too high); the run stopped and reports nothing: {holds}; its files (history.csv shows the epochs) "
            f"are moved into {aside}/, so {p['out_dir']} trains afresh: run again with a smaller --learning_rate")


# What may change when an unfinished run is resumed: where it lives, its time budget, and how many
# epochs it runs to (one more epoch resumes and trains just that one). An "auto" value is stored
# as what it became on the machine (precision, strategy), so it is not compared either.
RESUME_MAY_CHANGE = ("out_dir", "max_minutes", "epochs", "demo_dir", "qider_dir", "fresh")


def check_resume(p):
    """An unfinished run in out_dir is resumed only by its own command: other settings would load its
    backup into another network, or go on with other data, so the run stops here in one line naming
    what differs (the folder is left as it was, for its own command to resume). So is a run whose
    training finished and whose evaluation did not (killed while it scored its model): its own
    command scores the model it trained; another would score that model as its own. --fresh=True
    moves either aside instead (check_before_decoding in cnn_run.py)."""
    if p["fresh"]:
        return                  # resumed when resumable(p), else moved aside: cnn_run reads the backup then
    run = backed_up_run(p)
    if run is None:
        return
    done, trained, _, differ = run
    afresh = (f"or --fresh=True to train afresh there (its files are first moved into {p['out_dir']}/earlier_<date-time>/), "
              f"or give another --out_dir")
    if trained and differ:
        sys.exit(f"error: {p['out_dir']} holds a run whose training finished ({done} epochs) and whose evaluation did "
                 f"not, of other settings: {'; '.join(differ)}. Run its own command to evaluate it, {afresh}")
    if trained:
        return
    if differ:
        sys.exit(f"error: {p['out_dir']} holds an unfinished run ({done} epochs done) of other settings: "
                 f"{'; '.join(differ)}. Run its own command to resume it, {afresh}")
    if done > p["epochs"]:
        sys.exit(f"error: {p['out_dir']} holds an unfinished run that has done {done} epochs, more than "
                 f"--epochs={p['epochs']}; give --epochs={done} or more to resume it, {afresh}")


def resumable(p):
    """Whether out_dir holds this very command's unfinished run (or its training, finished and not yet
    evaluated): --fresh=True then resumes it, as the same command without it does, rather than moving
    it aside (a --fresh=True run that was killed is resumed by its own command)."""
    run = backed_up_run(p)
    return run is not None and bool(run[2]) and not run[3]


def backed_up_run(p):
    """The run whose backup out_dir holds, beside this command: (its epochs, whether its training
    finished, its stored settings, each setting that differs in words), or None when there is none to
    resume. A finished training's settings are in backup/finished.json; an unfinished run's, in its
    model.keras, which may change on a resume by RESUME_MAY_CHANGE."""
    backup = os.path.join(p["out_dir"], "backup")
    if not os.path.isdir(backup):
        return None
    trained = cnn_storage.read_json(os.path.join(backup, "finished.json"))
    if trained is not None:
        return (trained.get("epochs", "?"), True, *settings_differ(p, FINISHED_MAY_CHANGE, trained.get("params")))
    import cnn_model            # only now: Keras is slow to load, and a new run needs none of this
    done = cnn_model.finished_epochs(p["out_dir"])
    if not done:
        return None
    return (done, False, *settings_differ(p, RESUME_MAY_CHANGE))


def settings_differ(p, may_change, stored=None):
    """The parameters stored with out_dir's model.keras (or `stored`, when given), and each of them that
    differs from this command's, in words ("name X there, Y here"), leaving out may_change and "auto" values."""
    if not stored:
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


# The files a run writes in out_dir: --fresh=True moves an earlier run's aside, and only these, with
# what cnn_eval.py writes there when it scores the run's model (eval.json, its sheet, log, frames
# files, CSVs and timelines, and the annotated copies): left beside a new model, they would describe it.
RUN_FILES = ("model.keras", "metrics.json", "history.csv", "splits.json", "machines.txt", "backup", "teacher.npz",
             "loss.png", "accuracy.png", "class_distribution.png", "augmented_examples.png", "confusion_matrix.png",
             "per_class.png", "eval.json", "eval.jsonl", "eval.png", "timeline.png", "annotated")


def run_files(out_dir):
    """The names in out_dir that an earlier run, or a scoring of its model, wrote."""
    scoring = lambda name: (name.startswith("eval_") and name.endswith(("_frames.jsonl", "_faces.csv"))
                            or name.endswith("_timeline.png"))
    return sorted(name for name in os.listdir(out_dir) if name in RUN_FILES or scoring(name))


def move_earlier_run(out_dir, prefix="earlier_"):
    """Move an earlier run's files into out_dir/<prefix><date-time>/, so that nothing of it mixes with
    the new run's and nothing of it is lost; that folder, or None when there was nothing to move."""
    present = run_files(out_dir) if os.path.isdir(out_dir) else []
    if not present:
        return None
    base = aside = os.path.join(out_dir, prefix + time.strftime("%Y%m%d-%H%M%S"))
    k = 2
    while os.path.exists(aside):            # two in one second
        aside, k = f"{base}~{k}", k + 1
    os.makedirs(aside)
    for name in present:
        os.replace(os.path.join(out_dir, name), os.path.join(aside, name))
    if prefix == "earlier_":
        print(f"--fresh=True: the earlier run's files are moved into {aside}/")
    return aside


LOCK_FILE = "run.lock"


def claim_out_dir(out_dir):
    """One run per out_dir: a second run on the folder of one that is still running would
    write over its model and backup, so it stops at once, naming the holder. The lock file
    holds the run's pid, host and start time, and goes when the run's process ends; one left
    by a process that is gone (killed) is taken over, and that is said. A folder this run made
    goes too when the run ends with nothing in it (refused on its data)."""
    made = make_folder(out_dir, f"--out_dir={out_dir}")
    claim(os.path.join(out_dir, LOCK_FILE), out_dir, "--out_dir")
    atexit.register(release_out_dir, out_dir, made)


def make_folder(path, named):
    """Make the folder that a run or a scoring writes into (named: the option that gave it, as typed),
    and check that a file can be written there, or exit in one line naming it: empty, a file, below
    a file, or a place that takes no files (/proc, a read-only disk). True when this call made it."""
    if not path:
        sys.exit(f"error: {named}: empty; expected a folder")
    if os.path.exists(path) and not os.path.isdir(path):
        sys.exit(f"error: {named}: {path} is a file where a folder is expected")
    made = not os.path.isdir(path)
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as error:
        sys.exit(f"error: {named}: {path} cannot be written ({error.strerror or error})")
    return made


def claim(path, what, option):
    """Take the lock file at path for this process, or exit in one line naming the process that
    holds it (`what` is the folder or file it guards, `option` the option that names another).
    A lock left by a process that is gone is taken over, and that is said. Released at exit."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except (IsADirectoryError, NotADirectoryError, PermissionError) as error:
            sys.exit(f"error: {option}: {path} cannot be written ({error.strerror})")
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
