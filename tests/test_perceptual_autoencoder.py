import keras
import numpy as np
import pytest

from keras_pae import PROCEDURES, Procedure, alexnet_features, build_perceptual_autoencoder
from keras_pae.core import losses
from keras_pae.perceptual.perceptual_autoencoder import PerceptualAutoencoder
from bench.torch_models import build_on_meta, trainable_parameters
from tests.helpers import assert_round_trips


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_procedure_parsing():
    assert Procedure.parse("i-f-fp") == Procedure("image", "features", "feature_prediction")
    assert Procedure.parse("F-I-PS").name == "F-I-PS"
    assert [Procedure.parse(p).needs_loss_network for p in PROCEDURES] == [False] + [True] * 5
    with pytest.raises(ValueError, match="I-F-FP") as error:
        Procedure.parse("I-I-FP")
    assert "'I-I-FP'" in str(error.value)


@pytest.mark.parametrize("size", [64, 96])
def test_parameter_counts_equal_pytorch(size):
    loss_network = alexnet_features((size, size, 3), weights="random")
    for procedure in PROCEDURES:
        for z_dim in (64, 128, 256):
            model = build_perceptual_autoencoder(
                procedure, (size, size, 3), z_dim=z_dim, loss_network=loss_network
            )
            expected = trainable_parameters(build_on_meta(procedure, z_dim, size))
            assert _trainable(model) == expected, (procedure, z_dim, size)
            keras.backend.clear_session()


@pytest.mark.parametrize("procedure", ["I-I-PS", "F-F-FP"])
def test_torch_init_draws_as_the_authors_pytorch_layers(procedure):
    """Every kernel and bias uniform in +-1/sqrt(fan_in), fan_in as PyTorch computes it
    for the same layer (a transposed convolution's from its output channels)."""
    import torch

    from bench.torch_models import TorchProcedureModel

    loss_network = alexnet_features(weights="random")
    keras.utils.set_random_seed(0)
    model = build_perceptual_autoencoder(procedure, loss_network=loss_network, init="torch")
    ours = [
        layer for network in (model.encoder, model.decoder) for layer in network.layers if hasattr(layer, "kernel")
    ]
    theirs = [
        module for name, module in TorchProcedureModel(procedure, 64).named_modules()
        if not name.startswith("loss_network") and isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
    ]
    assert [int(np.prod(layer.kernel.shape)) for layer in ours] == [module.weight.numel() for module in theirs]
    for layer, module in zip(ours, theirs):
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / np.sqrt(fan_in) * (1 + 1e-6)  # float32 rounding
        kernel, bias = np.abs(layer.kernel.numpy()), np.abs(layer.bias.numpy())
        assert 0.95 * bound < kernel.max() <= bound, layer.name
        assert bias.max() <= bound, layer.name
        if bias.size >= 32:
            assert bias.std() > 0.2 * bound, layer.name  # drawn, not zero
    keras_init = build_perceptual_autoencoder(procedure, loss_network=loss_network, init="keras")
    assert all(not np.any(layer.bias.numpy()) for network in (keras_init.encoder, keras_init.decoder)
               for layer in network.layers if hasattr(layer, "bias") and layer.bias is not None)


def test_image_shapes_through_the_networks():
    model = build_perceptual_autoencoder("I-I-PW", (96, 96, 3), z_dim=8)
    images = np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32)
    assert tuple(model(images).shape) == (2, 96, 96, 3)
    mu, logvar = model.encode(images)
    assert tuple(mu.shape) == tuple(logvar.shape) == (2, 8)
    with pytest.raises(ValueError, match="64 \\+ 16n"):
        build_perceptual_autoencoder("I-I-PW", (70, 70, 3))


def test_kl_divergence_formula():
    mu = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    logvar = np.array([[0.0, 0.5], [-0.5, 0.0]], np.float32)
    expected = -np.mean(1 + logvar - mu**2 - np.exp(logvar))
    assert float(losses.kl_divergence(mu, logvar)) == pytest.approx(expected, rel=1e-6)
    assert float(losses.kl_divergence(np.zeros((3, 4)), np.zeros((3, 4)))) == 0.0


