"""Compares finished runs in one table: `keras-pae report DIR [DIR ...]`.

Reads each run's `summary.json` (no TensorFlow) and prints a Markdown table of
the predictors' test metric next to the training time per epoch, the two
results of the feature-prediction paper (Table I, Figs. 6-8).
"""

import json
import os
import sys

from keras_pae.core import cli
from keras_pae.core.tables import markdown_table


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
    rows = []
    for s in summaries:
        seconds = [t for t in s["seconds_per_epoch"] if t is not None]
        # The first epoch includes tracing; the median is the steady speed.
        per_epoch = sorted(seconds)[len(seconds) // 2] if seconds else float("nan")
        rows.append((
            s["procedure"], s["dataset"], s["z_dim"], f"{s['gamma']:g}", _metric(s), _metric(s, "baseline_value"),
            f"{per_epoch:.1f}", f"{s['epochs_run']} ({s['best_epoch']})",
        ))
    header = ("procedure", "dataset", "z", "gamma", "test metric", "without embedding", "seconds/epoch", "epochs (best)")
    return markdown_table(header, rows)


def build_parser(prog="python -m keras_pae.perceptual.report"):
    parser = cli.OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run directories")
    return parser


def run(args):
    print(table([load_summary(run) for run in args.runs]))


def main(argv=None, prog="python -m keras_pae.perceptual.report"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
