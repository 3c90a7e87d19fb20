"""The loss network p: AlexNet's `features[:5]` followed by a sigmoid.

Feature-prediction paper, Section IV and Fig. 2: torchvision's
AlexNet up to and including the second ReLU, frozen, with the activations
squashed into (0, 1) by a sigmoid. Input scaling is pinned here: the network
sees the image in [0, 1] exactly as the autoencoder does (the authors' code
applies no ImageNet normalisation); `imagenet_normalize=True` inserts the
torchvision mean/std normalisation instead.
"""

import os

import keras
import numpy as np

from keras_pae.perceptual import convert_alexnet as _convert
from keras_pae.perceptual.alexnet import alexnet_trunk
from keras_pae.perceptual.pretrain_loss_network import SHIPPED_FASHION_MNIST, pretrain_loss_network

IMAGENET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
IMAGENET_FILE = "alexnet-owt-7be5be79.pth"
# torchvision names a checkpoint after the first 8 hex digits of its SHA-256;
# the whole digest (244 408 911 bytes) as pinned by projects that use this file.
IMAGENET_SHA256 = "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
CONVERTED_IMAGENET_FILE = "alexnet_features_imagenet.weights.h5"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CONVERTED_FASHION_MNIST_FILE = "alexnet_features_fashion_mnist.weights.h5"

WEIGHT_CHOICES = ("imagenet", "fashion_mnist", "random")


def keras_cache_dir():
    """Where Keras caches downloads (`$KERAS_HOME` or `~/.keras`) + `models`."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def alexnet_features(
    input_shape=(64, 64, 3), weights="imagenet", imagenet_normalize=False, seed=0
):
    """Returns the frozen loss network p as a Keras model.

    Feature-prediction paper, Section IV. Maps images in [0, 1] of
    shape (N, H, W, 3) to features of shape (N, h, w, 192) in [0.5, 1):
    64x64 gives 7x7x192 = 9408 features, 96x96 gives 11x11x192 = 23232.

    Args:
        input_shape: (H, W, 3) of the images.
        weights: `"imagenet"` (torchvision's `alexnet-owt-7be5be79.pth`,
            converted once and cached under `~/.keras/models`; the papers'
            setting), `"fashion_mnist"` (the same layers trained as a
            Fashion-MNIST classifier; shipped, works offline), `"random"`
            (seeded, torch-default-like init; for smoke tests only, see
            docs/loss-network.md), or a path to a torchvision `.pth` or a converted
            `.weights.h5` file.
        imagenet_normalize: normalise the input with ImageNet's mean/std
            before the first convolution (off in the authors' code).
        seed: seed of the random initialisation (`weights="random"`).
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"alexnet_features takes RGB images of shape (H, W, 3); got {input_shape}."
        )
    trunk = alexnet_trunk(seed=seed)
    trunk.build((None, *input_shape))
    load_weights(trunk, weights)

    inputs = keras.Input(input_shape, name="images")
    x = inputs
    if imagenet_normalize:
        x = keras.layers.Normalization(
            mean=IMAGENET_MEAN,
            variance=np.square(IMAGENET_STD),
            name="imagenet_normalization",
        )(x)
    outputs = trunk(x)
    model = keras.Model(inputs, outputs, name="alexnet_features")
    model.trainable = False
    return model


def load_weights(trunk, weights):
    """Loads `weights` (see `alexnet_features`) into a built `alexnet_trunk`."""
    if weights == "random":
        return
    if weights == "imagenet":
        path = imagenet_weights_path()
    elif weights == "fashion_mnist":
        path = fashion_mnist_weights_path()
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Loss-network weights file {path!r} not found; use "
                f"{' or '.join(repr(c) for c in WEIGHT_CHOICES)} or the path to a "
                "torchvision AlexNet .pth or a converted .weights.h5 file."
            )
    if path.endswith(".pth") or path.endswith(".pt"):
        _convert.assign_torch_checkpoint(trunk, path)
        return
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"Loss-network weights file {path!r} is neither a torchvision .pth "
            "nor a converted .weights.h5 file."
        )
    try:
        trunk.load_weights(path)
    except Exception as error:  # h5py and Keras raise many kinds here.
        raise ValueError(
            f"Could not read loss-network weights from {path!r} "
            f"({type(error).__name__}); is it a .weights.h5 written by "
            "`python -m keras_pae.perceptual.convert_alexnet`?"
        ) from None


def imagenet_weights_path():
    """Path of the converted ImageNet weights, downloading and converting once."""
    cache = keras_cache_dir()
    converted = os.path.join(cache, CONVERTED_IMAGENET_FILE)
    if os.path.isfile(converted):
        return converted
    try:
        # get_file checks the digest after downloading, and downloads again a
        # cached copy that does not match.
        # cache_dir given: Keras reads $KERAS_HOME once, at import.
        checkpoint = keras.utils.get_file(
            IMAGENET_FILE, origin=IMAGENET_URL, cache_dir=os.path.dirname(cache), cache_subdir="models",
            file_hash=IMAGENET_SHA256, hash_algorithm="sha256",
        )
    except ValueError:  # get_file's "Incomplete or corrupted file detected"
        raise ValueError(
            f"Downloaded {IMAGENET_FILE} from {IMAGENET_URL} does not have SHA-256 "
            f"{IMAGENET_SHA256}; please retry, or pass --loss-weights fashion_mnist."
        ) from None
    except Exception:
        raise ValueError(
            f"ImageNet AlexNet weights are not cached at {converted} and could "
            f"not be downloaded from {IMAGENET_URL}: connect to the internet, "
            "or pass --loss-weights fashion_mnist (pretrained offline, shipped), "
            "the path to alexnet-owt-7be5be79.pth or a converted .weights.h5, "
            "or 'random' for smoke tests only."
        ) from None
    _convert.convert(checkpoint, converted)
    return converted


def fashion_mnist_weights_path():
    """The loss network pretrained on Fashion-MNIST: shipped, else trained once.

    `python -m keras_pae.perceptual.pretrain_loss_network --dataset fashion_mnist
    --epochs 3 --out PATH` reproduces the shipped file; when the package was
    installed without it, the same training runs once and is cached under
    `~/.keras/models`.
    """
    if os.path.isfile(SHIPPED_FASHION_MNIST):
        return SHIPPED_FASHION_MNIST
    cached = os.path.join(keras_cache_dir(), CONVERTED_FASHION_MNIST_FILE)
    if not os.path.isfile(cached):
        print(f"Pretraining the loss network on Fashion-MNIST once; caching it at {cached}.")
        pretrain_loss_network(cached, dataset="fashion_mnist", epochs=3)
    return cached
