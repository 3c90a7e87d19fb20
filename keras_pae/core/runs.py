"""Run directories: a run trains in `<out>.incomplete/` and is published as `<out>/`.

The staging directory holds Keras `BackupAndRestore` state, the `CSVLogger`
history and the best weights while `fit` runs; it is renamed only when
everything the run writes is there, so a crash never leaves a directory that
looks finished, and a rerun resumes it.
"""

import concurrent.futures
import csv
import functools
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
# Keras's own weights writer, with the `objects_to_skip` that `Model.save_weights` lacks.
from keras.src.saving import saving_lib

HISTORY_FILE = "history.csv"
FIT_DONE_FILE = "fit.done"
# The best-validation weights, kept by `BestWeights`; the finished run keeps them.
WEIGHTS_FILE = "autoencoder.weights.h5"
INCOMPLETE_SUFFIX = ".incomplete"
BACKUP_DIR = "backup"
# The trained encoder as a Keras model (images in [0, 1] -> embedding), to serve
# or fine-tune: every paper family's run writes it, `keras_pae.load_encoder` reads it.
ENCODER_FILE = "encoder.keras"


def save_model_weights(model, path):
    """Writes `model`'s weights to the `.weights.h5` file `path`, without its optimizer's state.

    The optimizer's moments would triple an Adam-trained file and are of no
    use once training is over. Written under another name first, so `path`
    is never half written.
    """
    write_weights(weights_snapshot(model), path)


def weights_snapshot(model):
    """What `save_model_weights` would write now, as values that training no longer changes.

    Keras's own weights writer walks the model into a recorder instead of a
    file: the same groups, attributes and datasets, in the same order, with
    each variable's value read as `_read` reads it.
    """
    if not model.built:
        raise ValueError("Cannot save the weights of a model that is not built: call it on a batch first.")
    recorder = _WeightsRecorder()
    visited = {id(model.optimizer)} if getattr(model, "optimizer", None) is not None else set()
    saving_lib._save_state(model, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=visited)
    return recorder.entries


def write_weights(snapshot, path):
    """Writes a `weights_snapshot` as the `.weights.h5` file `path` (via a partial file)."""
    partial = path[: -len(".weights.h5")] + ".partial.weights.h5"
    store = saving_lib.H5IOStore(partial, mode="w")
    try:
        for inner_path, metadata, values in snapshot:
            entry = store.make(inner_path, metadata=metadata)
            for key, value in values.items():
                entry[key] = np.asarray(value)
    finally:
        store.close()
    os.replace(partial, path)


class _WeightsRecorder(saving_lib.H5IOStore):
    # Keras's `_save_state` accepts only its own store types; this one keeps
    # each `make` (a group and its metadata) and the values set on it.

    def __init__(self):  # no file: nothing to open
        self.mode = "w"
        self.entries = []

    def __bool__(self):
        return True

    def make(self, path, metadata=None):
        self.entries.append((path, metadata, {}))
        return self

    def __setitem__(self, key, value):
        self.entries[-1][2][key] = _read(value)

    def close(self):
        pass


def _read(variable):
    # The value now, without copying it: a read shares the variable's buffer,
    # and TensorFlow copies a buffer a read still holds before an op (Adam's
    # update) changes it in place. So the value stays this moment's while
    # training goes on, and the copy, if any, is made by the training step's
    # own threads instead of stalling the epoch's end.
    return tf.convert_to_tensor(variable)  # `keras.ops.convert_to_tensor` returns the variable itself


