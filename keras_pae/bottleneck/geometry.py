"""Bottleneck geometry of the study's CAE: strides, sides and channels, and the configurations' names (bottleneck paper, Sec. 2.2).

Light to import (no TensorFlow), so a bad flag fails before Keras loads.
"""

import fractions

NUM_LAYERS = 5
SIZES = (1, 2, 3)
COMPRESSIONS = ("1/64", "1/16", "1/4", "1")
# Where a study keeps its configurations (`<out>/runs/<run_name>/`), and how
# many train and test images each saves reconstructions of.
RUNS_DIR = "runs"
RECONSTRUCTION_EXAMPLES = 6


def parse_compression(compression):
    """`"1/16"`, 0.0625 or Fraction(1, 16) -> Fraction; ValueError lists the levels."""
    try:
        value = fractions.Fraction(str(compression)).limit_denominator(4096)
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None or not 0 < value <= 1:
        raise ValueError(
            f"Unknown compression {compression!r}; use a fraction in (0, 1] such as "
            f"{', '.join(COMPRESSIONS)}."
        )
    return value


def strides(size):
    """Strides of the five down-sampling convs of bottleneck size 1, 2 or 3."""
    if size not in SIZES:
        raise ValueError(f"Unknown bottleneck size {size!r}; valid sizes are {', '.join(map(str, SIZES))}.")
    return (2,) * (NUM_LAYERS + 1 - size) + (1,) * (size - 1)


def bottleneck_shape(image_shape, size, compression):
    """(side_h, side_w, channels) of the bottleneck (bottleneck paper, Sec. 2.2).

    Args:
        image_shape: (H, W, C) with H and W multiples of 32.
        size: 1, 2 or 3 (side H/32, H/16, H/8).
        compression: bottleneck volume / input volume, e.g. `"1/16"`.
    """
    height, width, channels = (int(v) for v in image_shape)
    if height % 32 or width % 32:
        raise ValueError(
            f"Image sides must be multiples of 32 for five stride-2 layers; got {height}x{width} "
            "(pad the images, e.g. Fashion-MNIST's 28x28 to 32x32)."
        )
    factor = 2 ** strides(size).count(2)
    side_h, side_w = height // factor, width // factor
    volume = parse_compression(compression) * height * width * channels
    if volume.denominator != 1 or volume % (side_h * side_w):
        raise ValueError(
            f"Compression {compression} of a {height}x{width}x{channels} input does not give a "
            f"whole number of channels at {side_h}x{side_w}."
        )
    return side_h, side_w, int(volume) // (side_h * side_w)


def run_name(size, compression):
    return f"s{size}_c{str(parse_compression(compression)).replace('/', '-')}"
