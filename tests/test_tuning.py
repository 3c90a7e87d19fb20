import itertools

import keras_tuner
import numpy as np
import pytest

from tuning.predictor_hypermodel import UNITS, PredictorHyperModel
from tuning.search import load_embeddings, save_embeddings, search_predictors


def dense_sizes(model):
    return [layer.units for layer in model.layers if layer.name.startswith("hidden")]


@pytest.mark.parametrize("label_kind, expected_points", [("class", 38), ("position", 19)])
def test_grid_covers_the_space_and_never_widens_the_second_layer(tmp_path, label_kind, expected_points):
    tuner = keras_tuner.GridSearch(
        PredictorHyperModel(8, 3, label_kind), objective="val_loss", directory=tmp_path, project_name="p"
    )
    seen = set()
    while True:
        trial = tuner.oracle.create_trial("tester")
        if trial.status == "STOPPED":
            break
        model = tuner.hypermodel.build(trial.hyperparameters)
        sizes = dense_sizes(model)
        assert len(sizes) <= 2
        if len(sizes) == 2:
            assert sizes[1] <= sizes[0], trial.hyperparameters.values
        activation = model.layers[1].activation.__name__ if sizes else None
        seen.add((tuple(sizes), activation, model.layers[-1].activation.__name__))
        tuner.oracle.update_trial(trial.trial_id, {"val_loss": 1.0})
        trial.status = "COMPLETED"
        tuner.oracle.end_trial(trial)
    assert len(seen) == expected_points
    # Every allowed pair of widths is reachable, not only the narrow ones.
    pairs = {s for s, _, _ in seen if len(s) == 2}
    assert pairs == {(a, b) for a, b in itertools.product(UNITS, UNITS) if b <= a}
    outputs = {o for _, _, o in seen}
    assert outputs == ({"linear", "softmax"} if label_kind == "class" else {"linear"})


def toy_embeddings(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.eye(3, 6) * 4.0
    return (centres[labels] + rng.normal(size=(n, 6))).astype(np.float32), labels


def test_search_picks_lowest_validation_loss_resumes_and_beats_chance(tmp_path):
    train, validation, test = (toy_embeddings(n, seed) for n, seed in ((300, 0), (100, 1), (200, 2)))
    result = search_predictors(train, validation, test, "class", 3, tmp_path / "search", epochs=10, max_trials=3, batch_size=16)
    losses = [r["val_loss"] for r in result["predictors"]]
    assert len(losses) == 3
    chosen = result["predictors"][int(np.argmin(losses))]["hyperparameters"]
    assert result["chosen"] == chosen
    assert result["test_value"] > 0.8  # three well-separated clusters; chance is 1/3
    assert result["baseline_value"] < 0.5  # the most frequent class alone
    # A rerun reloads the finished project and trains no new trial.
    again = search_predictors(train, validation, test, "class", 3, tmp_path / "search", epochs=10, max_trials=3, batch_size=16)
    assert [r["val_loss"] for r in again["predictors"]] == losses


def test_embeddings_round_trip(tmp_path):
    parts = [toy_embeddings(n, seed) for n, seed in ((5, 0), (4, 1), (3, 2))]
    save_embeddings(str(tmp_path / "embeddings.npz"), *parts, "class", 3, 32.0)
    *loaded, problem = load_embeddings(str(tmp_path))
    assert problem == {"label_kind": "class", "num_outputs": 3, "pixels_per_unit": 32.0}
    for (x, y), (lx, ly) in zip(parts, loaded):
        np.testing.assert_array_equal(x, lx)
        np.testing.assert_array_equal(y, ly)
