import os
import subprocess
import sys

import numpy as np
import pytest

from keras_pae.evaluation import predictors


def test_pixel_error_on_hand_made_positions():
    true = np.array([[0.0, 0.0], [0.5, 1.0], [-1.0, 0.25]])
    # Offsets of 3-4-5 triangles in observation units (x 32 px per unit).
    predicted = true + np.array([[0.3, 0.4], [0.0, 0.0], [-0.6, 0.8]])
    assert predictors.position_error_pixels(predicted, true) == pytest.approx(32 * (0.5 + 0 + 1.0) / 3)


def test_accuracy_and_targets():
    assert predictors.accuracy(np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]]), [1, 0, 0]) == pytest.approx(2 / 3)
    onehot = predictors.targets(np.array([2, 0]), "class", 3)
    np.testing.assert_array_equal(onehot, [[0, 0, 1], [1, 0, 0]])


def test_architectures():
    for hidden in predictors.HIDDEN_LAYERS:
        model = predictors.predictor_mlp(16, hidden, 2)
        dense = [l for l in model.layers if l.__class__.__name__ == "Dense"]
        assert [l.units for l in dense] == [*hidden, 2]
        assert dense[-1].activation.__name__ == "linear"


def test_selection_picks_lowest_validation_loss():
    rng = np.random.default_rng(0)
    # A nonlinear target: hidden layers beat the linear model on validation.
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = np.stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]], axis=1).astype(np.float32)
    result = predictors.evaluate_embeddings(
        (x[:400], y[:400]), (x[400:500], y[400:500]), (x[500:], y[500:]),
        "position", 2, hidden_layers=((), (32,), (64, 64)), epochs=60, batch_size=64,
    )
    losses = [r["val_loss"] for r in result["predictors"]]
    assert result["chosen"] == result["predictors"][int(np.argmin(losses))]["hidden"]
    assert result["chosen"] != []  # the linear model cannot fit sin / products
    assert result["test_metric"] == "pixel_error" and result["test_value"] > 0
    # The embedding carries the target, so the predictor beats ignoring it.
    assert result["test_value"] < 0.8 * result["baseline_value"]


def test_baseline_predicts_the_mean_position_and_the_majority_class():
    train = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 3.0]])  # mean (1, 1)
    test = np.array([[1.0, 1.0], [4.0, 5.0]])  # 0 and 5 units from it
    assert predictors.baseline_score(train, test, "position", 2, pixels_per_unit=10) == pytest.approx(10 * 5 / 2)
    # Class 2 is the most frequent in training; a third of the test examples are class 2.
    assert predictors.baseline_score(np.array([2, 2, 0, 1]), np.array([2, 0, 1]), "class", 3) == pytest.approx(1 / 3)
    # Per attribute, the more frequent training value: (1, 0) -> 3 of 4 test values right.
    attributes = predictors.baseline_score(np.array([[1, 0], [1, 0], [0, 1]]), np.array([[1, 0], [0, 0]]), "attributes", 2)
    assert attributes == pytest.approx(3 / 4)


def test_landmark_error_averages_points_and_attribute_accuracy():
    true = np.zeros((2, 4))
    # Two (x, y) points per row: distances 0.5, 0, 0 and 1.0, averaged over the four points.
    predicted = np.array([[0.3, 0.4, 0.0, 0.0], [0.0, 0.0, 0.6, 0.8]])
    assert predictors.position_error_pixels(predicted, true, pixels_per_unit=96) == pytest.approx(96 * 1.5 / 4)
    attributes = np.array([[1, 0, 1], [0, 0, 1]])
    outputs = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.8]])
    assert predictors.attribute_accuracy(outputs, attributes) == pytest.approx(4 / 6)
    assert predictors.test_metric("attributes") == ("attribute_accuracy", False)


