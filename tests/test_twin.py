"""Twin runs: each procedure's Keras model against its PyTorch equivalent, step for step.

`bench/twin.py` copies the Keras weights into `bench/torch_models.py`'s model, feeds both the
same batches and the same reparameterisation noise, and compares the loss, every gradient,
every weight after Adam and BatchNorm's moving statistics after each step, then the validation
loss and the embeddings in inference mode. In float64 rounding is ~1e-16, so anything that is
not the same arithmetic stands out by orders of magnitude; in float32 (the kernels `train`
runs) ReLU kinks and Adam's normalisation amplify rounding within a step or two, so only the
quantities rounding cannot move far are held tight, over one step.
"""

import keras
import numpy as np
import pytest
import torch

from bench import twin as twin_module
from bench.torch_models import TorchProcedureModel
from bench.twin import KINDS, Twin, relative_difference, worst
from keras_pae import PROCEDURES, Procedure, alexnet_features
from keras_pae.core.devices import dtype_policy
from keras_pae.perceptual.fused_batch_normalization import FusedBatchNormalization

BATCH, Z, STEPS = 4, 8, 3


def _images(rng, n=BATCH):
    # Smooth blobs on a dark background: LunarLander-like contrast, something to learn.
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    centres, colours = rng.random((n, 2)), rng.random((n, 1, 1, 3))
    blobs = np.exp(-((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2) * 20)
    return blobs[..., None] * colours


@pytest.fixture(scope="module")
def loss_networks():
    """The shipped Fashion-MNIST loss network, in float32 and in float64 (built once)."""
    networks = {}
    floatx = keras.config.floatx()
    for dtype in ("float32", "float64"):
        keras.config.set_floatx(dtype)
        with dtype_policy(dtype):
            networks[dtype] = alexnet_features(weights="fashion_mnist")
    keras.config.set_floatx(floatx)
    return networks


def _twin(procedure, gamma, loss_networks, dtype="float64", **kwargs):
    needs = Procedure.parse(procedure).needs_loss_network
    return Twin(procedure, gamma, z_dim=Z, loss_network=loss_networks[dtype] if needs else None, dtype=dtype, **kwargs)


def _run(twin, steps=STEPS, seed=0):
    """`steps` twin steps; returns the largest difference of each kind and the evaluation's."""
    rng = np.random.default_rng(seed)
    largest = dict.fromkeys(KINDS, 0.0)
    for _ in range(steps):
        noise = rng.standard_normal((BATCH, Z)) if twin.gamma else None
        differences = twin.step(_images(rng), noise)
        for kind in KINDS:
            largest[kind] = max(largest[kind], worst(differences, kind)[1])
    noise = rng.standard_normal((BATCH, Z)) if twin.gamma else None
    largest.update(twin.evaluate(_images(rng), noise))
    return largest


@pytest.mark.parametrize("gamma", [0.0, 0.01])
@pytest.mark.parametrize("procedure", PROCEDURES)
def test_twins_agree_step_for_step_in_float64(procedure, gamma, loss_networks):
    """Loss, every gradient, weight and moving statistic after each of 3 steps, then the validation
    loss and mu, within 1e-7 relative (measured: at most ~4e-9)."""
    largest = _run(_twin(procedure, gamma, loss_networks))
    assert all(value < 1e-7 for value in largest.values()), largest


@pytest.mark.parametrize("procedure, gamma", [("I-I-PS", 0.0), ("I-F-FP", 0.01)])
def test_twins_agree_in_float32_with_the_fast_kernels(procedure, gamma, loss_networks):
    """`train`'s kernels (fused BatchNorm and Adam, sub-pixel transposed and space-to-depth
    convolutions) against PyTorch's, over one step: the loss and the moving statistics
    (measured: <= 1e-6 and 5e-6). Gradients are not held: a ReLU whose input rounding
    moves across zero changes a gradient tensor by ~1%, which float32 does within a step."""
    largest = _run(_twin(procedure, gamma, loss_networks, dtype="float32"), steps=1)
    assert largest["loss"] < 1e-5 and largest["statistic"] < 1e-4, largest


def test_twin_fails_with_keras_adam(loss_networks):
    """Keras's epsilon (1e-7 on sqrt(v)) takes steps PyTorch's Adam does not."""
    largest = _run(_twin("I-I-PS", 0.0, loss_networks, arithmetic="keras"), steps=1)
    assert largest["weight"] > 1e-3, largest


def test_twin_fails_with_a_wrong_flatten_order(loss_networks, monkeypatch):
    """A copy that reads the encoder's flattened map in Keras's (h, w, c) order instead of PyTorch's (c, h, w)."""
    monkeypatch.setattr(twin_module, "_rows_hwc_to_chw", lambda shape: twin_module._DENSE)
    largest = _run(_twin("I-I-PW", 0.0, loss_networks), steps=1)
    assert largest["loss"] > 1e-3, largest


def test_copy_refuses_to_leave_a_tensor_out(loss_networks, monkeypatch):
    """A mapping that misses the BatchNorm statistics would leave PyTorch's own in place."""
    pairs = twin_module.weight_pairs
    monkeypatch.setattr(twin_module, "weight_pairs", lambda *a: [p for p in pairs(*a) if "moving" not in p.name])
    with pytest.raises(ValueError, match="running_mean"):
        _twin("I-I-PW", 0.0, loss_networks)


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # the fused kernel, and Keras's computation
def test_twin_fails_with_keras_moving_variance(loss_networks, dtype):
    """Keras's moving variance (from the biased batch variance) is not PyTorch's."""
    twin = _twin("I-I-PS", 0.0, loss_networks, dtype=dtype)
    for network in (twin.keras_model.encoder, twin.keras_model.decoder):
        for layer in network.layers:
            if isinstance(layer, FusedBatchNormalization):
                layer.unbiased_moving_variance = False
    largest = _run(twin, steps=1)
    assert largest["statistic"] > 1e-3, largest


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_moving_variance_follows_torch_batch_norm(dtype):
    """`unbiased_moving_variance=True` updates the statistics as torch.nn.BatchNorm2d does."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(1, 2, size=(4, 3, 3, 5)).astype(dtype) for _ in range(2)]
    with dtype_policy(dtype):
        layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, unbiased_moving_variance=True)
    reference = torch.nn.BatchNorm2d(5, momentum=0.1, eps=1e-5).to(getattr(torch, dtype))
    for batch in batches:
        outputs = layer(batch, training=True)
        expected = reference(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(np.asarray(outputs), expected.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    for ours, theirs in ((layer.moving_mean, reference.running_mean), (layer.moving_variance, reference.running_var)):
        assert relative_difference(np.asarray(ours), theirs.numpy()) < 1e-6
    restored = FusedBatchNormalization.from_config(layer.get_config())
    assert restored.unbiased_moving_variance


@pytest.mark.parametrize("procedure", ["I-I-PS", "F-F-FP"])
def test_copy_back_from_torch_puts_every_tensor_where_it_came_from(procedure, loss_networks):
    """`copy_torch_to_keras` (how `bench/torch_train.py` hands PyTorch-trained weights to the
    predictors) inverts `copy_keras_to_torch` exactly, flattened-map permutations included,
    and the Keras model then encodes as the PyTorch one does."""
    twin = _twin(procedure, 0.0, loss_networks, dtype="float32")
    torch.manual_seed(1)
    trained = TorchProcedureModel(procedure, Z).eval()  # PyTorch's own draw, not the Keras weights
    with torch.no_grad():
        for module in trained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # statistics away from (0, 1)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    twin_module.copy_torch_to_keras(trained, twin.keras_model)
    again = TorchProcedureModel(procedure, Z)
    twin_module.copy_keras_to_torch(twin.keras_model, again)
    for (name, original), (_, copied) in zip(twin_module._torch_tensors(trained), twin_module._torch_tensors(again)):
        assert torch.equal(original, copied), name
    images = _images(np.random.default_rng(0)).astype(np.float32)
    with torch.no_grad():
        expected = trained.encode(twin_module.to_torch_images(images))[0].numpy()
    mu = keras.ops.convert_to_numpy(twin.keras_model.encode(images, training=False)[0])
    assert relative_difference(mu, expected) < 1e-5
