"""The experiment grid: every (procedure, z, gamma, repetition), resumable, on one or many machines.

    keras-pae experiment --dataset lunarlander --procedures all \\
        --z-dims 64,128,256 --gammas 0 --repetitions 4 --out DIR [train.py flags]

Feature-prediction paper, Section VI and Table I. Each grid
point is one `train.py` run in `DIR/runs/<name>/`; repetition r trains with
seed `--seed + r` on the same data. The grid is a KerasTuner `GridSearch`
oracle whose trials are the points, so KerasTuner's chief/worker mode spreads
it over machines (see docs/perceptual.md): set `KERASTUNER_TUNER_ID` (`chief`,
`tuner0`, `tuner1`, ...), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`
and start the same command everywhere. A rerun skips finished points and
resumes interrupted ones. At the end (single process, or the chief), the
runs are collected into `DIR/results.csv`, `DIR/report.md` and plots.
While the grid runs, `DIR/features/` holds the loss network's features of
the training images, computed once for all its runs.
"""

import argparse
import contextlib
import csv
import dataclasses
import json
import os
import sys
import time

import keras_tuner
import numpy as np
from keras_tuner.src.distribute import utils as distribute

from keras_pae.core import cli
from keras_pae.core.devices import cpu_kind, process_seconds
from keras_pae.core.plots import pyplot, save_image_grid
from keras_pae.core.runs import INCOMPLETE_SUFFIX
from keras_pae.core.tables import markdown_table
from keras_pae.perceptual import feature_cache, training
from keras_pae.perceptual.cli import add_train_arguments, config_from_args
from keras_pae.perceptual.plots import test_images
from keras_pae.perceptual.procedures import PROCEDURES, Procedure

RUNS_DIR = "runs"
# The loss network's features of the training images, shared by the runs (removed when the grid ends).
FEATURES_DIR = "features"
TUNER_PROJECT = "grid"
RESULTS_FILE = "results.csv"
REPORT_FILE = "report.md"
TIME_PLOT = "metric_vs_training_time.png"
RECONSTRUCTION_PLOT = "reconstructions.png"
# One line per training actually started (not per reused run): which tuner ran which point.
TRAINING_LOG = "trainings.log"


@dataclasses.dataclass
class Grid:
    """The grid's axes; every combination is one run.

    Args:
        procedures: procedure names.
        z_dims: latent sizes.
        gammas: KL weights (0 = plain autoencoder).
        repetitions: runs per point, seeds `seed + r`.
    """

    procedures: tuple
    z_dims: tuple
    gammas: tuple
    repetitions: int

    def hyperparameters(self):
        hp = keras_tuner.HyperParameters()
        hp.Choice("procedure", list(self.procedures))
        hp.Choice("z_dim", list(self.z_dims))
        hp.Choice("gamma", list(self.gammas))
        hp.Choice("repetition", list(range(self.repetitions)))
        return hp

    def __len__(self):
        return len(self.procedures) * len(self.z_dims) * len(self.gammas) * self.repetitions


def point_config(base, values):
    """The `TrainConfig` of one grid point (`values`: the trial's hyperparameters)."""
    config = dataclasses.replace(
        base,
        procedure=values["procedure"],
        z_dim=int(values["z_dim"]),
        gamma=float(values["gamma"]),
        seed=base.seed + int(values["repetition"]),
        out=None,
    )
    return config


def run_dir(out, config):
    return os.path.join(out, RUNS_DIR, config.run_name)


def run_point(config, out, tuner_id="local", verbose=0):
    """Trains one grid point unless it is finished; resumes it if interrupted.

    The loss network's features of the training images are cached once for
    every run of this process (`features_dir`): the grid's runs share their
    images.

    Returns:
        `(summary, trained)`: the run's summary and whether this call trained.
    """
    directory = run_dir(out, config)
    config = dataclasses.replace(config, out=directory)
    summary_path = os.path.join(directory, "summary.json")
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            return json.load(f), False
    resume = os.path.isdir(directory + INCOMPLETE_SUFFIX)
    with open(os.path.join(out, TRAINING_LOG), "a") as f:
        f.write(f"{tuner_id} {config.run_name}\n")
    return training.train(config, resume=resume, verbose=verbose, features_dir=features_dir(out, tuner_id)), True


def features_dir(out, tuner_id):
    """The feature cache of one process's runs (each worker has its own)."""
    return os.path.join(out, FEATURES_DIR, tuner_id)


def _objective(summary):
    """What the oracle records: the chosen predictor's validation loss, else the autoencoder's."""
    predictors = summary.get("predictors")
    if predictors:
        return min(p["val_loss"] for p in predictors["predictors"])
    return summary["best_val_loss"]


