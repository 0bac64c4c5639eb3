"""The callbacks that keep a training run safe and on schedule: the best epoch saved,
the learning-rate schedule, the averaged weights validated, each epoch timed against a
budget, the backup written whole, Ctrl-C honoured between two batches, and the model's
random layers seeded by the epoch, so that a resumed run is the run that would have been.

cnn_model.train puts them together; each one is a plain Keras callback.
"""
import math
import os
import signal
import time

import keras
import numpy as np

import cnn_storage


class SaveBest(keras.callbacks.Callback):
    """Save model.keras (atomically, with class names) whenever val_accuracy improves;
    with no validation faces (validation_split 0), after every epoch: the last one is kept."""

    def __init__(self, path, classes, params, best=-1.0):
        super().__init__()
        # Not self.params: Keras sets that attribute on every callback.
        self.path, self.classes, self.run_params, self.best = path, classes, params, best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(logs.get("loss", 0.0)):     # a diverged epoch is never kept
            return
        if "val_accuracy" not in logs or logs["val_accuracy"] > self.best:    # no validation: the newest epoch
            self.best = logs.get("val_accuracy", self.best)
            # With --ema the score is the averaged weights' (AveragedValidation), so they are what is saved.
            swap_averaged_weights(self.model)
            try:
                cnn_storage.save_model(self.model, self.path, self.classes, self.run_params)
            finally:
                swap_averaged_weights(self.model)


def swap_averaged_weights(model):
    """Swap the model's trained weights with the optimizer's moving average of them (--ema);
    a second call swaps them back. Does nothing when the optimizer keeps no average.

    Keras's own SwapEMAWeights callback swaps for validation but, to save the average
    as well, would leave it in the model for the backup: a resumed run would then go on
    training from the average. Here the trained weights are always back in the model
    before the backup is written. (The average lives in private optimizer attributes,
    the ones SwapEMAWeights uses.)
    """
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)   # LossScaleOptimizer wraps it
    if not getattr(optimizer, "use_ema", False):
        return
    for weight, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
        trained = keras.ops.convert_to_numpy(weight)
        weight.assign(average)
        average.assign(trained)


class WholeSetLoss(keras.callbacks.Callback):
    """The epoch's loss and val_loss over the real faces alone, in a run of several processes.

    There every batch is a whole global batch of B faces, the last one filled up with faces
    weighted 0, and Keras averages each batch's loss over B and the batches by B: the epoch's
    figure is the sum over the real faces / (steps x B). Times steps x B / n (`shares`, one for
    training, one for validation) it is the mean over the n real faces, as one process reports it.
    """

    def __init__(self, train_share, val_share):
        super().__init__()
        self.shares = {"loss": train_share, "val_loss": val_share}

    def on_epoch_end(self, epoch, logs=None):
        for name, share in self.shares.items():
            if logs is not None and name in logs:
                logs[name] = float(logs[name]) * share


class AveragedValidation(keras.callbacks.Callback):
    """Validate the averaged weights (--ema) instead of the trained ones: val_accuracy,
    and so the choice of the best epoch, is the average's."""

    def on_test_begin(self, logs=None):
        swap_averaged_weights(self.model)

    on_test_end = on_test_begin


class EpochTime(keras.callbacks.Callback):
    """Put each epoch's duration into its history row ("seconds"): summed, they give
    a resumed run's training time, which no single process saw whole. The epochs
    timed before a resume (past_seconds) count towards the time budget too."""

    def __init__(self, past_seconds=()):
        super().__init__()
        self.seconds = list(past_seconds)

    def epochs_that_fit(self, epochs, max_seconds):
        """How many epochs in all fit max_seconds of training, judged by the mean
        epoch so far; `epochs` when there is no budget or no epoch timed yet."""
        if not max_seconds or not self.seconds:
            return epochs
        mean = sum(self.seconds) / len(self.seconds)
        return max(1, min(epochs, int(max_seconds / mean)))

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.time() - self.started, 3))
        if logs is not None:
            logs["seconds"] = self.seconds[-1]


