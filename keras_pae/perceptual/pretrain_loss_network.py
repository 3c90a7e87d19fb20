"""Pretrains the loss network's AlexNet layers on a labelled image set.

    keras-pae pretrain-loss-network --dataset fashion_mnist --epochs 3 --out PATH

ImageNet weights cannot be downloaded offline, and a randomly initialised
AlexNet is no stand-in: its sigmoid features sit near 0.5 with a tiny
variance, so feature prediction has almost nothing to predict.
Training the same `features[:5]` layers as a classifier on any real labelled
image set, even one far from the target domain, gives features that vary with
the image. The classification head is dropped; only the trunk is saved, in the
layout `alexnet_features(weights=PATH)` loads.
"""

import argparse
import json
import os
import sys

import keras
import tensorflow as tf

from keras_pae.core import cli
from keras_pae.data import pipeline, registry
from keras_pae.perceptual.alexnet import alexnet_trunk

# keras_pae/weights/, the package data setup.cfg ships (one level above this module).
SHIPPED_FASHION_MNIST = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "alexnet_features_fashion_mnist.weights.h5"
)
DATASETS = ("fashion_mnist",)


def build_classifier(trunk, image_size, num_classes):
    """The trunk without its sigmoid, plus a small head: Flatten, Dense(128) + ReLU, Dense(classes).

    The head reads the ReLU activations, unnormalised. A head on the sigmoid
    features does not learn (they start near 0.5 with a tiny spread), and one
    behind a normalisation layer does, but leaves the trunk's scale free to
    stay small: its features then vary little on LunarLander (per-feature std
    about 0.005) and feature prediction has little to predict. Unnormalised
    ReLU activations must grow for the head to separate the classes, which
    spreads the sigmoid features the loss network hands out afterwards.
    """
    if trunk.layers[-1].name != "sigmoid":
        raise ValueError(f"Expected the trunk of `alexnet_trunk` ending in a sigmoid; got {trunk.layers[-1].name!r}.")
    trunk.build((None, image_size, image_size, 3))
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for layer in trunk.layers[:-1]:
        x = layer(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="head_hidden")(x)
    outputs = keras.layers.Dense(num_classes, name="head_logits")(x)
    return keras.Model(inputs, outputs, name="loss_network_classifier")


def pretrain_loss_network(
    out,
    dataset="fashion_mnist",
    epochs=3,
    batch_size=128,
    learning_rate=1e-3,
    image_size=64,
    seed=0,
    limit=None,
    data_dir=None,
    verbose="auto",
):
    """Trains AlexNet `features[:5]` + a head as a classifier; saves the trunk.

    Args:
        out: destination `.weights.h5` of the trunk (the loss network).
        dataset: a labelled dataset of the registry (see `DATASETS`).
        epochs: training epochs.
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        image_size: side the images are upscaled to (3 channels).
        seed: seeds initialisation and shuffling (the same seed on the same
            machine gives the same weights).
        limit: use only the first `limit` training and test images.
        data_dir: folder with the dataset's files (default: where the Debian
            package puts Fashion-MNIST).
        verbose: `fit`'s verbosity; "auto" is a bar on a terminal.

    Returns:
        A dict with the head's test accuracy and what produced the weights.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; valid datasets are {', '.join(DATASETS)}.")
    if not str(out).endswith(".weights.h5"):
        raise ValueError(f"--out {out!r} must end in .weights.h5.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value}.")
    train = registry.idx_split("train", data_dir, dataset)
    test = registry.idx_split("test", data_dir, dataset)
    if limit is not None:
        train, test = train.take(limit), test.take(limit)
    verbose = cli.fit_verbosity(verbose)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    trunk = alexnet_trunk(seed=seed)
    classifier = build_classifier(trunk, image_size, int(train.labels.max()) + 1)
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(
        pipeline.image_dataset(
            train.images, batch_size, shuffle=True, seed=seed, labels=train.labels, image_size=image_size
        ),
        epochs=epochs,
        shuffle=False,
        verbose=verbose,
    )
    test_ds = pipeline.image_dataset(test.images, 512, labels=test.labels, image_size=image_size)
    accuracy = float(classifier.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp.weights.h5"
    trunk.save_weights(tmp)
    os.replace(tmp, out)
    record = {
        "dataset": dataset,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "image_size": image_size,
        "seed": seed,
        "limit": limit,
        "train_images": len(train),
        "test_images": len(test),
        "head_test_accuracy": accuracy,
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    }
    with open(str(out)[: -len(".weights.h5")] + ".json", "w") as f:
        json.dump(record, f, indent=2)
    return record


def build_parser(prog="python -m keras_pae.perceptual.pretrain_loss_network"):
    parser = cli.OneLineParser(
        prog=prog,
        description="Train the loss network's AlexNet layers as a classifier and save them as .weights.h5.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", default="fashion_mnist", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=64, help="side the images are upscaled to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train and test images")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's IDX .gz files")
    parser.add_argument("--out", required=True, help="destination .weights.h5")
    return parser


def run(args):
    record = pretrain_loss_network(
        args.out,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        image_size=args.image_size,
        seed=args.seed,
        limit=args.limit,
        data_dir=args.data_dir,
    )
    print(
        f"head test accuracy {record['head_test_accuracy']:.4f} on {record['test_images']} "
        f"{args.dataset} test images; wrote {args.out}"
    )


def main(argv=None, prog="python -m keras_pae.perceptual.pretrain_loss_network"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