def _grid_tuner(base, grid, out, verbose):
    class GridTuner(keras_tuner.engine.base_tuner.BaseTuner):
        """Runs a grid point per trial; KerasTuner hands the points out."""

        trained = 0

        def run_trial(self, trial, *args, **kwargs):
            config = point_config(base, trial.hyperparameters.values)
            if verbose:
                print(f"[{self.tuner_id}] {config.run_name}")
            summary, trained = run_point(config, out, self.tuner_id, "auto" if verbose else 0)
            GridTuner.trained += int(trained)
            return {"predictor_val_loss": _objective(summary)}

    oracle = keras_tuner.oracles.GridSearchOracle(
        objective=keras_tuner.Objective("predictor_val_loss", "min"),
        hyperparameters=grid.hyperparameters(),
        allow_new_entries=False,
        tune_new_entries=False,
        # A failing point is a bug to see, not something to retry blindly.
        max_consecutive_failed_trials=1,
    )
    return GridTuner(oracle, directory=out, project_name=TUNER_PROJECT)


def run_grid(base, grid, out, verbose=1, started=None):
    """Runs every missing point of `grid` with `base`'s other settings, then the report.

    Args:
        base: a validated `TrainConfig` (its procedure, z, gamma and seed are
            overridden per point; `seed` is the first repetition's).
        grid: the `Grid`.
        out: the experiment folder.
        verbose: 0 silent, 1 one line per point plus `fit`'s per-epoch lines.
        started: the `time.perf_counter()` reading the printed wall time counts
            from; None counts from this call.

    Returns:
        A dict: points trained by this process, and the report's rows (None
        on a worker, which leaves the report to the chief).
    """
    start = time.perf_counter() if started is None else started
    os.makedirs(os.path.join(out, RUNS_DIR), exist_ok=True)
    _check_same_experiment(base, grid, out)
    tuner = _grid_tuner(base, grid, out, verbose)
    tuner.search()
    feature_cache.remove(features_dir(out, tuner.tuner_id))
    with contextlib.suppress(OSError):  # another worker's cache is still there
        os.rmdir(os.path.join(out, FEATURES_DIR))
    if distribute.has_chief_oracle() and not distribute.is_chief_oracle():
        return {"trained": tuner.trained, "rows": None}
    rows = collect(base, grid, out)
    write_results(rows, os.path.join(out, RESULTS_FILE))
    with open(os.path.join(out, REPORT_FILE), "w") as f:
        f.write(report_markdown(rows, base))
    plot_metric_vs_time(rows, os.path.join(out, TIME_PLOT))
    plot_reconstructions(rows, base, os.path.join(out, RECONSTRUCTION_PLOT))
    if verbose:
        minutes, seconds = divmod(round(time.perf_counter() - start), 60)
        print(report_markdown(rows, base))
        print(
            f"{tuner.trained} of {len(grid)} runs trained now, in {minutes} min {seconds} s on {cpu_kind()}; "
            f"wrote {os.path.join(out, REPORT_FILE)}"
        )
    return {"trained": tuner.trained, "rows": rows}


def _check_same_experiment(base, grid, out):
    """Refuses to mix runs of different settings in one folder."""
    path = os.path.join(out, "experiment.json")
    settings = {"base": dataclasses.replace(base, out=None).to_dict(), "grid": dataclasses.asdict(grid)}
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as on disk
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        differing = sorted(
            k for part in ("base", "grid") for k in settings[part] if saved[part].get(k) != settings[part][k]
        )
        if differing:
            raise ValueError(
                f"{out} holds an experiment with different {', '.join(differing)}; "
                "use the same flags or another --out."
            )
    else:
        with open(path, "w") as f:
            json.dump(settings, f, indent=2)


def collect(base, grid, out):
    """One row per finished run of the grid, in grid order."""
    rows = []
    for procedure in grid.procedures:
        for z_dim in grid.z_dims:
            for gamma in grid.gammas:
                for repetition in range(grid.repetitions):
                    values = dict(procedure=procedure, z_dim=z_dim, gamma=gamma, repetition=repetition)
                    config = point_config(base, values)
                    path = os.path.join(run_dir(out, config), "summary.json")
                    if not os.path.isfile(path):
                        continue
                    with open(path) as f:
                        summary = json.load(f)
                    seconds = [s for s in summary["seconds_per_epoch"] if s is not None]
                    predictors = summary.get("predictors") or {}
                    rows.append(
                        {
                            **values,
                            "seed": config.seed,
                            "epochs_run": summary["epochs_run"],
                            "best_epoch": summary["best_epoch"],
                            "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else float("nan"),
                            "train_seconds": sum(seconds),
                            "best_val_loss": summary["best_val_loss"],
                            "test_metric": predictors.get("test_metric", ""),
                            "test_value": predictors.get("test_value", float("nan")),
                            "baseline_value": predictors.get("baseline_value", float("nan")),
                            "chosen_predictor": json.dumps(predictors.get("chosen")),
                            "run": os.path.relpath(run_dir(out, config), out),
                        }
                    )
    return rows


