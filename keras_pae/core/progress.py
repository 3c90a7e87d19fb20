"""Progress of long phases that are not one `fit`: a bar on a terminal, a few lines elsewhere."""

import sys
import time

import keras


class Progress:
    """Counts `total` steps of the phase `label`.

    On a terminal it is Keras's progress bar; in a log (not a terminal) one
    line at every tenth of the way, so a long phase shows it is alive
    without flooding the log.

    Args:
        total: steps in the phase.
        label: what the steps are, e.g. "predictor epochs".
        enabled: False shows nothing.
    """

    def __init__(self, total, label, enabled=True):
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.start = time.perf_counter()
        self.shown = 0
        self.bar = keras.utils.Progbar(self.total, unit_name="step") if enabled and sys.stdout.isatty() else None
        if enabled and self.bar is None:
            print(f"{label}: 0/{self.total}", flush=True)

    def update(self, done, values=None):
        """Records that `done` steps are finished; `values` are (name, number) pairs to show."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done, values=values)
            return
        tenth = min(10, done * 10 // self.total)
        if tenth > self.shown:
            self.shown = tenth
            extra = "".join(f", {name} {value:.4g}" for name, value in values or ())
            print(f"{self.label}: {done}/{self.total} ({time.perf_counter() - self.start:.0f} s{extra})", flush=True)

    def finish(self, done, values=None, note=""):
        """Ends the phase at `done` steps (fewer than `total` when it stopped early)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done, values=values, finalize=True)
        if note or self.bar is None:
            print(f"{self.label}: {done}/{self.total} in {time.perf_counter() - self.start:.0f} s{note}", flush=True)


class EpochProgress(keras.callbacks.Callback):
    """`Progress` over the epochs of a long `fit` (run with `verbose=0`), showing `monitor`.

    Args:
        epochs: the maximum epochs.
        label: what is training.
        monitor: the logged value to show.
    """

    def __init__(self, epochs, label, monitor="val_loss"):
        super().__init__()
        self.epochs = epochs
        self.label = label
        self.monitor = monitor

    def on_train_begin(self, logs=None):
        self.progress = Progress(self.epochs, self.label)
        self.done = 0

    def on_epoch_end(self, epoch, logs=None):
        self.done = epoch + 1
        value = (logs or {}).get(self.monitor)
        self.progress.update(self.done, None if value is None else [(self.monitor, float(value))])

    def on_train_end(self, logs=None):
        self.progress.finish(self.done, note=" (stopped early)" if self.done < self.epochs else "")
