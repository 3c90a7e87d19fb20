"""Shared test helpers."""

import keras
import numpy as np


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