def test_losses_follow_the_procedure():
    """Each loss term is the one the procedure names (Eq. 1-3)."""
    images = np.random.default_rng(1).random((4, 64, 64, 3), dtype=np.float32)
    p = alexnet_features(weights="random")
    for name in PROCEDURES:
        model = build_perceptual_autoencoder(name, z_dim=8, loss_network=p)
        total, rec, kl = (float(v) for v in model.compute_losses(images))
        decoded = keras.ops.convert_to_numpy(model(images))
        target = keras.ops.convert_to_numpy(p(images)).reshape(4, -1)
        if name.endswith("PW"):
            expected = np.mean((images - decoded) ** 2)
        elif name.endswith("PS"):
            expected = np.mean((target - keras.ops.convert_to_numpy(p(decoded)).reshape(4, -1)) ** 2)
        else:
            expected = np.mean((target - decoded) ** 2)
        assert rec == pytest.approx(expected, rel=1e-4), name
        assert total == rec and kl == 0.0


@pytest.mark.parametrize(
    "procedure, gamma",
    # The VAE variant on the two image encoders: with a random loss network the
    # feature encoders' KL first jumps before it falls, so "down over a few
    # steps" is not a property they have.
    [(p, 0.0) for p in PROCEDURES] + [("I-I-PW", 0.01), ("I-F-FP", 0.01)],
)
def test_every_procedure_learns(procedure, gamma):
    rng = np.random.default_rng(0)
    # Smooth, structured images: a few blobs, so there is something to learn.
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    centres = rng.random((16, 2))
    images = np.exp(-((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2) * 20)
    images = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_perceptual_autoencoder(
        procedure, z_dim=8, gamma=gamma, loss_weights="random", seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    expected = ["loss", "reconstruction_loss"] + (["kl_loss"] if gamma else [])
    history = model.fit(images, batch_size=16, epochs=8, verbose=0)
    assert sorted(history.history) == sorted(expected)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_plain_autoencoder_leaves_logvar_alone():
    images = np.random.default_rng(2).random((8, 64, 64, 3), dtype=np.float32)
    model = build_perceptual_autoencoder("I-I-PW", z_dim=4)
    model.compile(optimizer="adam")
    logvar = model.encoder.get_layer("logvar").get_weights()
    model.fit(images, epochs=1, batch_size=4, verbose=0)
    for before, after in zip(logvar, model.encoder.get_layer("logvar").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_serialization_round_trip(tmp_path):
    images = np.random.default_rng(3).random((2, 64, 64, 3), dtype=np.float32)
    model = build_perceptual_autoencoder("F-I-PS", z_dim=8, gamma=0.5, loss_weights="random", seed=3)
    restored = PerceptualAutoencoder.from_config(model.get_config())
    assert restored.procedure == model.procedure and restored.gamma == 0.5
    assert_round_trips(model, images, tmp_path)


def test_embedding_model_takes_images_for_feature_encoders():
    images = np.random.default_rng(4).random((3, 64, 64, 3), dtype=np.float32)
    model = build_perceptual_autoencoder("F-F-FP", z_dim=5, loss_weights="random")
    embedder = model.embedding_model()
    assert embedder.input_shape == (None, 64, 64, 3)
    mu, _ = model.encode(images)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(embedder(images)), keras.ops.convert_to_numpy(mu), atol=1e-6
    )



class _RecordingDecoder(keras.Model):
    """Passes z to a decoder and keeps it, so a test can read the sampled z."""

    def __init__(self, decoder, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.seen = []

    def call(self, z, training=False):
        self.seen.append(keras.ops.convert_to_numpy(z))
        return self.decoder(z, training=training)


def test_vae_objective_is_reconstruction_plus_gamma_kl_with_seeded_reparameterisation():
    """gamma > 0: total = reconstruction + gamma * KL, z = mu + eps * exp(logvar / 2), eps from the model's seed."""
    images = np.random.default_rng(5).random((4, 64, 64, 3), dtype=np.float32)
    keras.utils.set_random_seed(0)
    built = build_perceptual_autoencoder("I-I-PW", z_dim=4, gamma=0.5, seed=7)
    # sigma = e, so exp(logvar) instead of exp(logvar / 2) changes z a lot.
    built.encoder.get_layer("logvar").bias.assign(np.full(4, 2.0, np.float32))

    def model_with_seed(seed):
        recorder = _RecordingDecoder(built.decoder)
        return PerceptualAutoencoder(built.encoder, recorder, procedure="I-I-PW", gamma=0.5, seed=seed), recorder

    model, recorder = model_with_seed(7)
    total, reconstruction, kl = (float(v) for v in model.compute_losses(images))

    mu, logvar = (keras.ops.convert_to_numpy(t) for t in model.encode(images))
    eps = keras.ops.convert_to_numpy(keras.random.normal(mu.shape, seed=keras.random.SeedGenerator(7)))
    expected_z = mu + eps * np.exp(logvar / 2)
    np.testing.assert_allclose(recorder.seen[-1], expected_z, rtol=1e-5, atol=1e-5)
    assert np.abs(expected_z - mu).min() > 1e-3  # the noise is really there
    decoded = keras.ops.convert_to_numpy(built.decoder(expected_z))
    expected_reconstruction = np.mean((images - decoded) ** 2)
    expected_kl = -np.mean(1 + logvar - mu**2 - np.exp(logvar))
    assert reconstruction == pytest.approx(expected_reconstruction, rel=1e-5)
    assert kl == pytest.approx(expected_kl, rel=1e-5)
    assert total == pytest.approx(expected_reconstruction + 0.5 * expected_kl, rel=1e-5)

    # Same seed: the same z; another seed: another one.
    same, same_recorder = model_with_seed(7)
    assert [float(v) for v in same.compute_losses(images)] == [total, reconstruction, kl]
    np.testing.assert_array_equal(same_recorder.seen[-1], recorder.seen[-1])
    other, other_recorder = model_with_seed(8)
    other.compute_losses(images)
    assert np.abs(other_recorder.seen[-1] - recorder.seen[-1]).max() > 0.1

    # evaluate reports each term and their weighted sum.
    built.compile(optimizer="adam")
    result = built.evaluate(images, batch_size=4, verbose=0, return_dict=True)
    assert sorted(result) == ["kl_loss", "loss", "reconstruction_loss"]
    assert result["loss"] == pytest.approx(result["reconstruction_loss"] + 0.5 * result["kl_loss"], rel=1e-5)
    assert result["kl_loss"] == pytest.approx(expected_kl, rel=1e-5)  # the KL does not depend on the draw


@pytest.mark.parametrize("procedure", ["I-I-PW", "F-F-FP"])
def test_validation_loss_is_the_mean_over_examples_whatever_the_batch(procedure):
    """train validates in larger batches than it trains: the logged loss must not depend on the batch size."""
    from keras_pae.data import pipeline

    model = build_perceptual_autoencoder(procedure, (64, 64, 3), z_dim=8, loss_network=alexnet_features((64, 64, 3), weights="random"), seed=0)
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    # 40 images: batches of 16 leave a last batch of 8, whose mean would count twice as much per image.
    # The last 8 are black, so their losses differ from the others'.
    images = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    images[32:] = 0
    features = None
    if procedure != "I-I-PW":
        features = (rng.random((40, 9408)) * 0.5).astype(np.float16)
        features[32:] = 0

    def loss(part, batch_size):
        cached = {} if features is None else dict(features=features[part], with_images=False)
        return model.evaluate(pipeline.image_dataset(images[part], batch_size, **cached), verbose=0, return_dict=True)["loss"]

    per_image = [loss(slice(i, i + 1), 1) for i in range(40)]
    assert np.std(per_image) > 0.1 * np.mean(per_image)  # else any weighting gives the mean
    for batch_size in (16, 40):
        assert loss(slice(None), batch_size) == pytest.approx(np.mean(per_image), rel=1e-5)
