"""Shared test helpers."""

import os
import re

import keras
import numpy as np

# TensorFlow's C++ runtime logs a few lines at start-up, before absl's log
# level applies (no environment variable silences them all); a command's own
# output is the rest.
TF_STARTUP_LOG = re.compile(r"^([IWE]\d{4} |WARNING: All log messages before absl)")


def assert_round_trips(model, inputs, tmp_path, atol=1e-6):
    """Asserts that `model` survives `get_config`/`from_config` and a `.keras` save and reload.

    Both copies must be of the model's class, carry its config and give its
    outputs on `inputs` (inference mode). Returns the reloaded model.
    """
    expected = [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(model(inputs, training=False))]
    config = model.get_config()
    restored = type(model).from_config(config)
    assert type(restored) is type(model)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    for copy in (restored, reloaded):
        copy_config = copy.get_config()
        for key, value in config.items():
            if key not in ("name", "trainable", "dtype") and not isinstance(value, dict):
                assert copy_config[key] == value, f"{key}: {copy_config[key]!r} != {value!r}"
    outputs = keras.tree.flatten(reloaded(inputs, training=False))
    assert len(outputs) == len(expected)
    for actual, wanted in zip(outputs, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), wanted, atol=atol)
    return reloaded


def docs_example(page, heading, replacements=()):
    """The first ```python block after the line `heading` of docs/`page`, with `replacements` applied.

    Each `(old, new)` replacement (the test's small sizes, its paths) must
    match exactly once, so an edited example cannot drift away from its test.
    """
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", page)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    after = text[text.index(heading + "\n"):]
    start = after.index("```python\n") + len("```python\n")
    code = after[start:after.index("\n```", start)]
    for old, new in replacements:
        assert code.count(old) == 1, f"{page}, {heading!r}: {old!r} occurs {code.count(old)} times"
        code = code.replace(old, new)
    return code


def assert_accuracies_of_kept_embeddings(run_dir, predictors):
    """Asserts that a class-labelled run's predictor results are accuracies on the embeddings it kept.

    The test accuracy is a whole number of test examples; the baseline is the
    share of test labels equal to the most frequent training label, counted here.
    """
    from tuning.search import load_embeddings

    (train_x, train_y), (val_x, _), (test_x, test_y), problem = load_embeddings(str(run_dir))
    assert problem["label_kind"] == "class" and predictors["test_metric"] == "accuracy"
    assert (predictors["train_examples"], predictors["validation_examples"], predictors["test_examples"]) == (
        len(train_x), len(val_x), len(test_x)
    )
    correct = predictors["test_value"] * len(test_x)
    assert abs(correct - round(correct)) < 1e-6, predictors["test_value"]
    majority = np.bincount(np.asarray(train_y, int).ravel()).argmax()
    assert abs(predictors["baseline_value"] - np.mean(np.asarray(test_y).ravel() == majority)) < 1e-9


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Stands for ^C once the first epoch is logged and backed up (`BackupAndRestore` runs first)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def interrupt_fit(monkeypatch, module, staging_name):
    """Makes `module.fit_resumable` stop with ^C after the first epoch of the fit staged in `staging_name`.

    Args:
        monkeypatch: pytest's fixture (or one of its contexts).
        module: the module whose `fit_resumable` name to replace.
        staging_name: the base name of the staging directory, e.g. `"phase1.incomplete"`.
    """
    real = module.fit_resumable

    def fit_resumable(model, train_data, validation_data, staging, *args, callbacks=(), **kwargs):
        if os.path.basename(staging) == staging_name:
            callbacks = [*callbacks, InterruptAfterFirstEpoch()]
        return real(model, train_data, validation_data, staging, *args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(module, "fit_resumable", fit_resumable)
