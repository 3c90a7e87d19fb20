"""Compares finished runs in one table: `python -m keras_pae.report DIR [DIR ...]`.

Reads each run's `summary.json` (no TensorFlow) and prints a Markdown table of
the predictors' test metric next to the training time per epoch, the two
results of the feature-prediction paper (Table I, Figs. 6-8).
"""

import json
import os
import sys


def load_summary(run_dir):
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} has no summary.json; is it a finished run directory?")
    with open(path) as f:
        return json.load(f)


def _metric(summary, key="test_value"):
    predictors = summary.get("predictors")
    if not predictors or key not in predictors:
        return "n/a"
    if predictors["test_metric"] == "pixel_error":
        return f"{predictors[key]:.2f} px"
    return f"{predictors[key]:.4f} {predictors['test_metric']}"


def table(summaries):
    """A Markdown table with one row per run summary.

    "without embedding" is the metric of predicting the mean training label
    (`predictors.baseline_score`): what an embedding has to beat.
    """
    rows = [
        "| procedure | dataset | z | gamma | test metric | without embedding | seconds/epoch | epochs (best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        seconds = [t for t in s["seconds_per_epoch"] if t is not None]
        # The first epoch includes tracing; the median is the steady speed.
        per_epoch = sorted(seconds)[len(seconds) // 2] if seconds else float("nan")
        rows.append(
            f"| {s['procedure']} | {s['dataset']} | {s['z_dim']} | {s['gamma']:g} | {_metric(s)} "
            f"| {_metric(s, 'baseline_value')} "
            f"| {per_epoch:.1f} | {s['epochs_run']} ({s['best_epoch']}) |"
        )
    return "\n".join(rows)


def main(argv=None):
    from keras_pae.cli import OneLineParser

    parser = OneLineParser(prog="python -m keras_pae.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run directories")
    args = parser.parse_args(argv)
    try:
        print(table([load_summary(run) for run in args.runs]))
    except FileNotFoundError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