class TimeBudget(keras.callbacks.Callback):
    """Stop before an epoch that would not finish within max_minutes of training,
    counting the epochs before a resume. The next epoch is assumed to take as
    long as the mean one so far."""

    def __init__(self, clock, max_minutes):
        super().__init__()
        self.clock, self.max_seconds = clock, max_minutes * 60

    def on_epoch_end(self, epoch, logs=None):
        # The same count the cosine schedule anneals over, so the two never disagree.
        if self.max_seconds and len(self.clock.seconds) >= self.clock.epochs_that_fit(math.inf, self.max_seconds):
            print(f"time budget of {self.max_seconds / 60:g} minutes reached after epoch {epoch + 1}")
            self.model.stop_training = True


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, with each backup file replaced whole.

    Keras writes latest.weights.h5 in place: a SIGKILL that lands during that
    write (our resume test caught one) leaves a half-written file, and the next
    start fails to read it. Here the weights are staged elsewhere, then written
    whole under a temporary name that is renamed (cnn_storage.staged_write), and
    the epoch count is written after them the same way, so a kill or a full disk
    leaves the last finished epoch's backup as it was.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        # Staged, then written whole (a full disk: one clean OSError, nothing half-written); Keras
        # wants the .weights.h5 suffix.
        cnn_storage.staged_write(lambda staged: self.model.save_weights(staged, overwrite=True), self._weights_path,
                                 ".weights.h5", self.model)
        cnn_storage.write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class CtrlC(keras.callbacks.Callback):
    """Ctrl-C, or SIGTERM (what SLURM, Kubernetes and `timeout` send before a kill), stops
    training between two batches, never in the middle of a save.

    Python raises KeyboardInterrupt wherever the signal lands, and Keras's model
    saving has a bare `except:` that can swallow it: one CI run trained on to the
    end after its Ctrl-C. Here the signal only sets a flag, and the interrupt is
    raised from this callback, after the batch (or the epoch's saves) finished,
    naming the signal. A second one interrupts (or terminates) at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.pressed = ""

    def press(self, signum, frame):
        self.pressed = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def on_train_batch_end(self, batch, logs=None):
        if self.pressed:
            raise KeyboardInterrupt(self.pressed)

    on_test_batch_end = on_epoch_end = on_train_batch_end


class EpochSeeds(keras.callbacks.Callback):
    """At the start of epoch e, every random layer of the model (dropout, noise) has its
    seed state set to [its seed, e * 2**20], so its draws are a function of (seed, epoch,
    batch). Keras's backup keeps the weights and the optimizer but not these states: a
    restarted run would otherwise drop out the neurons the run's first epochs dropped."""

    def on_epoch_begin(self, epoch, logs=None):
        for state in self.model.non_trainable_variables:
            if state.name == "seed_generator_state":
                seed = int(keras.ops.convert_to_numpy(state.value)[0])
                state.assign(np.array([seed, (epoch << 20) & 0xFFFFFFFF], dtype=state.dtype))


class Plateau(keras.callbacks.ReduceLROnPlateau):
    """Keras's ReduceLROnPlateau on val_loss (or val_accuracy, rising) that, in a resumed run,
    first replays the epochs done before (their monitored figure and rate, from history.csv):
    its best figure and its count of epochs without improvement then stand where the unbroken
    run's stood, and the rate is cut at the epoch it would have been. (The rate itself is
    restored with the optimizer.)"""

    def __init__(self, past_rows=(), monitor="val_loss", **kwargs):
        # The report's mode "auto" in its Keras 2: "max" for a name with "acc" in it, else "min" (Keras 3's
        # "auto" asks the compiled model instead, which a resumed run has not built yet).
        mode = "max" if "acc" in monitor else "min"
        super().__init__(monitor=monitor, mode=mode, **kwargs)     # no cooldown, as Keras's default
        self.past_rows = [r for r in past_rows if r.get(monitor, "") not in ("", "NA")]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._set_monitor_op()
        for row in self.past_rows:          # Keras's own steps of on_epoch_end, the cut aside
            figure = float(row[self.monitor])
            if self._is_improvement(figure, self.best):
                self.best, self.wait = figure, 0
            else:
                self.wait += 1
                if self.wait >= self.patience and float(row["learning_rate"]) > np.float32(self.min_lr):
                    self.wait = 0           # the rate was cut after this epoch


def learning_rate_callback(p, clock=None, past_rows=()):
    """"plateau": divide the rate when lr_monitor stalls (the FER-2013 report's "best" recipe);
    past_rows, the history of the epochs before a resume, lets it go on where it stood.
    "constant": learning_rate throughout (the reports' other networks).
    "cosine": anneal from learning_rate to min_learning_rate over `epochs`, by
    epoch number, so a resumed run and a rerun with the same seed get the same rates.
    With a time budget (max_minutes) and the run's EpochTime clock, over the
    epochs that fit the budget instead, when fewer do: on a slower or busier
    machine than planned, the run still ends annealed rather than being stopped
    on its way down. The rates then depend on the machine's speed.
    """
    if p["lr_schedule"] == "plateau":
        return Plateau(past_rows, monitor=p["lr_monitor"], factor=p["lr_factor"],
                       patience=p["lr_patience"], min_lr=p["min_learning_rate"])
    if p["lr_schedule"] == "constant":
        # A scheduler all the same, so that history.csv logs the rate of every epoch as under the others.
        return keras.callbacks.LearningRateScheduler(lambda epoch: p["learning_rate"])
    if p["lr_schedule"] == "cosine":
        top, floor = p["learning_rate"], p["min_learning_rate"]

        def rate(epoch):
            epochs = clock.epochs_that_fit(p["epochs"], p["max_minutes"] * 60) if clock else p["epochs"]
            last = max(epochs - 1, 1)
            return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * min(epoch / last, 1.0)))
        return keras.callbacks.LearningRateScheduler(rate)
    raise ValueError(f"unknown lr_schedule {p['lr_schedule']!r}; use 'plateau', 'constant' or 'cosine'")
