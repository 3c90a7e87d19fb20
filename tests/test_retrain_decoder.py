import keras
import numpy as np

from keras_pae.data import pipeline, registry
from keras_pae.perceptual.config import TrainConfig
from keras_pae.perceptual.retrain_decoder import l1_error, pixel_model, relative_performance, retrain_decoder
from keras_pae.perceptual.training import load_run, train

SMALL = dict(limit=240, steps=40, batch_size=64, z_dim=8, loss_weights="random", predictor_epochs=0, epochs=1)


def test_retraining_keeps_the_encoder_and_lowers_the_pixel_error(tmp_path):
    out = tmp_path / "ps"
    train(TrainConfig(**SMALL, procedure="I-I-PS", out=str(out)), verbose=0)
    trained = load_run(out)
    result, before, after = retrain_decoder(str(out), epochs=3, verbose=0)
    for original, kept in zip(trained.encoder.weights, after.encoder.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(kept))
    # A perceptually trained decoder retrained on pixels reconstructs pixels better.
    assert result["l1_after"] < result["l1_before"]
    assert result["procedure"] == "I-I-PS"


def test_feature_decoding_runs_get_a_fresh_image_decoder(tmp_path):
    out = tmp_path / "fp"
    train(TrainConfig(**SMALL, procedure="I-F-FP", out=str(out)), verbose=0)
    result, _, after = retrain_decoder(str(out), epochs=3, verbose=0)
    assert result["l1_before"] is None
    assert after(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, 64, 64, 3)
    # Baseline: the same fresh decoder (same seed) before retraining.
    config = TrainConfig.load(out / "config.json")
    keras.utils.set_random_seed(config.seed)
    untrained = pixel_model(load_run(out))
    test = registry.test_data(config, progress=False)
    fit = dict(image_size=config.image_size, fit=registry.info(config.dataset).fit)
    l1_untrained = l1_error(untrained, pipeline.image_dataset(test.images, 256, **fit))
    assert result["l1_after"] < 0.9 * l1_untrained


def test_relative_performance_is_best_over_own():
    results = [{"l1_after": 0.10}, {"l1_after": 0.05}, {"l1_after": 0.20}]
    assert relative_performance(results) == [0.5, 1.0, 0.25]