def write_results(rows, path):
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values):
    """`(mean, sample std)`; the std is None for fewer than two values."""
    values = np.asarray(values, float)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def _cell(values, digits):
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def report_markdown(rows, base=None):
    """Table I of the feature-prediction paper: mean ± sample std per procedure and z, and time per epoch.

    Args:
        rows: `collect`'s rows.
        base: the grid's `TrainConfig`, to name the data it used.
    """
    if not rows:
        return "# Experiment report\n\nNo finished runs yet.\n"
    metric = rows[0]["test_metric"] or "best_val_loss"
    key = "test_value" if rows[0]["test_metric"] else "best_val_loss"
    unit = " (pixels, lower is better)" if metric == "pixel_error" else ""
    digits = 2 if metric == "pixel_error" else 4
    z_dims = sorted({r["z_dim"] for r in rows})
    lines = ["# Experiment report", ""]
    for gamma in sorted({r["gamma"] for r in rows}):
        for title, field, places in ((f"Test {metric}{unit}", key, digits), ("Training seconds per epoch", "seconds_per_epoch", 1)):
            table = []
            for procedure in dict.fromkeys(r["procedure"] for r in rows):
                cells = []
                for z in z_dims:
                    values = [r[field] for r in rows if (r["procedure"], r["z_dim"], r["gamma"]) == (procedure, z, gamma)]
                    cells.append(_cell(values, places) if values else "—")
                table.append((procedure, *cells))
            header = ("procedure", *(f"z = {z}" for z in z_dims))
            lines += [f"## {title}, gamma = {gamma:g}", "", markdown_table(header, table), ""]
    repetitions = max(r["repetition"] for r in rows) + 1
    seeds = ", ".join(str(seed) for seed in sorted({r["seed"] for r in rows}))
    data = f" on {base.dataset}, data seed {base.data_seed}" if base is not None else ""
    lines.append(
        f"Mean ± sample standard deviation over up to {repetitions} repetitions (training seeds {seeds}){data}; "
        f"{len(rows)} runs."
    )
    baselines = [float(r["baseline_value"]) for r in rows if r["test_metric"] and r.get("baseline_value") is not None]
    baselines = [b for b in baselines if b == b]  # runs from before the baseline existed have NaN
    if baselines:
        lines += ["", f"Without the embedding (predicting the mean training label): {mean_std(baselines)[0]:.{digits}f}."]
    return "\n".join(lines) + "\n"


def plot_metric_vs_time(rows, path):
    """Test metric against total training time, one colour per procedure (Figs 6-8)."""
    plt = pyplot()
    rows = [r for r in rows if r["test_metric"]]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for procedure in dict.fromkeys(r["procedure"] for r in rows):
        mine = [r for r in rows if r["procedure"] == procedure]
        ax.scatter([r["train_seconds"] for r in mine], [r["test_value"] for r in mine], label=procedure, alpha=0.8)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test pixel error (px)" if rows[0]["test_metric"] == "pixel_error" else f"test {rows[0]['test_metric']}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reconstructions(rows, base, path, images=8):
    """Test images and their reconstructions by each image-decoding procedure (first run of each)."""
    decoding = {}
    for r in rows:
        if Procedure.parse(r["procedure"]).decoder == "image":
            decoding.setdefault(r["procedure"], r)
    if not decoding:
        return
    originals = test_images(base, images)
    grid = [("original", originals)]
    for procedure, row in decoding.items():
        model = training.load_run(os.path.join(os.path.dirname(path), row["run"]))
        grid.append((f"{procedure} z={row['z_dim']}", model(originals)))
    save_image_grid(grid, path)


def _int_list(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _float_list(text):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _procedures(text):
    if text == "all":
        return PROCEDURES
    return tuple(Procedure.parse(p).name for p in text.split(","))


def build_parser(prog="python -m keras_pae.perceptual.experiment"):
    parser = cli.OneLineParser(
        prog=prog,
        description="Train every (procedure, z, gamma, repetition) missing from --out and write results.csv, report.md and plots.",
    )
    add_train_arguments(parser, grid_axes=False)
    parser.add_argument("--procedures", default="all", help=f"comma-separated, or all ({', '.join(PROCEDURES)})")
    parser.add_argument("--z-dims", type=_int_list, default=(64, 128, 256), help="comma-separated latent sizes (default: 64,128,256)")
    parser.add_argument("--gammas", type=_float_list, default=(0.0,), help="comma-separated KL weights (default: 0)")
    parser.add_argument("--repetitions", type=int, default=4, help="runs per point, seeds --seed + r (default: %(default)s)")
    parser.add_argument("--out", required=True, help="experiment folder; rerunning continues it")
    return parser


def run(args):
    """Runs the grid the flags describe."""
    procedures = _procedures(args.procedures)
    if args.repetitions < 1:
        raise ValueError(f"--repetitions must be a positive integer; got {args.repetitions}.")
    if any(g < 0 for g in args.gammas):
        raise ValueError(f"--gammas must be >= 0; got {args.gammas}.")
    base = config_from_args(args)
    base.out = None
    base.validate()
    grid = Grid(procedures, args.z_dims, args.gammas, args.repetitions)
    since_start = process_seconds()  # the wall time then counts Python's and TensorFlow's start-up too
    started = None if since_start is None else time.perf_counter() - since_start
    run_grid(base, grid, os.path.abspath(args.out), started=started)


def main(argv=None, prog="python -m keras_pae.perceptual.experiment"):
    return cli.main(build_parser(prog), run, argv, "rerun the same command to continue.")


if __name__ == "__main__":
    sys.exit(main())
