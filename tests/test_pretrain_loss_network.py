import os

import keras
import numpy as np
import pytest

from keras_pae import alexnet_features
from keras_pae.data import registry
from keras_pae.perceptual.pretrain_loss_network import SHIPPED_FASHION_MNIST, pretrain_loss_network

REAL_FASHION_MNIST = os.path.isfile(os.path.join(registry.FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"))


@pytest.mark.skipif(not REAL_FASHION_MNIST, reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")
def test_pretraining_beats_chance_and_loads(tmp_path):
    out = tmp_path / "fm.weights.h5"
    record = pretrain_loss_network(str(out), epochs=1, limit=3000, verbose=0)
    # 24 steps on real Fashion-MNIST; chance is 10%.
    assert record["head_test_accuracy"] > 0.5
    images = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
    trained = keras.ops.convert_to_numpy(alexnet_features(weights=str(out))(images))
    random = keras.ops.convert_to_numpy(alexnet_features(weights="random")(images))
    assert trained.shape == (4, 7, 7, 192)
    assert np.abs(trained - random).max() > 1e-3


def test_named_choice_uses_the_shipped_weights():
    assert os.path.isfile(SHIPPED_FASHION_MNIST)
    images = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    named = keras.ops.convert_to_numpy(alexnet_features(weights="fashion_mnist")(images))
    by_path = keras.ops.convert_to_numpy(alexnet_features(weights=SHIPPED_FASHION_MNIST)(images))
    np.testing.assert_array_equal(named, by_path)
    random = keras.ops.convert_to_numpy(alexnet_features(weights="random")(images))
    assert np.abs(named - random).max() > 1e-3
