"""The study's results: table, transfer probes, SVCCA, figures and report.

Bottleneck paper, Section 4 (Figs. 1-4). Reads what each finished
configuration saved (history, codes of the probe images, reconstructions),
so it reruns in seconds without loading a model.
"""

import csv
import json
import os

import numpy as np

from keras_pae.bottleneck import plots, svcca, transfer
from keras_pae.bottleneck.geometry import RECONSTRUCTION_EXAMPLES, RUNS_DIR, run_name
from keras_pae.core.progress import Progress
from keras_pae.core.tables import markdown_table

RESULT_COLUMNS = (
    "name", "size", "compression", "height", "width", "channels", "trainable_params", "epochs",
    "train_loss", "test_loss", "best_test_loss", "best_test_epoch", "seconds_per_epoch",
)


def label(summary):
    return "x".join(str(v) for v in summary["bottleneck_shape"])


def _transfer(config, out, data, names, say):
    """Cross-validated probes on the codes of each part and on raw pixels (cached)."""
    path = os.path.join(out, "transfer.json")
    cached = {}
    if os.path.isfile(path):
        with open(path) as f:
            cached = json.load(f)
    kind = "class" if data.label_kind == "class" else "regression"
    parts = {
        part: labels[: config.probe_limit]
        for part, labels in (("train", data.train_labels), ("test", data.test_labels))
        if labels is not None
    }
    images = {"train": data.train, "test": data.test}
    results = {}
    for part, labels in parts.items():
        for name in ["pixels", *names]:
            key = f"{part}/{name}"
            if key in cached:
                results[key] = cached[key]
                continue
            if name == "pixels":
                features = images[part][: config.probe_limit]
            else:
                features = np.load(os.path.join(out, RUNS_DIR, name, f"codes_{part}.npy"))
            say(f"transfer: {kind} probe on {part} {name} ({features[0].size} features)")
            results[key] = transfer.cross_validate(
                features, labels, kind, num_classes=data.num_outputs if kind == "class" else None,
                folds=config.folds, weight_decay=config.weight_decay, seed=config.seed,
            )
            if kind == "class":
                results[key]["chance"] = transfer.chance_f1(labels, data.num_outputs)
            cached[key] = results[key]
            with open(path, "w") as f:
                json.dump(cached, f, indent=2)
    return results


