"""What the commands no other test runs write: report, retrain-decoder, search, pretrain-loss-network
and `python -m keras_pae.data NAME`, on tiny inputs (the retrained run: 80 LunarLander frames, 1 epoch)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_pae.data import lunarlander
from keras_pae.perceptual.config import TrainConfig
from keras_pae.perceptual.training import train


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _summary(tmp_path, name, **values):
    """A run directory holding only a summary.json: all the report reads."""
    summary = dict(
        procedure="I-F-FP", dataset="lunarlander", z_dim=64, gamma=0.0, epochs_run=12, best_epoch=9,
        seconds_per_epoch=[9.0, 2.5, 2.0, 3.0], predictors=None,
    )
    summary.update(values)
    (tmp_path / name).mkdir()
    (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    return str(tmp_path / name)


def test_report_prints_one_row_per_summary(tmp_path, capsys):
    from keras_pae.perceptual.report import main

    positions = _summary(
        tmp_path, "a", predictors={"test_metric": "pixel_error", "test_value": 3.14159, "baseline_value": 11.5},
    )
    classes = _summary(
        tmp_path, "b", procedure="F-F-FP", dataset="svhn", z_dim=128, gamma=0.01, epochs_run=50, best_epoch=50,
        seconds_per_epoch=[4.0, None, 1.25], predictors={"test_metric": "accuracy", "test_value": 0.81234, "baseline_value": 0.1},
    )
    assert main([positions, classes]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4  # header, rule, two runs
    assert _cells(lines[0]) == [
        "procedure", "dataset", "z", "gamma", "test metric", "without embedding", "seconds/epoch", "epochs (best)",
    ]
    # seconds/epoch is the median epoch (the first one includes tracing); None (not measured) is skipped.
    assert _cells(lines[2]) == ["I-F-FP", "lunarlander", "64", "0", "3.14 px", "11.50 px", "3.0", "12 (9)"]
    assert _cells(lines[3]) == ["F-F-FP", "svhn", "128", "0.01", "0.8123 accuracy", "0.1000 accuracy", "4.0", "50 (50)"]
    assert main([_summary(tmp_path, "c")]) == 0  # no predictors evaluated
    assert _cells(capsys.readouterr().out.strip().splitlines()[-1])[4:6] == ["n/a", "n/a"]


def test_retrain_decoder_writes_the_comparison(tmp_path, capsys):
    from keras_pae.perceptual.retrain_decoder import GRID_FILE, REPORT_FILE, RESULT_FILE, main

    run = tmp_path / "run"
    config = TrainConfig(
        procedure="I-I-PW", z_dim=4, limit=80, steps=40, batch_size=32, epochs=1, loss_weights="random",
        predictor_epochs=0, out=str(run),
    )
    train(config, verbose=0)
    out = tmp_path / "retrained"
    assert main([str(run), "--epochs", "1", "--out", str(out)]) == 0
    [result] = json.loads((out / RESULT_FILE).read_text())
    assert (result["run"], result["procedure"], result["z_dim"]) == (str(run), "I-I-PW", 4)
    assert result["l1_before"] > 0 and result["l1_after"] > 0 and result["relative_to_best"] == 1.0
    report = (out / REPORT_FILE).read_text()
    assert report.strip() in capsys.readouterr().out
    assert _cells(report.strip().splitlines()[-1]) == [
        "run", "I-I-PW", "4", f"{result['l1_before']:.4f}", f"{result['l1_after']:.4f}", "100%",
    ]
    # The grid: originals, then the run before and after retraining, 8 test frames each (1.1 x 1.15 in, 100 dpi).
    with Image.open(out / GRID_FILE) as grid:
        width, height = grid.size
    assert abs(width - 880) <= 1 and abs(height - 345) <= 1


def test_search_main_writes_the_best_of_its_trials(tmp_path, capsys):
    from tuning.search import EMBEDDINGS_FILE, RESULT_FILE, main, save_embeddings

    # Positions that are a linear function of the embedding, plus a little noise.
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 2)) * 0.2

    def part(n):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        return x, (x @ mixing + 0.01 * rng.normal(size=(n, 2))).astype(np.float32)

    (train_x, train_y), validation, (test_x, test_y) = part(200), part(60), part(80)
    run = tmp_path / "run"
    run.mkdir()
    save_embeddings(str(run / EMBEDDINGS_FILE), (train_x, train_y), validation, (test_x, test_y), "position", 2, None)
    assert main([str(run), "--epochs", "2", "--max-trials", "2"]) == 0
    result = json.loads((run / RESULT_FILE).read_text())
    losses = [t["val_loss"] for t in result["predictors"]]
    assert len(losses) == 2 and result["chosen"] == result["predictors"][int(np.argmin(losses))]["hyperparameters"]
    assert (result["train_examples"], result["validation_examples"], result["test_examples"]) == (200, 60, 80)
    # Without the embedding: every test point gets the mean training position (LunarLander's 32 px per unit).
    baseline = np.mean(np.linalg.norm(test_y - train_y.mean(axis=0), axis=1)) * lunarlander.PIXELS_PER_UNIT
    assert result["test_metric"] == "pixel_error" and result["baseline_value"] == pytest.approx(baseline, rel=1e-5)
    assert (run / "predictor_search").is_dir()
    out = capsys.readouterr().out
    assert out.startswith("best of 2 trials:") and f"test pixel_error {result['test_value']:.4f} px" in out


def test_pretrain_loss_network_main_saves_a_loadable_trunk(tmp_path, capsys, fashion_mnist_dir):
    import keras

    from keras_pae import alexnet_features
    from keras_pae.perceptual.pretrain_loss_network import main

    out = tmp_path / "fm.weights.h5"
    argv = ["--data-dir", fashion_mnist_dir, "--limit", "40", "--epochs", "1", "--batch-size", "20", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads((tmp_path / "fm.json").read_text())
    assert (record["train_images"], record["test_images"], record["epochs"]) == (40, 40, 1)
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"head test accuracy {record['head_test_accuracy']:.4f} on 40 fashion_mnist test images; wrote {out}"
    )
    assert record["head_test_accuracy"] * 40 == pytest.approx(round(record["head_test_accuracy"] * 40), abs=1e-4)
    images = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    trained = keras.ops.convert_to_numpy(alexnet_features(weights=str(out))(images))
    random = keras.ops.convert_to_numpy(alexnet_features(weights="random")(images))
    assert trained.shape == (2, 7, 7, 192) and np.abs(trained - random).max() > 1e-3
    # A bad destination is one line, before any training.
    assert main([*argv[:-1], str(tmp_path / "fm.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must end in .weights.h5" in err


def test_data_command_reports_each_part(fashion_mnist_dir, capsys):
    from keras_pae.data.__main__ import main

    # The fixture holds 160 training and 80 test images; autoencoder and predictor parts are the training set.
    assert main(["fashion_mnist", "--data-dir", fashion_mnist_dir]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "autoencoder: 160 images of 28x28x1 uint8, labels class index",
        "predictor: 160 images of 28x28x1 uint8, labels class index",
        "test: 80 images of 28x28x1 uint8, labels class index",
    ]
    assert main(["fashion_mnist", "--data-dir", fashion_mnist_dir, "--limit", "30"]) == 0
    assert [line.split(":")[1].split(" images")[0] for line in capsys.readouterr().out.splitlines()] == [" 30"] * 3