class BackgroundWriter:
    """Writes a fit's checkpoint files on one thread, in the order they were given, while training goes on.

    An I-F-FP resume state is 247 MB and its best weights 82 MB; written in the
    training thread they stall every epoch end. Each write gets the values read
    at the epoch's end (see `_read`), so training may change the variables
    meanwhile. The order keeps the resume invariants: an epoch's
    state, then its best weights, then its history row. A write that fails
    cancels every later one (the history never shows an epoch whose state is
    missing) and its error is raised by the next `submit` or by `wait`.
    """

    def __init__(self):
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="keras_pae-checkpoints")
        self._futures = []
        self._error = None

    def submit(self, write, *args):
        """Queues `write(*args)`, after raising the error of a failed earlier write."""
        self._raise_error()
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._executor.submit(self._run, write, *args))

    def wait(self, raise_error=True):
        """Returns when every queued write is done; raises the error of one that failed."""
        concurrent.futures.wait(self._futures)
        self._futures = []
        if raise_error:
            self._raise_error()

    def close(self, raise_error=True):
        """`wait`, then ends the thread."""
        try:
            self.wait(raise_error)
        finally:
            self._executor.shutdown()

    def _run(self, write, *args):
        if self._error is None:
            try:
                write(*args)
            except Exception as error:  # raised in the training thread
                self._error = error

    def _raise_error(self):
        if self._error is not None:
            raise self._error


def load_model_weights(model, path):
    """Loads weights `save_model_weights` wrote, leaving a compiled model's optimizer as it is."""
    skip = [model.optimizer] if getattr(model, "optimizer", None) is not None else None
    saving_lib.load_weights_only(model, path, objects_to_skip=skip)