def _svcca(config, out, data, summaries, names, say):
    """Pairwise DFT-SVCCA of the test codes (and the input images), cached."""
    path = os.path.join(out, "svcca.json")
    labels = ["input"] + [label(summaries[n]) for n in names]
    if os.path.isfile(path):
        with open(path) as f:
            cached = json.load(f)
        if cached["names"] == labels:
            return labels, np.array(cached["matrix"])
    representations = {"input": data.test[: config.probe_limit]}
    for name, shown in zip(names, labels[1:]):
        representations[shown] = np.load(os.path.join(out, RUNS_DIR, name, "codes_test.npy"))
    pairs = len(representations) * (len(representations) - 1) // 2
    progress = Progress(pairs, "SVCCA, pairs of representations", enabled=say is print)
    labels, matrix = svcca.similarity_matrix(
        representations, config.keep_variance, method="dft", progress=lambda done, _: progress.update(done)
    )
    progress.finish(pairs)
    with open(path, "w") as f:
        json.dump({"names": labels, "matrix": matrix.tolist(), "method": "dft", "keep_variance": config.keep_variance}, f, indent=2)
    return labels, matrix


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def analyse(config, out, data, summaries, say=print):
    """Writes results.csv, transfer.csv, svcca.csv, the figures and report.md; returns the summary."""
    names = [run_name(s, c) for s, c in config.configurations()]
    rows = []
    for name in names:
        s = summaries[name]
        seconds = [v for v in s["seconds_per_epoch"] if v is not None]
        rows.append([
            name, s["size"], s["compression"], *s["bottleneck_shape"], s["trainable_params"],
            s["epochs_run"], s["train_loss"], s["test_loss"], s["best_test_loss"], s["best_test_epoch"],
            float(np.mean(seconds)) if seconds else "",
        ])
    _write_csv(os.path.join(out, "results.csv"), RESULT_COLUMNS, rows)

    # Fig. 1: loss curves.
    runs = [
        dict(
            label=label(summaries[run_name(s, c)]), history=summaries[run_name(s, c)]["history"],
            size_index=config.sizes.index(s), compression_index=config.compressions.index(c),
            num_compressions=len(config.compressions),
        )
        for s, c in config.configurations()
    ]
    # What predicting the mean training image scores: a model above it has not
    # yet learned anything image-specific.
    mean_image_test_loss = float(np.mean(np.square(data.test - data.train.mean(axis=0))))
    plots.loss_curves(runs, os.path.join(out, "loss_curves.png"), title=config.dataset, floor=mean_image_test_loss)

    # Fig. 2: reconstructions of the first training and test images.
    k = RECONSTRUCTION_EXAMPLES
    size_rows = [f"size {s}" for s in config.sizes]
    recons = {}
    for s in config.sizes:
        for c in config.compressions:
            recons[(f"size {s}", c)] = np.load(os.path.join(out, RUNS_DIR, run_name(s, c), "reconstructions.npy"))
    for part, originals, start in (("train", data.train[:k], 0), ("test", data.test[:k], k)):
        plots.reconstruction_grid(
            originals, {key: value[start:start + len(originals)] for key, value in recons.items()},
            size_rows, list(config.compressions), os.path.join(out, f"reconstructions_{part}.png"),
            title=f"{config.dataset} {part} images: input, then reconstructions by bottleneck size and compression",
        )

    # Fig. 3: transfer.
    results = _transfer(config, out, data, names, say)
    transfer_rows = []
    parts = sorted({key.split("/")[0] for key in results}, key=["train", "test"].index)
    shown = ["pixels"] + [label(summaries[n]) for n in names]
    matrix = np.full((len(parts), len(shown)), np.nan)
    for i, part in enumerate(parts):
        for j, name in enumerate(["pixels", *names]):
            r = results[f"{part}/{name}"]
            matrix[i, j] = r["mean"]
            transfer_rows.append([part, shown[j], r["metric"], r["mean"], r["std"], r.get("chance", "")])
    _write_csv(os.path.join(out, "transfer.csv"), ("part", "features", "metric", "mean", "std", "chance"), transfer_rows)
    metric = results[next(iter(results))]["metric"] if results else None
    if results:
        plots.heatmap(
            matrix - matrix[:, :1], [f"CAE {p} data" for p in parts], shown,
            os.path.join(out, "transfer.png"),
            title=f"{config.dataset}: {config.folds}-fold {metric} minus the raw-pixel baseline",
            fmt="{:+.3f}", cmap="RdBu_r" if metric == "macro_f1" else "RdBu", center=0.0,
        )

    # Fig. 4: SVCCA.
    svcca_labels, similarity = _svcca(config, out, data, summaries, names, say)
    _write_csv(
        os.path.join(out, "svcca.csv"), ["", *svcca_labels],
        [[name, *row] for name, row in zip(svcca_labels, similarity.tolist())],
    )
    plots.heatmap(
        similarity, svcca_labels, svcca_labels, os.path.join(out, "svcca.png"),
        title=f"{config.dataset}: SVCCA (DFT, {config.keep_variance:.0%} variance) of test codes",
    )

    summary = {
        "dataset": config.dataset,
        "mean_image_test_loss": mean_image_test_loss,
        "configurations": {n: {k: v for k, v in summaries[n].items() if k != "history"} for n in names},
        "test_loss_by_size_and_compression": {
            f"size {s}": {c: summaries[run_name(s, c)]["test_loss"] for c in config.compressions}
            for s in config.sizes
        },
        "transfer": results,
        "svcca": {"names": svcca_labels, "matrix": similarity.tolist()},
        "config": config.to_dict(),
    }
    summary["findings"] = findings(config, summaries, similarity, svcca_labels)
    summary["findings"]["above_mean_image_loss"] = [
        n for n in names if summaries[n]["test_loss"] >= mean_image_test_loss
    ]
    write_report(config, out, summary, results, parts, shown, names)
    return summary


