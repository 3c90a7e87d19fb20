"""Reader for the IDX format of MNIST and Fashion-MNIST (`*-ubyte.gz` files)."""

import gzip
import os

import numpy as np

# Third byte of the magic number: the element type; fourth: the number of dims.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a numpy array.

    Args:
        path: an `*-idx?-ubyte[.gz]` file.
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Could not read IDX file {os.fspath(path)!r} ({error}).") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{os.fspath(path)!r} is not an IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{os.fspath(path)!r} is truncated or corrupt: header says {shape}, "
            f"{len(data) - offset} bytes of data for {expected} expected."
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Writes a uint8 array as a gzipped IDX file (tests, small exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(side).to_bytes(4, "big") for side in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
