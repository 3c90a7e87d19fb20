import hashlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from keras_pae import alexnet_features
from keras_pae.perceptual import loss_network as loss_network_module
from keras_pae.perceptual.convert_alexnet import convert_weights
from bench.torch_models import alexnet_features_torch


@pytest.fixture(scope="module")
def torch_checkpoint(tmp_path_factory):
    """A torchvision-format AlexNet checkpoint with random weights."""
    torch.manual_seed(0)
    features = alexnet_features_torch()
    path = tmp_path_factory.mktemp("ckpt") / "alexnet.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return features, path


def _torch_output(features, images):
    with torch.no_grad():
        out = torch.sigmoid(features(torch.from_numpy(images).permute(0, 3, 1, 2)))
    return out.permute(0, 2, 3, 1).numpy()  # NCHW -> NHWC


@pytest.mark.parametrize("size", [64, 96])
def test_matches_torch_reference(torch_checkpoint, size):
    features, path = torch_checkpoint
    images = np.random.default_rng(1).random((3, size, size, 3), dtype=np.float32)
    model = alexnet_features((size, size, 3), weights=str(path))
    expected = _torch_output(features, images)
    actual = keras.ops.convert_to_numpy(model(images))
    side = 7 if size == 64 else 11
    assert actual.shape == expected.shape == (3, side, side, 192)
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    # A weak check passes trivially if features sit at 0.5; these must vary.
    assert actual.std() > 1e-3


def test_output_sizes_and_frozen():
    assert alexnet_features((64, 64, 3), weights="random").output_shape == (None, 7, 7, 192)
    model = alexnet_features((96, 96, 3), weights="random")
    assert model.output_shape == (None, 11, 11, 192)
    assert model.trainable_weights == []
    out = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((2, 96, 96, 3))))
    assert out.min() >= 0.5 and out.max() < 1.0  # ReLU then sigmoid


def test_converted_file_equals_pth(torch_checkpoint, tmp_path):
    features, path = torch_checkpoint
    converted = tmp_path / "alexnet.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "keras_pae.perceptual.convert_alexnet", str(path), str(converted)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    images = np.random.default_rng(2).random((2, 64, 64, 3), dtype=np.float32)
    from_h5 = alexnet_features(weights=str(converted))(images)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(from_h5), _torch_output(features, images), atol=1e-5
    )


def test_imagenet_normalize_option(torch_checkpoint):
    features, path = torch_checkpoint
    images = np.random.default_rng(3).random((2, 64, 64, 3), dtype=np.float32)
    mean = np.array(loss_network_module.IMAGENET_MEAN, np.float32)
    std = np.array(loss_network_module.IMAGENET_STD, np.float32)
    model = alexnet_features(weights=str(path), imagenet_normalize=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images)),
        _torch_output(features, (images - mean) / std),
        atol=1e-5,
    )


def test_random_weights_are_seeded():
    images = np.random.default_rng(4).random((2, 64, 64, 3), dtype=np.float32)
    a = keras.ops.convert_to_numpy(alexnet_features(weights="random", seed=5)(images))
    b = keras.ops.convert_to_numpy(alexnet_features(weights="random", seed=5)(images))
    c = keras.ops.convert_to_numpy(alexnet_features(weights="random", seed=6)(images))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_imagenet_offline_gives_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(ValueError) as error:
        alexnet_features(weights="imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert "random" in message and ".pth" in message


def test_imagenet_uses_cached_converted_file(torch_checkpoint, tmp_path, monkeypatch):
    features, path = torch_checkpoint
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    from keras_pae.perceptual.convert_alexnet import convert

    convert(path, tmp_path / "models" / loss_network_module.CONVERTED_IMAGENET_FILE)
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("downloaded"))
    images = np.random.default_rng(5).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(alexnet_features(weights="imagenet")(images)),
        _torch_output(features, images),
        atol=1e-5,
    )


def test_download_checks_the_full_sha256(torch_checkpoint, tmp_path, monkeypatch):
    """keras.utils.get_file gets the whole digest and refuses a file with another one."""
    features, path = torch_checkpoint
    assert len(loss_network_module.IMAGENET_SHA256) == 64
    assert loss_network_module.IMAGENET_SHA256.startswith("7be5be79")  # torchvision's file name
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # The test checkpoint stands in for torchvision's at a file:// URL.
    monkeypatch.setattr(loss_network_module, "IMAGENET_URL", path.as_uri())
    calls = []
    real_get_file = keras.utils.get_file
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: calls.append(k) or real_get_file(*a, **k))
    with pytest.raises(ValueError, match="does not have SHA-256 7be5be791159") as error:
        alexnet_features(weights="imagenet")
    assert "\n" not in str(error.value)
    assert calls[0]["file_hash"] == loss_network_module.IMAGENET_SHA256
    assert not (tmp_path / "models" / loss_network_module.CONVERTED_IMAGENET_FILE).exists()

    # With the test checkpoint's own digest, the same download is converted and used.
    monkeypatch.setattr(loss_network_module, "IMAGENET_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    images = np.random.default_rng(6).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(alexnet_features(weights="imagenet")(images)),
        _torch_output(features, images),
        atol=1e-5,
    )
    assert (tmp_path / "models" / loss_network_module.CONVERTED_IMAGENET_FILE).exists()


# Run with PyTorch unimportable: `import torch` anywhere raises ImportError.
WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
import keras
import numpy as np
from keras_pae import alexnet_features
images = np.load(sys.argv[1])
for path in sys.argv[2:]:
    np.save(path + ".npy", keras.ops.convert_to_numpy(alexnet_features(weights=path)(images)))
assert sys.modules["torch"] is None
"""


def test_pth_files_load_without_pytorch(torch_checkpoint, tmp_path):
    """Both torch.save formats, read with torch blocked, give the features of the weights torch reads."""
    features, _ = torch_checkpoint
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    paths = []
    for fmt in ("zip", "legacy"):
        paths.append(tmp_path / f"alexnet_{fmt}.pth")
        torch.save(state, paths[-1], _use_new_zipfile_serialization=fmt == "zip")
    images = np.random.default_rng(7).random((2, 64, 64, 3), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(tmp_path / "images.npy"), *map(str, paths)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    for path in paths:
        # The reference: the same file read by torch.load, set into the Keras layers.
        model = alexnet_features(weights="random")
        trunk = model.get_layer("alexnet_trunk")
        read = {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
        for layer, values in convert_weights(read).items():
            trunk.get_layer(layer).set_weights(values)
        expected = keras.ops.convert_to_numpy(model(images))
        actual = np.load(f"{path}.npy")
        assert actual.std() > 1e-3
        np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0)


def test_bad_weight_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        alexnet_features(weights=str(tmp_path / "missing.weights.h5"))
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="corrupt.weights.h5"):
        alexnet_features(weights=str(corrupt))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="features"):
        alexnet_features(weights=str(wrong))
