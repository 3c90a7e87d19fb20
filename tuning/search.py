"""KerasTuner search of the first paper's predictor space on saved embeddings.

    keras-pae search saved_models/RUN [--epochs 500] [--max-trials N]

RUN is a directory written by `train.py` (it keeps the embeddings of the
predictor and test data in `embeddings.npz`). The whole space is small (19
points for positions, 38 for classes), so it is searched as a grid; the trial
with the lowest validation loss is tested. The search is resumable: rerunning
the command continues the tuner project in `RUN/predictor_search/`.
"""

import argparse
import json
import os
import sys

# keras_pae before Keras: importing it turns on oneDNN, which TensorFlow reads as it loads.
from keras_pae.core import cli  # isort: skip

import keras
import keras_tuner
import numpy as np

from keras_pae.data import pipeline
from keras_pae.evaluation import predictors
from tuning.predictor_hypermodel import PredictorHyperModel

EMBEDDINGS_FILE = "embeddings.npz"
SEARCH_DIR = "predictor_search"
RESULT_FILE = "predictor_search.json"


def save_embeddings(path, train, validation, test, label_kind, num_outputs, pixels_per_unit):
    """Writes `(embeddings, labels)` of the three parts and the problem for later searches."""
    arrays = {}
    for name, (x, y) in (("train", train), ("validation", validation), ("test", test)):
        arrays[f"{name}_x"], arrays[f"{name}_y"] = x, y
    tmp = path + ".tmp.npz"
    np.savez(tmp, label_kind=label_kind, num_outputs=num_outputs, pixels_per_unit=np.nan if pixels_per_unit is None else pixels_per_unit, **arrays)
    os.replace(tmp, path)


def load_embeddings(path):
    """Reads what `save_embeddings` wrote.

    Returns:
        `(train, validation, test, problem)`: three `(embeddings, labels)`
        pairs and a dict with `label_kind`, `num_outputs`, `pixels_per_unit`.
    """
    if os.path.isdir(path):
        path = os.path.join(path, EMBEDDINGS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found; train.py writes it when it evaluates predictors (--predictor-epochs > 0)."
        )
    with np.load(path) as f:
        parts = tuple((f[f"{name}_x"], f[f"{name}_y"]) for name in ("train", "validation", "test"))
        problem = {
            "label_kind": str(f["label_kind"]),
            "num_outputs": int(f["num_outputs"]),
            "pixels_per_unit": None if np.isnan(f["pixels_per_unit"]) else float(f["pixels_per_unit"]),
        }
    return (*parts, problem)


def search_predictors(
    train,
    validation,
    test,
    label_kind,
    num_outputs,
    directory,
    pixels_per_unit=None,
    epochs=500,
    max_trials=None,
    batch_size=512,
    seed=0,
    overwrite=False,
    verbose=0,
):
    """Grid-searches the first paper's predictor space and tests the best trial.

    Args:
        train, validation, test: `(embeddings, labels)` pairs.
        label_kind: `"position"`, `"class"` or `"attributes"`.
        num_outputs: coordinates, classes or attributes.
        directory: the KerasTuner project folder; an existing one is resumed.
        pixels_per_unit: scale of the pixel error for positions (None: LunarLander's).
        epochs: maximum epochs per trial (early stopping with patience
            max(10, epochs / 20) keeps the best-validation weights).
        max_trials: stop after this many trials; None searches the whole space.
        batch_size: examples per step (the papers: 512).
        seed: seeds the tuner and the weights.
        overwrite: start the project afresh.
        verbose: `fit`'s verbosity inside each trial.

    Returns:
        The same shape of dict as `evaluate_embeddings`: every trial's
        hyperparameters and best validation loss, the chosen one and its
        test metric.
    """
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = train, validation, test
    hypermodel = PredictorHyperModel(
        train_x.shape[-1], num_outputs, label_kind, batch_size=batch_size, patience=max(10, epochs // 20)
    )
    keras.utils.set_random_seed(seed)
    tuner = keras_tuner.GridSearch(
        hypermodel,
        objective="val_loss",
        max_trials=max_trials,
        seed=seed,
        directory=os.path.dirname(os.path.abspath(directory)),
        project_name=os.path.basename(os.path.abspath(directory)),
        overwrite=overwrite,
    )
    tuner.search(
        train_x,
        predictors.targets(train_y, label_kind, num_outputs),
        validation_data=(val_x, predictors.targets(val_y, label_kind, num_outputs)),
        epochs=epochs,
        verbose=verbose,
    )
    trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
    trials.sort(key=lambda t: int(t.trial_id))
    results = [{"trial": t.trial_id, "hyperparameters": t.hyperparameters.values, "val_loss": float(t.score)} for t in trials]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_model = tuner.get_best_models(1)[0]
    predicted = best_model.predict(pipeline.array_batches(test_x, 4096), verbose=0)
    name, lower_is_better = predictors.test_metric(label_kind)
    pixels_per_unit = pixels_per_unit or predictors.lunarlander.PIXELS_PER_UNIT
    value = predictors.score(predicted, test_y, label_kind, pixels_per_unit)
    return {
        "search": "tuner",
        "predictors": results,
        "chosen": best_trial.hyperparameters.values,
        "test_metric": name,
        "lower_is_better": lower_is_better,
        "test_value": value,
        "baseline_value": predictors.baseline_score(train_y, test_y, label_kind, num_outputs, pixels_per_unit),
        "train_examples": len(train_x),
        "validation_examples": len(val_x),
        "test_examples": len(test_x),
        "best_val_loss": float(np.min([r["val_loss"] for r in results])),
    }


def build_parser(prog="python -m tuning.search"):
    parser = cli.OneLineParser(
        prog=prog,
        description="KerasTuner search of the first paper's predictor MLPs on a run's embeddings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run", help="a train.py output directory, or its embeddings.npz")
    parser.add_argument("--epochs", type=int, default=500, help="maximum epochs per trial")
    parser.add_argument("--max-trials", type=int, default=None, help="stop after N trials (default: the whole space)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help=f"tuner project folder (default: RUN/{SEARCH_DIR})")
    parser.add_argument("--overwrite", action="store_true", help="start the search afresh")
    return parser


def run(args):
    """Searches the predictors of one run's embeddings and writes the result next to them."""
    run_dir = args.run if os.path.isdir(args.run) else os.path.dirname(os.path.abspath(args.run))
    *parts, problem = load_embeddings(args.run)
    result = search_predictors(
        *parts,
        **problem,
        directory=args.out or os.path.join(run_dir, SEARCH_DIR),
        epochs=args.epochs,
        max_trials=args.max_trials,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    with open(os.path.join(run_dir, RESULT_FILE), "w") as f:
        json.dump(result, f, indent=2)
    unit = " px" if result["test_metric"] == "pixel_error" else ""
    print(
        f"best of {len(result['predictors'])} trials: {result['chosen']} "
        f"(val loss {result['best_val_loss']:.4g}); test {result['test_metric']} {result['test_value']:.4f}{unit}"
    )


def main(argv=None, prog="python -m tuning.search"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
