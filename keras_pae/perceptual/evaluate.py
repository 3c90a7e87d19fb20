"""Judging a run's embedding: the predictors of papers 1-2 on the encoded mu."""

import json
import os

from keras_pae.data import pipeline, registry
from keras_pae.evaluation import predictors
from tuning import search


def format_metric(result):
    """One line for a predictors result: the test metric and the metric without the embedding."""
    if result["test_metric"] == "pixel_error":
        text = f"test position error {result['test_value']:.2f} px"
        baseline = f"{result.get('baseline_value', float('nan')):.2f} px"
    else:
        text = f"test {result['test_metric']} {result['test_value']:.4f}"
        baseline = f"{result.get('baseline_value', float('nan')):.4f}"
    return f"{text} (without the embedding: {baseline})"


def evaluate_predictors(model, config, path, verbose):
    """Encodes the predictor and test data once (mu) and runs the predictors (feature-prediction paper, Sec. VI).

    The result is cached in `path`, so a resumed run does not retrain them.
    """
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    dataset = registry.info(config.dataset)
    embedder = model.embedding_model()

    def encode(part, name):
        images = pipeline.image_dataset(part.images, 512, image_size=config.image_size, fit=dataset.fit)
        if verbose:
            print(f"Encoding {len(part)} {name} images.", flush=True)
        return embedder.predict(images, verbose=verbose)

    labelled = registry.predictor_data(config, progress=bool(verbose))
    test = registry.test_data(config, progress=bool(verbose))
    if labelled.labels is None or test.labels is None:
        if verbose:
            print(f"{config.dataset}: the data has no labels (no class subfolders); skipping the predictors.")
        return None
    # Image folders: as many outputs as classes found.
    num_outputs = dataset.num_outputs or int(max(labelled.labels.max(), test.labels.max())) + 1
    split = pipeline.validation_split(len(labelled), labelled.groups, config.validation_fraction)
    embedded = encode(labelled, "predictor")
    if verbose:
        what = "a KerasTuner search of predictors" if config.predictor_search == "tuner" else f"{len(predictors.HIDDEN_LAYERS)} predictors"
        print(f"Training {what} on {len(labelled)} embeddings.")
    parts = (
        (embedded[:split], labelled.labels[:split]),
        (embedded[split:], labelled.labels[split:]),
        (encode(test, "test"), test.labels),
    )
    # Kept so `keras-pae search RUN` can search predictors later.
    problem = dict(label_kind=dataset.label_kind, num_outputs=num_outputs, pixels_per_unit=dataset.pixels_per_unit)
    search.save_embeddings(os.path.join(os.path.dirname(path), search.EMBEDDINGS_FILE), *parts, **problem)
    if config.predictor_search == "tuner":
        result = search.search_predictors(
            *parts,
            **problem,
            directory=os.path.join(os.path.dirname(path), search.SEARCH_DIR),
            epochs=config.predictor_epochs,
            max_trials=config.predictor_trials,
            seed=config.seed,
        )
    else:
        result = predictors.evaluate_embeddings(
            *parts, **problem, epochs=config.predictor_epochs, seed=config.seed, progress=bool(verbose)
        )
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result
