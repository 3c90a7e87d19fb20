import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_pae import PROCEDURES
from keras_pae.core import optimizers
from keras_pae.perceptual import report
from keras_pae.perceptual.config import TrainConfig
from keras_pae.core.runs import read_history
from keras_pae.perceptual.training import load_run, train
from tests.helpers import TF_STARTUP_LOG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small but real: 6 LunarLander rollouts of 40 steps, 2 held out.
SMALL = dict(limit=240, steps=40, batch_size=64, z_dim=8, loss_weights="random", predictor_epochs=0)


def _config(tmp_path, name, **overrides):
    return TrainConfig(**{**SMALL, "epochs": 1, "out": str(tmp_path / name), **overrides})


def _run_cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


@pytest.mark.parametrize("procedure", PROCEDURES)
def test_train_writes_summary_and_savedmodel(tmp_path, procedure):
    config = _config(tmp_path, procedure, procedure=procedure, epochs=2)
    summary = train(config, verbose=0)
    out = tmp_path / procedure
    assert not (tmp_path / f"{procedure}.incomplete").exists()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["procedure"] == procedure and on_disk["dataset"] == "lunarlander"
    assert on_disk["epochs_run"] == 2 and len(on_disk["seconds_per_epoch"]) == 2
    assert all(s > 0 for s in on_disk["seconds_per_epoch"])
    val_losses = [row["val_loss"] for row in on_disk["history"]]
    assert on_disk["best_val_loss"] == min(val_losses)
    assert on_disk["best_epoch"] == int(np.argmin(val_losses)) + 1
    # Whole rollouts: 240 frames of 40-step rollouts split at a rollout boundary.
    assert on_disk["train_images"] % 40 == 0 and on_disk["validation_images"] > 0
    assert on_disk["config"]["procedure"] == procedure

    model = load_run(out)
    assert on_disk["trainable_params"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    images = np.random.default_rng(0).random((5, 64, 64, 3), dtype=np.float32)
    reloaded = tf.saved_model.load(str(out / "encoder"))  # keep a reference: serve uses its variables
    served = reloaded.serve(tf.constant(images))
    expected = model.embedding_model()(images)
    assert served.shape == (5, 8)
    np.testing.assert_allclose(np.asarray(served), np.asarray(expected), atol=1e-5)


def test_kept_weights_are_the_best_epoch(tmp_path):
    config = _config(tmp_path, "best", procedure="I-I-PW", epochs=3, learning_rate=0.05)
    summary = train(config, verbose=0)
    model = load_run(tmp_path / "best")
    model.compile()
    from keras_pae.data import pipeline, registry

    data = registry.autoencoder_data(config, progress=False)
    split = summary["train_images"]
    val = pipeline.image_dataset(data.images[split:], 64)
    loss = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(summary["best_val_loss"], rel=1e-4)


def test_same_seed_same_losses(tmp_path):
    losses = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        summary = train(_config(tmp_path, name, procedure="I-F-FP", epochs=2, seed=seed), verbose=0)
        losses.append([(r["loss"], r["val_loss"]) for r in summary["history"]])
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_a_reused_autoencoder_trains_as_a_new_one(tmp_path):
    """An experiment's next seed reuses the compiled autoencoder; it must train exactly as a new one.

    A VAE, so the reparameterisation noise's generator is reset too.
    """
    from keras_pae.perceptual import training

    def losses(name, seed):
        summary = train(_config(tmp_path, name, procedure="I-F-FP", gamma=0.5, epochs=2, seed=seed), verbose=0)
        return [(r["loss"], r["val_loss"]) for r in summary["history"]]

    training._last_compiled.clear()
    alone = losses("alone", 1)
    training._last_compiled.clear()
    losses("first", 0)
    kept = training._last_compiled["model"]
    reused = losses("reused", 1)
    assert training._last_compiled["model"] is kept, "the second seed compiled a new model"
    assert reused == alone


def test_several_steps_per_call_train_as_one_step_per_call(tmp_path, monkeypatch):
    """The train function runs several steps per call (less overhead); the losses must be those of one step per call.

    A VAE at batch 16, with epochs whose steps are not a multiple of 4, so the last call of each is shorter.
    """
    from keras_pae.perceptual import training

    def history(name, steps):
        monkeypatch.setattr(training, "STEPS_PER_EXECUTION", steps)
        training._last_compiled.clear()
        summary = train(_config(tmp_path, name, procedure="I-F-FP", gamma=0.5, batch_size=16, epochs=2), verbose=0)
        return [(r["loss"], r["val_loss"]) for r in summary["history"]], summary["train_images"]

    one, images = history("one", 1)
    several, _ = history("several", 4)
    assert -(-images // 16) % 4 != 0, "no call of fewer steps to check"
    assert several == one


def test_existing_runs_are_protected(tmp_path):
    config = _config(tmp_path, "run", procedure="I-I-PW")
    train(config, verbose=0)
    with pytest.raises(ValueError, match="--overwrite"):
        train(config, verbose=0)
    summary = train(config, overwrite=True, verbose=0)
    assert summary["epochs_run"] == 1 and not (tmp_path / "run.incomplete").exists()
    (tmp_path / "other.incomplete").mkdir()
    with pytest.raises(ValueError, match="--resume"):
        train(_config(tmp_path, "other", procedure="I-I-PW"), verbose=0)


def test_resume_after_kill_continues(tmp_path):
    out = tmp_path / "killed"
    staging = tmp_path / "killed.incomplete"
    args = [
        # I-F-FP: the resumed run reuses the cached loss-network features.
        "--procedure", "I-F-FP", "--epochs", "4", "--limit", "400", "--steps", "40",
        "--batch-size", "32", "--z-dim", "8", "--predictor-epochs", "0", "--loss-weights", "random", "--out", str(out),
    ]
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "train.py"), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    history_path = staging / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if len(read_history(history_path)) >= 1 and (staging / "backup").exists():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = read_history(history_path)
    assert 1 <= len(before) < 4, "the run should have been killed mid-training"
    assert not out.exists(), "a killed run must not look finished"

    resumed = _run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {len(before)}" in resumed.stdout
    assert "Epoch 1/4" not in resumed.stdout
    after = read_history(out / "history.csv")
    assert [row["epoch"] for row in after] == [0, 1, 2, 3]
    assert after[: len(before)] == before
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 4
    assert not (out / "features").exists(), "a finished run does not keep its feature cache"


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--procedure", "I-X-FP"], "I-X-FP"),
        (["--dataset", "mnist64"], "mnist64"),
        (["--image-size", "70"], "70"),
        (["--epochs", "0"], "epochs"),
        (["--z-dim", "-3"], "-3"),
        (["--loss-weights", "missing.weights.h5"], "missing.weights.h5"),
        (["--gamma", "-1"], "gamma"),
        (["--dataset", "mnist", "--reset-on-termination"], "--reset-on-termination"),
        (["--feature-cache", "always"], "always"),
        (["--distribute", "tpu"], "tpu"),
        (["--init", "xavier"], "xavier"),
        (["--adam", "sgd"], "sgd"),
    ],
)
def test_bad_input_is_one_line(tmp_path, flags, named):
    out = tmp_path / "bad"
    result = _run_cli("--limit", "80", "--steps", "40", "--out", str(out), *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not out.exists() and not (tmp_path / "bad.incomplete").exists()


def test_init_and_adam_flags_reach_the_model():
    """The authors' (PyTorch's) initialisation and Adam by default; --init/--adam keras pick Keras's."""
    from keras_pae.perceptual.cli import build_parser, config_from_args
    from keras_pae.perceptual.training import _build_model

    def biases(model):
        return np.concatenate([layer.bias.numpy().ravel() for layer in model.encoder.layers if hasattr(layer, "kernel")])

    for flags, drawn_biases, epsilon in (([], True, 1e-8), (["--init", "keras", "--adam", "keras"], False, 1e-7)):
        config = config_from_args(build_parser().parse_args(["--procedure", "I-I-PW", *flags])).validate()
        assert bool(np.any(biases(_build_model(config, "random")))) == drawn_biases
        optimizer = optimizers.adam(config.learning_rate, config.adam)
        assert optimizer.epsilon == pytest.approx(epsilon) and optimizer.bias_corrected_epsilon == drawn_biases


def test_command_boundary_exit_statuses(capsys):
    """The four command lines' shared boundary: 0 on success, 2 + one line on a user error, 130 + the hint on ^C."""
    from keras_pae.core.cli import run_command

    def fails(error):
        def command():
            raise error

        return command

    assert run_command("prog", lambda: None, "hint") == 0
    assert capsys.readouterr().err == ""
    assert run_command("prog", fails(FileNotFoundError("no data in /x.")), "hint") == 2
    assert capsys.readouterr().err == "prog: error: no data in /x.\n"
    assert run_command("prog", fails(KeyboardInterrupt()), "rerun it.") == 130
    assert capsys.readouterr().err == "prog: interrupted; rerun it.\n"
    with pytest.raises(RuntimeError):  # a bug is not a user error: its traceback shows
        run_command("prog", fails(RuntimeError("bug")), "hint")


def test_corrupt_weights_file_is_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n but truncated")
    out = tmp_path / "bad"
    result = _run_cli(
        "--limit", "80", "--steps", "40", "--epochs", "1", "--loss-weights", str(corrupt), "--out", str(out)
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # TensorFlow's C++ runtime logs a few lines at start-up, before absl's log
    # level applies (no environment variable silences them); ours is the rest.
    lines = [l for l in result.stderr.strip().splitlines() if not TF_STARTUP_LOG.match(l)]
    assert len(lines) == 1 and "corrupt.weights.h5" in lines[0], result.stderr
    assert not out.exists() and not (tmp_path / "bad.incomplete").exists()


def test_summary_reports_the_predictors(tmp_path):
    config = _config(tmp_path, "pred", procedure="I-I-PW", predictor_epochs=3)
    summary = train(config, verbose=0)
    predictors = summary["predictors"]
    assert [p["hidden"] for p in predictors["predictors"]] == [[], [32], [64], [32, 32], [64, 32], [64, 64], [128, 128]]
    losses = [p["val_loss"] for p in predictors["predictors"]]
    assert predictors["chosen"] == predictors["predictors"][int(np.argmin(losses))]["hidden"]
    assert predictors["test_metric"] == "pixel_error"
    # Both numbers are of the embeddings the run kept: the baseline (the mean training position for
    # every test frame) by hand, the chosen predictor's error by evaluating them again with the run's seed.
    from keras_pae.data import lunarlander
    from keras_pae.evaluation.predictors import evaluate_embeddings
    from tuning.search import load_embeddings

    (train_x, train_y), validation, (test_x, test_y), problem = load_embeddings(str(tmp_path / "pred"))
    baseline = np.mean(np.linalg.norm(test_y - train_y.mean(axis=0), axis=1)) * lunarlander.PIXELS_PER_UNIT
    assert predictors["baseline_value"] == pytest.approx(baseline, rel=1e-5)
    again = evaluate_embeddings((train_x, train_y), validation, (test_x, test_y), **problem, epochs=3, seed=config.seed)
    assert again["test_value"] == pytest.approx(predictors["test_value"], rel=1e-5)
    # The report shows both the predictor's error and the error without the embedding.
    row = report.table([summary]).splitlines()[-1]
    assert f"| {predictors['test_value']:.2f} px | {predictors['baseline_value']:.2f} px |" in row
    # Predictor and test data: the on-screen frames of as many rollouts (6) as the autoencoder run.
    for run, examples in (
        ("predictor", predictors["train_examples"] + predictors["validation_examples"]),
        ("test", predictors["test_examples"]),
    ):
        x, y = lunarlander.generate_run(run, rollouts=6, steps=40, progress=False).positions.T
        assert examples == np.sum((np.abs(x) <= 1) & (y >= -0.5) & (y <= 1.5))


def test_tuner_predictor_search_picks_lowest_validation_loss_and_keeps_embeddings(tmp_path):
    from tuning.search import load_embeddings

    config = _config(tmp_path, "tuned", procedure="I-F-FP", predictor_epochs=2, predictor_search="tuner", predictor_trials=4)
    predictors = train(config, verbose=0)["predictors"]
    assert predictors["search"] == "tuner"
    losses = [p["val_loss"] for p in predictors["predictors"]]
    assert len(losses) == 4
    assert predictors["chosen"] == predictors["predictors"][int(np.argmin(losses))]["hyperparameters"]
    assert predictors["test_metric"] == "pixel_error" and predictors["test_value"] > 0
    train_part, validation, test, problem = load_embeddings(str(tmp_path / "tuned"))
    assert (problem["label_kind"], problem["num_outputs"]) == ("position", 2)
    assert train_part[0].shape == (predictors["train_examples"], 8)
    assert validation[0].shape == (predictors["validation_examples"], 8)
    assert test[0].shape == (predictors["test_examples"], 8) and test[1].shape == (predictors["test_examples"], 2)


def test_early_stopping_carries_on_after_resume():
    import keras

    from keras_pae.core.runs import ResumableEarlyStopping

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    earlier = [{"val_loss": v} for v in (0.5, 0.3, 0.4, 0.45)]
    stopper = ResumableEarlyStopping(history=earlier, monitor="val_loss", patience=3)
    stopper.set_model(model)
    stopper.on_train_begin()
    assert stopper.best == 0.3 and stopper.wait == 2
    stopper.on_epoch_end(4, {"val_loss": 0.35})  # third epoch without improvement
    assert model.stop_training


# Quick in-process command lines: two 40-frame rollouts, half of them validation.
QUICK_FLAGS = [
    "--procedure", "I-I-PW", "--limit", "80", "--steps", "40", "--batch-size", "32", "--z-dim", "4",
    "--loss-weights", "random", "--predictor-epochs", "0",
]


def _train_main(*args):
    from keras_pae.perceptual.cli import main

    return main([*QUICK_FLAGS, *args])


def test_patience_stops_after_that_many_epochs_without_improvement_and_keeps_the_best(tmp_path):
    # Adam at 0.01 on 40 frames: the validation loss is lowest early, then rises.
    out = tmp_path / "stopped"
    assert _train_main("--epochs", "8", "--patience", "2", "--learning-rate", "0.01", "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["patience"] == 2
    val_losses = [row["val_loss"] for row in summary["history"]]
    best, run = summary["best_epoch"], summary["epochs_run"]
    assert best < run < 8  # stopped early, on an epoch that was not the best
    assert run == best + 2  # exactly `patience` epochs without improvement
    assert summary["best_val_loss"] == val_losses[best - 1] == min(val_losses)
    assert all(v > summary["best_val_loss"] for v in val_losses[best:])

    # The kept weights are the best epoch's, not the last one's.
    from keras_pae.data import pipeline, registry

    config = TrainConfig.load(out / "config.json")
    model = load_run(out)
    model.compile()
    images = registry.autoencoder_data(config, progress=False).images[summary["train_images"]:]
    loss = model.evaluate(pipeline.image_dataset(images, 32), verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(summary["best_val_loss"], rel=1e-4)
    assert loss != pytest.approx(val_losses[-1], rel=1e-2)


def test_diverging_run_is_one_line_and_publishes_nothing(tmp_path, capsys):
    out = tmp_path / "diverged"
    # An infinite step: weights of inf and NaN whatever the kernels round.
    assert _train_main("--epochs", "2", "--learning-rate", "inf", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("train.py: error: Training diverged") and "--learning-rate" in err
    assert not out.exists()
    # It really diverged: TerminateOnNaN ended the first epoch on a NaN loss.
    history = read_history(tmp_path / "diverged.incomplete" / "history.csv")
    assert len(history) == 1 and np.isnan(history[0]["loss"]) and not np.isfinite(history[0]["val_loss"])


def test_crash_after_fit_resumes_without_refitting_and_refuses_other_flags(tmp_path, capsys, monkeypatch):
    import keras

    out = tmp_path / "crashed"
    staging = tmp_path / "crashed.incomplete"
    args = ["--epochs", "1", "--out", str(out)]

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while exporting")

    monkeypatch.setattr(keras.Model, "export", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):  # a bug, not a user error: it propagates
        _train_main(*args)
    assert not out.exists() and (staging / "fit.done").is_file()
    history_text = (staging / "history.csv").read_text()
    weights = (staging / "autoencoder.weights.h5").read_bytes()
    assert len(read_history(staging / "history.csv")) == 1
    capsys.readouterr()

    # Other flags: refused in one line, exit 2, the unfinished run untouched.
    assert _train_main(*args, "--resume", "--epochs", "2", "--learning-rate", "0.01") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different epochs, learning_rate" in err and "--overwrite" in err, err
    assert (staging / "history.csv").read_text() == history_text

    # The same flags: publishes without fitting again.
    monkeypatch.undo()

    def refit(*args, **kwargs):
        raise AssertionError("a finished fit must not run again")

    monkeypatch.setattr(keras.Model, "fit", refit)
    assert _train_main(*args, "--resume") == 0
    assert not staging.exists()
    assert (out / "history.csv").read_text() == history_text
    assert (out / "autoencoder.weights.h5").read_bytes() == weights
    assert (out / "encoder" / "saved_model.pb").is_file() and not (out / "fit.done").exists()
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 1


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_resume_restores_adam_state(tmp_path, gamma):
    """The resumed optimizer holds the moments and step count of the epoch it resumes after.

    A plain autoencoder's logvar head gets no gradient; an optimizer built on
    every trainable weight then no longer matched the saved one, and Keras
    skipped loading it: the resumed run restarted Adam from zero.
    """
    import keras

    from keras_pae.core import runs
    from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder
    from tests.helpers import InterruptAfterFirstEpoch

    images = np.random.default_rng(0).random((40, 64, 64, 3), dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)

    def compiled():
        model = build_perceptual_autoencoder("I-I-PW", z_dim=4, gamma=gamma, seed=0)
        model.compile(optimizer=optimizers.adam(1e-3, "torch"))
        return model

    class Snapshot(keras.callbacks.Callback):
        """The optimizer's variables when the fit starts (after the restore), or after its first epoch."""

        def __init__(self, at_epoch_end):
            super().__init__()
            self.at_epoch_end = at_epoch_end

        def on_train_begin(self, logs=None):
            if not self.at_epoch_end:
                self.values = [np.array(v) for v in self.model.optimizer.variables]

        def on_epoch_end(self, epoch, logs=None):
            if self.at_epoch_end:
                self.values = [np.array(v) for v in self.model.optimizer.variables]

    staging = str(tmp_path / "run.incomplete")
    saved = Snapshot(at_epoch_end=True)
    with pytest.raises(KeyboardInterrupt):
        runs.fit_resumable(compiled(), data, data, staging, 3, callbacks=[saved, InterruptAfterFirstEpoch()])
    restored = Snapshot(at_epoch_end=False)
    with pytest.raises(KeyboardInterrupt):
        runs.fit_resumable(compiled(), data, data, staging, 3, callbacks=[restored, InterruptAfterFirstEpoch()])
    restored_at_start = restored.values
    assert len(restored_at_start) == len(saved.values) > 2
    assert int(restored_at_start[0]) == 5, "the step count restarted"
    moments = [v for v in saved.values if v.ndim > 0]
    assert any(np.abs(m).max() > 0 for m in moments)
    assert len(moments) == len([v for v in restored_at_start if v.ndim > 0])
    for before, after in zip(saved.values, restored_at_start):
        np.testing.assert_array_equal(before, after)


def test_a_backup_cut_short_leaves_the_last_whole_state(tmp_path, monkeypatch):
    """A write of the resume state that dies half way keeps the previous epoch's state loadable.

    The second epoch's write stops after some bytes (a full disk, a kill): the
    history must not show that epoch, and a resume must start after the first
    with the first epoch's weights and Adam state, bit for bit.
    """
    import keras

    from keras_pae.core import runs
    from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder

    images = np.random.default_rng(0).random((24, 64, 64, 3), dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)

    def compiled():
        model = build_perceptual_autoencoder("I-I-PW", z_dim=4, seed=0)
        model.compile(optimizer=optimizers.adam(1e-3, "torch"))
        return model

    class State(keras.callbacks.Callback):
        """Every weight and optimizer variable after each epoch, and when the fit starts."""

        def __init__(self):
            super().__init__()
            self.at_start, self.after = None, []

        def _values(self):
            return [np.array(v) for v in self.model.variables + self.model.optimizer.variables]

        def on_train_begin(self, logs=None):
            self.at_start = self._values()

        def on_epoch_end(self, epoch, logs=None):
            self.after.append(self._values())

    real_savez, writes = np.savez, []

    def savez_cut_short(file, **arrays):
        writes.append(file.name)
        if len(writes) == 2:
            file.write(b"PK\x03\x04" + bytes(4096))
            raise OSError("No space left on device")
        real_savez(file, **arrays)

    staging = str(tmp_path / "run.incomplete")
    first = State()
    monkeypatch.setattr(runs.np, "savez", savez_cut_short)
    with pytest.raises(OSError, match="No space left"):
        runs.fit_resumable(compiled(), data, data, staging, 3, callbacks=[first])
    monkeypatch.setattr(runs.np, "savez", real_savez)
    assert len(writes) == 2
    assert len(read_history(os.path.join(staging, runs.HISTORY_FILE))) == 1, "the history shows an unsaved epoch"

    resumed = State()
    history = runs.fit_resumable(compiled(), data, data, staging, 3, callbacks=[resumed])
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert len(resumed.after) == 2, "the resumed fit did not start after the first epoch"
    assert len(resumed.at_start) == len(first.after[0])
    for saved, restored in zip(first.after[0], resumed.at_start):
        np.testing.assert_array_equal(saved, restored)
    assert not os.path.exists(os.path.join(staging, runs.BACKUP_DIR)), "a finished fit keeps no resume state"


def test_a_fit_stopped_after_its_last_epoch_is_finished_without_a_last_resume_state(tmp_path, monkeypatch):
    """The last epoch writes no resume state; stopped before the marker, the fit is still complete."""
    import keras

    from keras_pae.core import runs
    from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder

    images = np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)
    model = build_perceptual_autoencoder("I-I-PW", z_dim=4, seed=0)
    model.compile(optimizer=optimizers.adam(1e-3, "torch"))

    class StopAsFitEnds(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            raise KeyboardInterrupt

    saved = []
    save = runs.AtomicBackupAndRestore._save_model
    monkeypatch.setattr(runs.AtomicBackupAndRestore, "_save_model", lambda self: saved.append(self._current_epoch) or save(self))
    staging, best = str(tmp_path / "run.incomplete"), str(tmp_path / "best.weights.h5")
    with pytest.raises(KeyboardInterrupt):
        runs.fit_resumable(model, data, data, staging, 3, best_weights=best, callbacks=[StopAsFitEnds()])
    assert saved == [1, 2], "the resume state is written after every epoch but the last"
    assert not os.path.exists(os.path.join(staging, runs.FIT_DONE_FILE))

    monkeypatch.setattr(model, "fit", lambda *args, **kwargs: pytest.fail("refitted a finished fit"))
    history = runs.fit_resumable(model, data, data, staging, 3, best_weights=best)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert os.path.exists(os.path.join(staging, runs.FIT_DONE_FILE)) and os.path.isfile(best)


def test_a_weights_snapshot_writes_what_keras_writes_and_keeps_its_moment(tmp_path):
    """The background writer's `.weights.h5` is Keras's own file, from values taken before training went on."""
    import h5py
    from keras.src.saving import saving_lib

    from keras_pae.core import runs
    from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder

    images = np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)
    model = build_perceptual_autoencoder("I-F-FP", z_dim=4, gamma=0.5, loss_weights="random", seed=0)
    model.compile(optimizer=optimizers.adam(1e-3, "torch"))
    model.fit(images, epochs=1, batch_size=8, verbose=0)
    keras_file, ours = str(tmp_path / "keras.weights.h5"), str(tmp_path / "ours.weights.h5")
    saving_lib.save_weights_only(model, keras_file, objects_to_skip=[model.optimizer])
    snapshot = runs.weights_snapshot(model)
    before = [np.array(v) for v in model.weights]
    model.fit(images, epochs=1, batch_size=8, verbose=0)  # Adam updates the variables in place
    runs.write_weights(snapshot, ours)

    def contents(path):
        found = {}

        def visit(name, item):
            found[name] = (dict(item.attrs), item[()] if isinstance(item, h5py.Dataset) else None)

        with h5py.File(path, "r") as f:
            f.visititems(visit)
        return found

    expected, written = contents(keras_file), contents(ours)
    assert sorted(written) == sorted(expected) and len(expected) > 10
    for name, (attrs, value) in expected.items():
        assert written[name][0] == attrs, name
        np.testing.assert_array_equal(written[name][1], value, err_msg=name)
    assert any(not np.array_equal(b, np.array(v)) for b, v in zip(before, model.weights)), "training changed nothing"
    reloaded = build_perceptual_autoencoder("I-F-FP", z_dim=4, gamma=0.5, loss_weights="random", seed=1)
    reloaded(images[:1])
    runs.load_model_weights(reloaded, ours)
    for saved, loaded in zip(before, reloaded.weights):
        np.testing.assert_array_equal(saved, np.array(loaded))


def test_checkpoints_are_written_in_order_from_each_epochs_values(tmp_path, monkeypatch):
    """Held back until training ends, each epoch's writes still carry that epoch's values, state first and row last."""
    import threading

    import keras

    from keras_pae.core import runs
    from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder

    images = np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)
    model = build_perceptual_autoencoder("I-I-PW", z_dim=4, seed=0)
    model.compile(optimizer=optimizers.adam(1e-2, "torch"))
    gate, queued = threading.Event(), []

    class HeldWriter(runs.BackgroundWriter):
        def __init__(self):
            super().__init__()
            self.submit(gate.wait)

        def submit(self, write, *args):
            queued.append((getattr(write, "func", write).__name__, args))
            super().submit(write, *args)

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            self.values.append((logs["val_loss"], [np.array(v) for v in self.model.variables + self.model.optimizer.variables]))
            if epoch == 2:
                gate.set()  # every epoch's writes are queued; training is over

    monkeypatch.setattr(runs, "BackgroundWriter", HeldWriter)
    staging, best = str(tmp_path / "run.incomplete"), str(tmp_path / "best.weights.h5")
    record = Record()
    runs.fit_resumable(model, data, data, staging, 3, best_weights=best, callbacks=[record])

    expected, lowest = [], np.inf
    for epoch, (loss, _) in enumerate(record.values):
        if epoch < 2:  # the last epoch writes no resume state
            expected.append("_write_state")
        if loss < lowest:
            lowest = loss
            expected.append("write_weights")
        expected.append("on_epoch_end")  # the history row
    assert [name for name, _ in queued[1:]] == expected
    states = [args[0] for name, args in queued if name == "_write_state"]
    for epoch, state in enumerate(states):
        assert int(state["epoch"]) == epoch + 1
        for i, value in enumerate(record.values[epoch][1]):
            np.testing.assert_array_equal(state[f"v{i}"], value)
    assert [r["epoch"] for r in read_history(os.path.join(staging, runs.HISTORY_FILE))] == [0, 1, 2]
    reloaded = build_perceptual_autoencoder("I-I-PW", z_dim=4, seed=1)
    reloaded(images[:1])
    runs.load_model_weights(reloaded, best)
    best_values = record.values[int(np.argmin([loss for loss, _ in record.values]))][1]
    weights = [i for i, v in enumerate(model.variables) if any(v is w for w in model.weights)]  # not the seed's state
    assert len(weights) == len(reloaded.weights) > 10
    for i, variable in zip(weights, reloaded.weights):
        np.testing.assert_array_equal(best_values[i], np.array(variable))
