"""The bottleneck study (bottleneck paper): CAE geometry, SVCCA, linear probes, the runner."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pae.bottleneck import networks, svcca, transfer
from keras_pae.bottleneck.bottleneck_autoencoder import BottleneckAutoencoder, build_bottleneck_autoencoder
from keras_pae.core import runs as core_runs
from tests.helpers import assert_round_trips, interrupt_fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = (32, 32, 1)


@pytest.mark.parametrize("size", networks.SIZES)
def test_bottleneck_shapes_and_constant_volume(size):
    volume = 32 * 32 * 1
    for compression in networks.COMPRESSIONS:
        side = 32 // 2 ** (6 - size)
        channels = int(volume * networks.parse_compression(compression)) // side**2
        assert networks.bottleneck_shape(IMAGE, size, compression) == (side, side, channels)
        encoder = networks.bottleneck_encoder(IMAGE, size, compression, residual_blocks=1)
        assert encoder.output_shape[1:] == (side, side, channels), (size, compression)
        # Every stage before the bottleneck (its conv and its residual blocks)
        # keeps the input's volume (paper Eq. 3).
        before = [l for l in encoder.layers if l.name[:5] in ("down1", "down2", "down3", "down4")]
        assert sum(l.name.endswith("_conv") for l in before) == 4 and len(before) > 4 * 8
        assert all(np.prod(l.output.shape[1:]) == volume for l in before), (size, compression)
        keras.backend.clear_session()


def test_strides_and_bad_arguments():
    assert networks.strides(1) == (2, 2, 2, 2, 2)
    assert networks.strides(3) == (2, 2, 2, 1, 1)
    with pytest.raises(ValueError, match="1, 2, 3"):
        networks.strides(4)
    with pytest.raises(ValueError, match="1/64"):
        networks.parse_compression("2")
    with pytest.raises(ValueError, match="28x28"):
        networks.bottleneck_shape((28, 28, 1), 1, "1")


def test_model_reconstructs_codes_vary_and_round_trips(tmp_path):
    # A 1x1 bottleneck skips instance norm (which would make it constant).
    model = build_bottleneck_autoencoder(IMAGE, 1, "1/16", residual_blocks=1)
    images = np.random.default_rng(0).random((4, *IMAGE), dtype=np.float32)
    reconstructions = np.asarray(model(images))
    codes = np.asarray(model.embedding_model()(images))
    assert codes.shape == (4, 1, 1, 64) and np.ptp(codes, axis=0).max() > 1e-3
    # The reconstruction is the decoder's image of that code: sigmoid pixels that change with the input.
    np.testing.assert_allclose(reconstructions, np.asarray(model.decoder(codes)), atol=1e-6)
    assert reconstructions.shape == (4, *IMAGE) and 0 < reconstructions.min() and reconstructions.max() < 1
    assert np.ptp(reconstructions, axis=0).max() > 1e-3
    assert float(model.compute_loss_value(images)) == pytest.approx(np.mean((images - reconstructions) ** 2), rel=1e-5)
    reloaded = assert_round_trips(model, images, tmp_path)
    assert isinstance(reloaded, BottleneckAutoencoder) and reloaded.compression == "1/16"


def _low_rank(rng, n=2000, rank=6, width=20):
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, width))


def test_svcca_identity_invertible_transform_and_noise():
    rng = np.random.default_rng(0)
    x = _low_rank(rng)  # exact rank 6: the 99% cut keeps the whole span
    transform = rng.normal(size=(20, 20)) + 5 * np.eye(20)
    assert svcca.svcca(x, x) == pytest.approx(1.0, abs=1e-6)
    assert svcca.svcca(x, x @ transform) == pytest.approx(1.0, abs=1e-6)
    full = rng.normal(size=(4000, 12))
    assert svcca.svcca(full, full @ transform[:12, :12], keep_variance=1.0) == pytest.approx(1.0, abs=1e-6)
    assert svcca.svcca(x, rng.normal(size=(2000, 20))) < 0.1
    # A 99% cut that drops real directions makes a transformed copy differ.
    assert svcca.svcca(full, full @ np.diag(np.linspace(1, 30, 12)), keep_variance=0.9) < 0.99


def test_dft_svcca_of_conv_maps():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3000, 4, 4, 3))
    mixed = maps @ (rng.normal(size=(3, 3)) + 3 * np.eye(3))
    assert svcca.dft_svcca(maps, maps) == pytest.approx(1.0, abs=1e-6)
    assert svcca.dft_svcca(maps, mixed) == pytest.approx(1.0, abs=1e-6)
    # Translation invariance, the reason for the DFT route.
    assert svcca.dft_svcca(maps, np.roll(maps, 1, axis=2)) == pytest.approx(1.0, abs=1e-6)
    assert svcca.dft_svcca(maps, rng.normal(size=(3000, 2, 2, 5))) < 0.1
    names, matrix = svcca.similarity_matrix({"a": maps, "b": mixed, "c": rng.normal(size=maps.shape)})
    assert names == ["a", "b", "c"] and np.allclose(matrix, matrix.T)
    assert matrix[0, 1] > 0.99 and matrix[0, 2] < 0.1


def _blobs(rng, n=1500, classes=4, width=8):
    labels = rng.integers(0, classes, n)
    return rng.normal(size=(classes, width))[labels] * 4 + rng.normal(size=(n, width)), labels


def test_probes_beat_chance_on_separable_data_and_not_on_shuffled_labels():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng)
    chance = transfer.chance_f1(y, 4)
    assert chance == pytest.approx(0.25, abs=0.01)
    assert transfer.cross_validate(x, y, "class")["mean"] > 0.95
    shuffled = transfer.cross_validate(x, rng.permutation(y), "class")
    assert abs(shuffled["mean"] - chance) < 0.05 and len(shuffled["folds"]) == 5
    targets = x[:, :2] @ np.array([[2.0, 0.0], [1.0, -1.0]]) + 3.0
    fitted = transfer.cross_validate(x, targets, "regression")["mean"]
    permuted = transfer.cross_validate(x, rng.permutation(targets), "regression")["mean"]
    assert fitted < 0.01 * targets.var(axis=0).mean()
    assert permuted == pytest.approx(targets.var(axis=0).mean(), rel=0.05)


def test_macro_f1():
    assert transfer.macro_f1([0, 0, 1, 1], [0, 0, 1, 1], 2) == 1.0
    # Class 0: P = 1/2, R = 1/2; class 1 likewise.
    assert transfer.macro_f1([0, 0, 1, 1], [0, 1, 1, 0], 2) == pytest.approx(0.5)
    assert transfer.macro_f1([0, 0, 0, 1], [0, 0, 0, 0], 2) == pytest.approx((6 / 7) / 2)


def _run(out, data_dir, *extra):
    return subprocess.run(
        [
            sys.executable, "-m", "keras_pae.bottleneck", "--dataset", "fashion_mnist", "--data-dir", data_dir, "--epochs", "1",
            "--limit", "96", "--test-limit", "64", "--probe-limit", "60", "--sizes", "1,3",
            "--compressions", "1/64,1/4", "--residual-blocks", "0", "--batch-size", "32", "--no-export",
            "--out", str(out), *extra,
        ],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


def test_tiny_study_writes_results_and_a_rerun_trains_nothing(tmp_path, fashion_mnist_dir):
    out = tmp_path / "study"
    first = _run(out, fashion_mnist_dir)
    assert first.returncode == 0, first.stderr
    names = ["s1_c1-64", "s1_c1-4", "s3_c1-64", "s3_c1-4"]
    for name in names:
        with open(out / "runs" / name / "history.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [0]
        assert all(float(r["val_loss"]) > 0 and float(r["loss"]) > 0 for r in rows)
    with open(out / "results.csv") as f:
        results = {r["name"]: r for r in csv.DictReader(f)}
    assert sorted(results) == sorted(names)
    assert (results["s3_c1-4"]["height"], results["s3_c1-4"]["channels"]) == ("4", "16")
    for figure in ("loss_curves", "reconstructions_train", "reconstructions_test", "transfer", "svcca"):
        assert (out / f"{figure}.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] == names
    assert set(summary["transfer"]) == {f"{p}/{n}" for p in ("train", "test") for n in ["pixels", *names]}
    matrix = np.array(summary["svcca"]["matrix"])
    assert matrix.shape == (5, 5) and np.allclose(np.diag(matrix), 1.0)
    report = (out / "report.md").read_text()
    assert "size matters more than channels" in report and "mean training image" in report
    assert summary["mean_image_test_loss"] > 0
    assert set(summary["findings"]["above_mean_image_loss"]) <= set(names)

    mtimes = {n: os.path.getmtime(out / "runs" / n / "history.csv") for n in names}
    second = _run(out, fashion_mnist_dir)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("finished earlier, skipped") == 4 and "Epoch" not in second.stdout
    assert json.loads((out / "summary.json").read_text())["trained"] == []
    assert {n: os.path.getmtime(out / "runs" / n / "history.csv") for n in names} == mtimes

    from keras_pae.bottleneck.study import StudyConfig, run_study

    saved = json.loads((out / "study.json").read_text())
    with pytest.raises(ValueError, match="different seed"):
        run_study(StudyConfig.from_dict({**saved, "seed": 1}), verbose=False)


def test_bad_flags_are_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_pae.bottleneck", "--image-size", "28", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "28x28" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()


def test_conv_on_a_1x1_map_equals_the_padded_3x3_conv():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1, 1, 8))
    narrow = keras.Model(inputs, networks._conv(inputs, 5, "c"))
    kernel, bias = narrow.get_weights()
    assert kernel.shape == (1, 1, 8, 5)
    wide = keras.layers.Conv2D(5, 3, padding="same")
    wide.build((None, 1, 1, 8))
    full = np.random.default_rng(0).normal(size=(3, 3, 8, 5)).astype(np.float32)
    full[1, 1] = kernel[0, 0]
    wide.set_weights([full, bias])
    x = np.random.default_rng(1).normal(size=(4, 1, 1, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(wide(x)), np.asarray(narrow(x)), atol=1e-5)


def test_an_interrupted_configuration_resumes(tmp_path, monkeypatch, capsys, fashion_mnist_dir):
    from keras_pae.bottleneck.study import StudyConfig, run_study
    from keras_pae.core.runs import read_history

    config = StudyConfig(
        epochs=2, limit=64, test_limit=32, probe_limit=30, sizes=(3,), compressions=("1/4",),
        residual_blocks=0, batch_size=32, export=False, data_dir=fashion_mnist_dir, out=str(tmp_path / "study"),
    )
    interrupt_fit(monkeypatch, core_runs, "s3_c1-4.incomplete")
    with pytest.raises(KeyboardInterrupt):
        run_study(config, verbose=False, analyse=False)
    monkeypatch.undo()
    runs = tmp_path / "study" / "runs"
    before = read_history(runs / "s3_c1-4.incomplete" / "history.csv")
    assert len(before) == 1 and not (runs / "s3_c1-4").exists()

    assert run_study(config, verbose=True, analyse=False)["trained"] == ["s3_c1-4"]
    assert "Resuming" in capsys.readouterr().out
    after = read_history(runs / "s3_c1-4" / "history.csv")
    assert [row["epoch"] for row in after] == [0, 1] and after[0] == before[0]
