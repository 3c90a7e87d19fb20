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