def _one_at_a_time(train, validation, hidden_layers, epochs, batch_size, seed=0):
    """Each MLP alone with Keras's EarlyStopping: what training them together must reproduce."""
    import keras

    from keras_pae.core.optimizers import FusedAdam

    (x, y), (val_x, val_y) = train, validation
    results = []
    for hidden in hidden_layers:
        keras.utils.set_random_seed(seed)
        model = predictors.predictor_mlp(x.shape[-1], hidden, y.shape[-1], seed=seed)
        # One step per call, Keras's validation of batches: what the bank's calls and its one-batch validation replace.
        model.compile(optimizer=FusedAdam(1e-3), loss="mse")
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=max(10, epochs // 20), restore_best_weights=True)
        history = model.fit(
            predictors.training_batches(x, y, batch_size, seed),
            steps_per_epoch=predictors.batches_per_epoch(len(x), batch_size),
            validation_data=(val_x, val_y), validation_batch_size=batch_size,
            epochs=epochs, shuffle=False, callbacks=[stopper], verbose=0,
        )
        results.append((history.history["val_loss"], model.predict(val_x, verbose=0)))
    return results


def test_training_together_equals_training_one_at_a_time():
    """Same losses, same early stops, same kept weights as separate fits."""
    rng = np.random.default_rng(2)
    # Few, noisy examples: the large MLP overfits and stops early, the linear one runs on.
    x = rng.normal(size=(130, 6)).astype(np.float32)
    y = np.stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]], axis=1).astype(np.float32)
    y += 0.5 * rng.normal(size=y.shape).astype(np.float32)
    # Batches of 16: the last training (60) and validation (70) batch is smaller, and 4 steps
    # per epoch make the bank take 4 per call.
    train, validation = (x[:60], y[:60]), (x[60:], y[60:])
    assert predictors.steps_per_execution(predictors.batches_per_epoch(60, 16)) == 4
    epochs, hidden_layers = 50, ((), (32,), (128, 128))
    result = predictors.evaluate_embeddings(
        train, validation, validation, "position", 2, hidden_layers=hidden_layers, epochs=epochs, batch_size=16,
    )
    reference = _one_at_a_time(train, validation, hidden_layers, epochs, 16)
    runs = [r["epochs_run"] for r in result["predictors"]]
    assert min(runs) < epochs and max(runs) == epochs, f"the check needs early and late stops: {runs}"
    for got, (val_losses, _) in zip(result["predictors"], reference):
        assert got["epochs_run"] == len(val_losses)
        assert got["best_epoch"] == int(np.argmin(val_losses)) + 1
        assert got["val_loss"] == pytest.approx(min(val_losses), rel=1e-6)
    chosen = int(np.argmin([min(v) for v, _ in reference]))
    assert result["chosen"] == list(hidden_layers[chosen])
    # The kept weights are the best epoch's: the test metric matches the separate model's.
    assert result["test_value"] == pytest.approx(predictors.position_error_pixels(reference[chosen][1], validation[1]), rel=1e-4)
    with pytest.raises(ValueError, match="distinct"):
        predictors.evaluate_embeddings(train, validation, validation, "position", 2, hidden_layers=((32,), (32,)), epochs=1)


def test_a_reused_bank_trains_as_a_new_one():
    """A second run in one process reuses the compiled bank: it must start from the new weights and a fresh Adam."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = np.stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2]], axis=1).astype(np.float32)
    parts = (x[:200], y[:200]), (x[200:250], y[200:250]), (x[250:], y[250:])
    hidden_layers, epochs = ((), (16,), (32, 16)), 12

    def run(seed):
        result = predictors.evaluate_embeddings(*parts, "position", 2, hidden_layers=hidden_layers, epochs=epochs, batch_size=32, seed=seed)
        return [p["val_loss"] for p in result["predictors"]], result["test_value"]

    predictors._banks.clear()
    first = run(seed=0)
    assert len(predictors._banks) == 1
    other = run(seed=1)  # trains the same bank from other weights
    again = run(seed=0)
    assert len(predictors._banks) == 1, "the second and third runs must reuse the bank"
    assert other != first
    assert again == first


# Under op determinism (`set_seeds`' default), TensorFlow logs one "E0000 ... NodeDef mentions attribute"
# line for Keras's adapter of arrays; TensorFlow logs it at most once in a while, so a fresh process.
_ERROR_LINE_SCRIPT = """
import sys
import keras_pae
import keras, numpy as np, tensorflow as tf
from keras_pae.evaluation import predictors
tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
x = rng.normal(size=(120, 4)).astype(np.float32)
y = x[:, :2] * 0.5
predictors.evaluate_embeddings(
    (x[:80], y[:80]), (x[80:100], y[80:100]), (x[100:], y[100:]), "position", 2, hidden_layers=((), (8,)), epochs=2
)
print("--predictors done--", file=sys.stderr, flush=True)
keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).predict(x, verbose=0)
"""


def test_predictors_log_no_error_line_under_op_determinism():
    result = subprocess.run(
        [sys.executable, "-c", _ERROR_LINE_SCRIPT], capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ours, keras_own = result.stderr.split("--predictors done--")
    assert "NodeDef mentions" not in ours
    if "NodeDef mentions" not in keras_own:
        pytest.skip("this TensorFlow logs no error line for Keras's adapter of arrays")


def test_array_batches_give_keras_predictions_and_losses():
    import keras

    from keras_pae.data import pipeline

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = rng.normal(size=(50, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse")
    # 50 = 3 batches of 16 and one of 2, in order.
    np.testing.assert_array_equal(
        model.predict(pipeline.array_batches(x, 16), verbose=0), model.predict(x, batch_size=16, verbose=0)
    )
    assert model.evaluate(pipeline.array_batches((x, y), 16), verbose=0) == pytest.approx(
        model.evaluate(x, y, batch_size=16, verbose=0), rel=1e-6
    )