class BestWeights(keras.callbacks.Callback):
    """Keeps the model's weights (no optimizer state) of the epoch with the lowest `monitor`.

    Args:
        path: the `.weights.h5` file (see `save_model_weights`).
        monitor: the logged value to minimise.
        initial_best: the best value of epochs before a resume; only a lower
            one is saved.
        writer: the `BackgroundWriter` that writes the file.
    """

    def __init__(self, path, writer, monitor="val_loss", initial_best=None):
        super().__init__()
        self.path = path
        self.writer = writer
        self.monitor = monitor
        self.best = initial_best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        if self.best is None or value < self.best:
            self.best = float(value)
            self.writer.submit(write_weights, weights_snapshot(self.model), self.path)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose state file is always whole: the last finished epoch's, or the one before.

    Keras's callback writes the weights and the optimizer's state (with Adam, three times
    the model's size: 244 MB for I-F-FP) into its file in place, and its epoch number into
    a second file, so a kill during the write leaves a state it cannot load, or weights
    of one epoch under the number of another. This one writes both into one `.npz` file
    under another name and moves it into place when complete.

    Through a `BackgroundWriter`, the write runs while the next epoch trains, ahead
    of the epoch's best weights and history row, so an epoch the history shows is
    always one a resume continues from. The last epoch of a fit writes none (for
    I-F-FP, 244 MB that `fit` deleted right after): a fit stopped after its last
    row is finished.

    Args:
        backup_dir: the directory of the state; deleted when `fit` ends normally.
        writer: the `BackgroundWriter` that writes the state.
    """

    STATE_FILE = "state.npz"

    def __init__(self, backup_dir, writer):
        super().__init__(backup_dir)
        self.state_path = os.path.join(backup_dir, self.STATE_FILE)
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.params["epochs"]:
            # The last epoch: `fit` deletes the state as it ends, and if it stops
            # first, `fit_resumable` finds every epoch in the history.
            self._current_epoch = epoch + 1
            return
        super().on_epoch_end(epoch, logs)

    def _state_variables(self):
        # `fit_resumable` builds the optimizer before `fit`, in the model's distribution strategy.
        optimizer = self.model.optimizer
        return list(self.model.variables) + (list(optimizer.variables) if optimizer is not None else [])

    def _load_model(self):
        if not self.model.built:
            raise ValueError("AtomicBackupAndRestore needs a built model: call it on a batch before fit.")
        if not os.path.isfile(self.state_path):
            return
        variables = self._state_variables()
        with np.load(self.state_path) as state:
            # By position, as Keras's weights files are: names carry per-process suffixes (`dense_1`).
            shapes = [tuple(state[f"v{i}"].shape) for i in range(len(state.files) - 1)]
            if shapes != [tuple(v.shape) for v in variables]:
                raise ValueError(f"{self.state_path} holds the state of another model; start over with --overwrite.")
            for i, variable in enumerate(variables):
                variable.assign(state[f"v{i}"])
            self.model._initial_epoch = int(state["epoch"])

    def on_train_end(self, logs=None):
        self.writer.wait()  # before Keras deletes the directory a queued state would recreate
        super().on_train_end(logs)

    def _save_model(self):
        variables = self._state_variables()
        values = {f"v{i}": _read(v) for i, v in enumerate(variables)}
        values["epoch"] = np.array(self._current_epoch)
        self.writer.submit(self._write_state, values)

    def _write_state(self, values):
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = self.state_path + ".partial"
        with open(partial, "wb") as f:
            np.savez(f, **{name: np.asarray(value) for name, value in values.items()})
        os.replace(partial, self.state_path)


class QueuedCSVLogger(keras.callbacks.CSVLogger):
    """`CSVLogger` (appending) whose rows are written by a `BackgroundWriter`, after the epoch's checkpoints.

    Args:
        filename: the CSV file.
        writer: the `BackgroundWriter` the epoch's state and best weights go through.
    """

    def __init__(self, filename, writer):
        super().__init__(filename, append=True)
        self.background = writer  # `writer` is CSVLogger's csv.DictWriter

    def on_epoch_end(self, epoch, logs=None):
        row = functools.partial(super().on_epoch_end, epoch, dict(logs or {}))
        self.background.submit(row)

    def on_train_end(self, logs=None):
        self.background.wait()
        super().on_train_end(logs)


class EpochTimer(keras.callbacks.Callback):
    """Adds `train_seconds` (the epoch's training time, without validation) to the logs.

    Training time per epoch is one of the feature-prediction paper's results.
    Place it before `CSVLogger` so the logger records it.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._seconds = None

    def on_test_begin(self, logs=None):
        if getattr(self, "_seconds", 0) is None:
            self._seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = self._seconds or time.perf_counter() - self._start


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that carries on from the history of an interrupted run.

    Args:
        history: rows of the earlier epochs (dicts with the monitored key).
        **kwargs: passed to `EarlyStopping`.
    """

    def __init__(self, history=(), **kwargs):
        super().__init__(**kwargs)
        self.earlier = [float(row[self.monitor]) for row in history]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier:
            best = int(np.argmin(self.earlier))
            self.best = self.earlier[best]
            self.best_epoch = best
            self.wait = len(self.earlier) - 1 - best


def read_history(path):
    """Rows of a `CSVLogger` file as dicts of floats, one per epoch (last wins).

    Without validation data `CSVLogger` still writes `val_*` columns, as "NA":
    they are dropped.
    """
    if not os.path.isfile(path):
        return []
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v not in ("", "NA")}
            values["epoch"] = int(values["epoch"])
            rows[values["epoch"]] = values
    return [rows[epoch] for epoch in sorted(rows)]


def fit_resumable(
    model, train_data, validation_data, staging, epochs, best_weights=None, patience=None, verbose=0,
    callbacks=(),
):
    """`model.fit` inside a staging directory, resumable after a crash.

    Keras `BackupAndRestore` state and a `CSVLogger` history (with
    `train_seconds`) live in `staging`, written with the best weights by one
    `BackgroundWriter` while the next epoch trains; when `fit` ends (or is
    interrupted) every queued write lands first. A finished fit then writes a
    `fit.done` marker (BackupAndRestore deletes its state then), so calling this again
    does not refit. Shared by every paper family's run.

    Args:
        model: a compiled, built model.
        train_data, validation_data: datasets passed to `fit`.
        staging: the run's working directory (created if missing).
        epochs: total epochs, counting the ones an interrupted fit finished.
        best_weights: path where `BestWeights` keeps the weights of the
            lowest `val_loss`, without optimizer state; None keeps none.
        patience: early-stopping patience on `val_loss` (carried over a
            resume); None trains every epoch.
        verbose: `fit`'s verbosity.
        callbacks: further callbacks, after the logger.

    Returns:
        The history rows (see `read_history`).
    """
    os.makedirs(staging, exist_ok=True)
    history_path = os.path.join(staging, HISTORY_FILE)
    fit_done = os.path.join(staging, FIT_DONE_FILE)
    if os.path.exists(fit_done):
        return read_history(history_path)
    earlier = read_history(history_path)
    if len(earlier) >= epochs:
        # Stopped after the last epoch's row: the row comes after the epoch's
        # best weights, so nothing is missing, and no resume state was kept.
        open(fit_done, "w").close()
        return earlier
    # One thread writes the epochs' state, best weights and history rows, in that order.
    writer = BackgroundWriter()
    all_callbacks = [AtomicBackupAndRestore(os.path.join(staging, BACKUP_DIR), writer), EpochTimer()]
    if best_weights is not None:
        # Ahead of the history: an epoch the history shows has its best weights on disk.
        earlier_best = min((r["val_loss"] for r in earlier if np.isfinite(r["val_loss"])), default=None)
        all_callbacks.append(BestWeights(best_weights, writer, "val_loss", earlier_best))
    all_callbacks += [QueuedCSVLogger(history_path, writer), *callbacks]
    if patience is not None:
        all_callbacks.append(ResumableEarlyStopping(history=earlier, monitor="val_loss", patience=patience))
    all_callbacks.append(keras.callbacks.TerminateOnNaN())
    if earlier and verbose:
        print(f"Resuming {staging} after epoch {len(earlier)}.")
    if model.optimizer is not None and not model.optimizer.built:
        # Otherwise the first apply builds it on the weights that got a
        # gradient, and a resume on every trainable weight: for a plain
        # autoencoder (no gradient to its logvar head) the two differ, and
        # Keras then skips loading the saved Adam state.
        with model.distribute_strategy.scope():  # a MirroredStrategy's variables are made in its scope
            model.optimizer.build(model.trainable_variables)
    try:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            shuffle=False,  # the dataset reshuffles itself, seeded
            callbacks=all_callbacks,
            verbose=verbose,
        )
    except BaseException:
        # Interrupted: the queued writes still land (each whole, in order), so
        # a resume in this process reads them; the interruption is what is raised.
        writer.close(raise_error=False)
        raise
    writer.close()
    # BackupAndRestore has deleted its state: a resume must not refit.
    open(fit_done, "w").close()
    return read_history(history_path)


def prepare_directories(config, resume, overwrite):
    """The finished and staging directories of `config.output_dir`, checked.

    Refuses to replace a finished run without `overwrite`, and to resume one
    started with other settings (its `config.json` in the staging directory,
    read with `type(config).load`).

    Returns:
        `(out, staging)`, absolute paths.
    """
    out = os.path.abspath(config.output_dir)
    staging = out + INCOMPLETE_SUFFIX
    if os.path.exists(out) and not overwrite:
        raise ValueError(
            f"{out} already holds a finished run; pass --overwrite to replace it or choose another --out."
        )
    if os.path.exists(staging):
        if resume:
            saved = type(config).load(os.path.join(staging, "config.json"))
            differing = sorted(
                k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v
            )
            if differing:
                raise ValueError(
                    f"Cannot resume {staging}: it was started with different {', '.join(differing)}; "
                    "use the same flags or --overwrite."
                )
        elif overwrite:
            shutil.rmtree(staging)
        else:
            raise ValueError(
                f"{staging} holds an unfinished run; pass --resume to continue it or --overwrite to start over."
            )
    return out, staging


def publish(staging, out):
    """Moves a finished run into place, replacing an older one last."""
    if os.path.exists(out):
        old = out + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)


def save_encoder(encoder, directory):
    """Writes `encoder` (images in [0, 1] -> embedding) as `directory/encoder.keras`; returns the path.

    A `.keras` file keeps the architecture, the weights and which layers are
    trainable, so `keras_pae.load_encoder` gives a model to fine-tune, not
    only to serve (the SavedModel export's use).
    """
    path = os.path.join(directory, ENCODER_FILE)
    encoder.save(path)
    return path
