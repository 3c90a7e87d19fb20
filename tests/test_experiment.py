import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_pae.perceptual.config import TrainConfig
from keras_pae.perceptual.experiment import (
    RECONSTRUCTION_PLOT,
    REPORT_FILE,
    RESULTS_FILE,
    TIME_PLOT,
    TRAINING_LOG,
    Grid,
    mean_std,
    report_markdown,
    run_grid,
)
from tests.helpers import interrupt_fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small but real: 6 LunarLander rollouts of 40 steps.
SMALL_FLAGS = [
    "--limit", "240", "--steps", "40", "--batch-size", "64", "--epochs", "1", "--loss-weights", "random",
]


def _base(**overrides):
    values = dict(limit=240, steps=40, batch_size=64, epochs=1, loss_weights="random", predictor_epochs=2)
    return TrainConfig(**{**values, **overrides}).validate()


def _read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_point_grid_writes_results_report_and_plots_and_rerun_trains_nothing(tmp_path):
    base = _base()
    grid = Grid(("I-I-PW", "I-F-FP"), (8,), (0.0,), 1)
    first = run_grid(base, grid, str(tmp_path), verbose=0)
    assert first["trained"] == 2
    rows = _read_rows(tmp_path / RESULTS_FILE)
    assert [(r["procedure"], r["z_dim"]) for r in rows] == [("I-I-PW", "8"), ("I-F-FP", "8")]
    assert all(float(r["test_value"]) > 0 and float(r["seconds_per_epoch"]) > 0 for r in rows)
    report = (tmp_path / REPORT_FILE).read_text()
    assert "| I-I-PW |" in report and "| I-F-FP |" in report and "z = 8" in report
    # Both runs see the same predictor data, so one baseline for the whole grid.
    assert rows[0]["baseline_value"] == rows[1]["baseline_value"]
    assert f"Without the embedding (predicting the mean training label): {float(rows[0]['baseline_value']):.2f}." in report
    for plot in (TIME_PLOT, RECONSTRUCTION_PLOT):
        with Image.open(tmp_path / plot) as image:
            assert image.size[0] > 100 and image.size[1] > 100

    again = run_grid(base, grid, str(tmp_path), verbose=0)
    assert again["trained"] == 0
    assert _read_rows(tmp_path / RESULTS_FILE) == rows
    assert len((tmp_path / TRAINING_LOG).read_text().splitlines()) == 2


def test_rerun_with_other_settings_is_refused(tmp_path):
    grid = Grid(("I-I-PW",), (8,), (0.0,), 1)
    (tmp_path / "runs").mkdir()
    from keras_pae.perceptual.experiment import _check_same_experiment

    _check_same_experiment(_base(), grid, str(tmp_path))
    with pytest.raises(ValueError, match="epochs"):
        _check_same_experiment(_base(epochs=3), grid, str(tmp_path))


def test_report_gives_mean_and_sample_std():
    rows = [
        dict(procedure="I-F-FP", z_dim=64, gamma=0.0, repetition=r, seed=5 + r, test_metric="pixel_error",
             test_value=v, seconds_per_epoch=2.0)
        for r, v in enumerate((6.0, 8.0, 10.0))
    ]
    mean, std = mean_std([6.0, 8.0, 10.0])
    assert (mean, std) == (8.0, 2.0)  # sample std (n - 1), as the paper reports
    report = report_markdown(rows, _base(data_seed=3))
    assert "| I-F-FP | 8.00 ± 2.00 |" in report
    assert "3 repetitions (training seeds 5, 6, 7) on lunarlander, data seed 3; 3 runs." in report


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_share_the_grid_and_run_every_point_once(tmp_path):
    port = _free_port()
    command = [
        sys.executable, "-m", "keras_pae.perceptual.experiment", "--procedures", "I-I-PW", "--z-dims", "4,8,16",
        "--repetitions", "1", "--predictor-epochs", "0", "--out", str(tmp_path), *SMALL_FLAGS,
    ]

    def start(tuner_id):
        env = {
            **os.environ,
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port),
        }
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    chief = start("chief")
    workers = [start("tuner0"), start("tuner1")]
    for process in [*workers, chief]:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    log = [line.split() for line in (tmp_path / TRAINING_LOG).read_text().splitlines()]
    points = sorted(name for _, name in log)
    assert len(points) == 3 and len(set(points)) == 3  # every point once, none twice
    assert {tuner for tuner, _ in log} <= {"tuner0", "tuner1"}  # the chief only serves
    rows = _read_rows(tmp_path / RESULTS_FILE)  # written by the chief at the end
    assert sorted(int(r["z_dim"]) for r in rows) == [4, 8, 16]
    assert np.all([float(r["best_val_loss"]) > 0 for r in rows])