def findings(config, summaries, similarity, svcca_labels):
    """Whether size matters more than channels, measured on the final test losses.

    The spread due to size is the mean over compressions of the range of
    log test loss across sizes; the spread due to channels the mean over sizes
    of its range across compressions.
    """
    log_loss = np.log([[summaries[run_name(s, c)]["test_loss"] for c in config.compressions] for s in config.sizes])
    by_size = float(np.mean(np.ptp(log_loss, axis=0))) if len(config.sizes) > 1 else None
    by_channels = float(np.mean(np.ptp(log_loss, axis=1))) if len(config.compressions) > 1 else None
    result = {"log_test_loss_range_across_sizes": by_size, "log_test_loss_range_across_channels": by_channels}
    if by_size is not None and by_channels is not None:
        result["size_matters_more_than_channels"] = by_size > by_channels
    # SVCCA: same-size pairs against different-size pairs (the diagonal blocks of Fig. 4).
    sizes = [None] + [summaries[run_name(s, c)]["size"] for s, c in config.configurations()]
    same, different = [], []
    for i in range(1, len(sizes)):
        for j in range(i + 1, len(sizes)):
            (same if sizes[i] == sizes[j] else different).append(similarity[i, j])
    result["svcca_mean_same_size"] = float(np.mean(same)) if same else None
    result["svcca_mean_different_size"] = float(np.mean(different)) if different else None
    return result


def write_report(config, out, summary, results, parts, shown, names):
    f = summary["findings"]
    lines = [
        f"# Bottleneck study: {config.dataset}",
        "",
        f"{len(names)} CAEs, {config.epochs} epochs each, seed {config.seed}, images padded to "
        f"{config.image_size}x{config.image_size}, training limit {config.limit or 'all'}, "
        f"{config.test_limit} test images. Final test MSE (train MSE):",
        "",
    ]
    losses = []
    for s in config.sizes:
        cells = []
        for c in config.compressions:
            r = summary["configurations"][run_name(s, c)]
            cells.append(f"{'x'.join(map(str, r['bottleneck_shape']))}: {r['test_loss']:.5f} ({r['train_loss']:.5f})")
        losses.append((s, *cells))
    lines.append(markdown_table(("size", *(f"c = {c}" for c in config.compressions)), losses))
    lines += ["", f"Predicting the mean training image gives a test MSE of {summary['mean_image_test_loss']:.5f}."]
    above = f["above_mean_image_loss"]
    if above:
        lines.append(
            f"{len(above)} of {len(names)} configurations ({', '.join(above)}) are not yet below it: "
            "with so little training the comparison is about how fast each shape starts to learn, "
            "not about converged bottlenecks."
        )
    lines += ["", "Spread of log test loss across sizes (mean over channels): "
              f"{_fmt(f['log_test_loss_range_across_sizes'])}; across channels (mean over sizes): "
              f"{_fmt(f['log_test_loss_range_across_channels'])}."]
    if "size_matters_more_than_channels" in f and len(above) == len(names):
        lines.append("Whether size matters more than channels cannot be judged from models that all sit at the mean image.")
    elif "size_matters_more_than_channels" in f:
        verdict = "holds" if f["size_matters_more_than_channels"] else "does not hold"
        lines.append(f"The paper's finding (size matters more than channels) {verdict} here.")
    if results:
        table = [(part, *(f"{results[f'{part}/{n}']['mean']:.3f}" for n in ["pixels", *names])) for part in parts]
        lines += ["", f"Transfer ({config.folds}-fold, weight decay {config.weight_decay}):", "",
                  markdown_table(("part", *shown), table)]
        metric = results[next(iter(results))]["metric"]
        lines.append(f"\nMetric: {metric}" + (f" (chance {results[next(iter(results))].get('chance', 0):.3f})." if metric == "macro_f1" else "."))
    lines += ["", f"SVCCA (DFT) of test codes: mean {_fmt(f['svcca_mean_same_size'])} between equal sizes, "
              f"{_fmt(f['svcca_mean_different_size'])} between different sizes (svcca.csv).", "",
              "Figures: loss_curves.png, reconstructions_train.png, reconstructions_test.png, transfer.png, svcca.png."]
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"
