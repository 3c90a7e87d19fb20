"""Converts a torchvision AlexNet checkpoint into the loss network's weights.

    keras-pae convert-alexnet SRC.pth DST.weights.h5

The checkpoint is read by `torch_checkpoint`, with numpy only: PyTorch is not
needed.
"""

import os
import sys

import numpy as np

from keras_pae.core import cli
from keras_pae.perceptual import torch_checkpoint
from keras_pae.perceptual.alexnet import alexnet_trunk

# torchvision key of each of the trunk's conv layers (features[0], features[3]).
TORCH_KEYS = {"conv1": "features.0", "conv2": "features.3"}


def oihw_to_hwio(kernel):
    """Torch conv kernels are (out, in, H, W); Keras wants (H, W, in, out)."""
    return np.transpose(kernel, (2, 3, 1, 0))


def convert_weights(state_dict, transpose=oihw_to_hwio):
    """Maps a torchvision AlexNet state dict to `{layer: [kernel, bias]}`.

    Args:
        state_dict: mapping of torchvision keys (`features.0.weight`, ...) to
            arrays; a full AlexNet checkpoint or only its `features[:5]`.
        transpose: hook turning a torch kernel into a Keras kernel.
    """
    weights = {}
    for layer, prefix in TORCH_KEYS.items():
        try:
            kernel = np.asarray(state_dict[f"{prefix}.weight"], dtype=np.float32)
            bias = np.asarray(state_dict[f"{prefix}.bias"], dtype=np.float32)
        except KeyError:
            raise ValueError(
                f"Checkpoint has no {prefix}.weight/{prefix}.bias; expected a "
                "torchvision AlexNet state dict (features.0.*, features.3.*)."
            ) from None
        weights[layer] = [transpose(kernel), bias]
    return weights


def read_torch_checkpoint(path):
    """Reads a `.pth` state dict into numpy arrays, without PyTorch."""
    return torch_checkpoint.load_state_dict(path)


def assign_torch_checkpoint(trunk, path):
    """Sets a built `alexnet_trunk`'s conv weights from a torchvision `.pth`."""
    for layer, values in convert_weights(read_torch_checkpoint(path)).items():
        target = trunk.get_layer(layer)
        expected = [tuple(w.shape) for w in target.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"{path!r}: {layer} has shapes {[v.shape for v in values]}, "
                f"expected {expected} (AlexNet features[:5])."
            )
        target.set_weights(values)


def convert(src, dst):
    """Converts torchvision checkpoint `src` into a `.weights.h5` at `dst`."""
    if not str(dst).endswith(".weights.h5"):
        raise ValueError(f"Destination {dst!r} must end in .weights.h5.")
    trunk = alexnet_trunk()
    trunk.build((None, 64, 64, 3))
    assign_torch_checkpoint(trunk, os.fspath(src))
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f"{dst}.tmp.weights.h5"
    trunk.save_weights(tmp)
    os.replace(tmp, dst)
    return dst


def build_parser(prog="python -m keras_pae.perceptual.convert_alexnet"):
    parser = cli.OneLineParser(
        prog=prog,
        description="Convert a torchvision AlexNet .pth into keras_pae loss-network weights.",
    )
    parser.add_argument("src", help="torchvision checkpoint, e.g. alexnet-owt-7be5be79.pth")
    parser.add_argument("dst", help="output file ending in .weights.h5")
    return parser


def run(args):
    if not os.path.isfile(args.src):
        raise FileNotFoundError(f"checkpoint {args.src!r} not found.")
    convert(args.src, args.dst)
    print(f"wrote {args.dst}")


def main(argv=None, prog="python -m keras_pae.perceptual.convert_alexnet"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