def test_interrupted_point_resumes_and_repetitions_train_with_seed_plus_r(tmp_path, monkeypatch):
    from keras_pae.core.runs import read_history
    from keras_pae.perceptual import experiment, training

    base = _base(limit=80, batch_size=32, z_dim=4, epochs=2, predictor_epochs=0, seed=5)
    grid = Grid(("I-I-PW",), (4,), (0.0,), 2)
    names = {r: f"lunarlander_I-I-PW_z4_g0_s{5 + r}" for r in (0, 1)}
    # SavedModel exports and the reconstruction figure are checked elsewhere; here they only cost time.
    monkeypatch.setattr(keras.Model, "export", lambda model, directory, **kwargs: os.makedirs(directory))
    monkeypatch.setattr(experiment, "plot_reconstructions", lambda *args: None)
    with monkeypatch.context() as patch:
        interrupt_fit(patch, training, names[1] + ".incomplete")
        with pytest.raises(KeyboardInterrupt):
            run_grid(base, grid, str(tmp_path), verbose=0)
    staging = tmp_path / "runs" / f"{names[1]}.incomplete"
    before = read_history(staging / "history.csv")
    assert [row["epoch"] for row in before] == [0] and (staging / "backup").is_dir()
    finished_before = (tmp_path / "runs" / names[0] / "summary.json").is_file()

    again = run_grid(base, grid, str(tmp_path), verbose=0)
    assert again["trained"] == (1 if finished_before else 2)
    assert not staging.exists()
    resumed = tmp_path / "runs" / names[1]
    assert len((resumed / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs: epoch 0 not redone
    assert read_history(resumed / "history.csv")[0] == before[0]
    log = (tmp_path / TRAINING_LOG).read_text().split()
    assert log.count(names[1]) == 2 and log.count(names[0]) == 1  # started, then resumed; the other once

    rows = _read_rows(tmp_path / RESULTS_FILE)
    assert [(r["repetition"], r["seed"], r["epochs_run"]) for r in rows] == [("0", "5", "2"), ("1", "6", "2")]
    for r in (0, 1):
        summary = json.loads((tmp_path / "runs" / names[r] / "summary.json").read_text())
        assert summary["config"]["seed"] == 5 + r and summary["config"]["data_seed"] == base.data_seed
    # Two seeds, two trainings: the repetitions differ, so the report's spread is real.
    assert rows[0]["best_val_loss"] != rows[1]["best_val_loss"]
    assert " ± " in (tmp_path / REPORT_FILE).read_text()


def test_the_grid_computes_the_loss_network_features_once_for_its_runs(tmp_path, monkeypatch):
    from keras_pae.perceptual import experiment, feature_cache, training

    base = _base(limit=80, batch_size=32, z_dim=4, epochs=2, predictor_epochs=0)
    monkeypatch.setattr(keras.Model, "export", lambda model, directory, **kwargs: os.makedirs(directory))
    monkeypatch.setattr(experiment, "plot_reconstructions", lambda *args: None)
    computed = []
    compute = feature_cache.compute_features
    monkeypatch.setattr(feature_cache, "compute_features", lambda *args, **kwargs: computed.append(1) or compute(*args, **kwargs))
    run_grid(base, Grid(("I-F-FP", "I-I-PS"), (4,), (0.0,), 1), str(tmp_path / "grid"), verbose=0)
    assert len(computed) == 1
    assert os.listdir(tmp_path / "grid") and not (tmp_path / "grid" / experiment.FEATURES_DIR).exists()
    # The second run read the first one's features: it trains as it does alone.
    alone = training.train(dataclasses.replace(base, procedure="I-I-PS", out=str(tmp_path / "alone")), verbose=0)
    assert len(computed) == 2
    shared = json.loads((tmp_path / "grid" / "runs" / "lunarlander_I-I-PS_z4_g0_s0" / "summary.json").read_text())
    assert shared["best_val_loss"] == alone["best_val_loss"]
