"""The .pth reader against torch.load(weights_only=True) on files torch.save wrote."""

import collections
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from keras_pae.perceptual import torch_checkpoint
from keras_pae.perceptual.torch_checkpoint import load, load_state_dict
from tests.helpers import TF_STARTUP_LOG

FORMATS = ("zip", "legacy")


def _save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    return path


def _state(fmt):
    """Tensors of many dtypes, views into shared storages, nested containers."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=generator)
    state = collections.OrderedDict()
    state["base"] = base
    state["transposed"] = base.t()  # strides (1, 6) on base's storage
    state["sliced"] = base[1:, 2:]  # storage offset 8, strides (6, 1)
    state["every_other"] = base[:, ::2]  # stride 2
    state["float64"] = torch.randn(3, 2, dtype=torch.float64, generator=generator)
    state["float16"] = torch.randn(5, generator=generator).half()
    state["int64"] = torch.tensor([-(2**40), 0, 2**40])
    state["int32"] = torch.tensor([[-7, 8], [9, -(2**30)]], dtype=torch.int32)
    state["int16"] = torch.tensor([-300, 300], dtype=torch.int16)
    state["int8"] = torch.tensor([-100, 100], dtype=torch.int8)
    state["uint8"] = torch.tensor([0, 7, 255], dtype=torch.uint8)
    if fmt == "zip":  # torch 2.13 writes, but cannot read, uint16 in the legacy format.
        state["uint16"] = torch.tensor([1, 65535], dtype=torch.uint16)  # via _rebuild_tensor_v3
    state["bool"] = torch.tensor([True, False, True])
    state["complex64"] = torch.tensor([1 + 2j, -3j], dtype=torch.complex64)
    state["scalar"] = torch.tensor(2.5)
    state["empty"] = torch.zeros(0, 3)
    state["parameter"] = torch.nn.Parameter(torch.randn(2, 2, generator=generator))
    state["nested"] = {
        "list": [base[2], (base[:, 1], 3)],  # more views of base, inside a list and a tuple
        "number": 3,
        "float": 1.5,
        "text": "hi",
        "none": None,
    }
    return state


def assert_same(actual, expected, where="object"):
    """`actual` is `expected` with each torch tensor an equal numpy array."""
    if isinstance(expected, torch.Tensor):
        wanted = expected.detach().numpy()
        assert isinstance(actual, np.ndarray), where
        assert actual.dtype == wanted.dtype, f"{where}: {actual.dtype} != {wanted.dtype}"
        assert actual.shape == wanted.shape, f"{where}: {actual.shape} != {wanted.shape}"
        np.testing.assert_array_equal(actual, wanted, err_msg=where)
        assert actual.flags.c_contiguous and actual.flags.writeable, where
    elif isinstance(expected, dict):
        assert type(actual) is type(expected), where
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert type(actual) is type(expected) and actual == expected, where


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_what_torch_load_reads(tmp_path, fmt):
    path = _save(_state(fmt), tmp_path / f"state_{fmt}.pth", fmt)
    expected = torch.load(path, weights_only=True)
    actual = load(path)
    assert_same(actual, expected)
    # Values a reader ignoring offsets or strides would get wrong.
    np.testing.assert_array_equal(actual["transposed"], actual["base"].T)
    np.testing.assert_array_equal(actual["sliced"], actual["base"][1:, 2:])
    # Views of one storage come out as independent copies.
    actual["base"][0, 0] = 1e9
    assert actual["transposed"][0, 0] != 1e9


def test_zip_storages_are_read_in_the_files_byte_order(tmp_path):
    """A zip written on a big-endian machine: torch.load and the reader agree with the original."""
    state = {"f32": torch.randn(2, 3), "i64": torch.tensor([1, -(2**40)]), "f16": torch.randn(3).half()}
    little = _save(state, tmp_path / "little.pth", "zip")
    big = tmp_path / "big.pth"
    # torch numbers the storages in pickling order: one per tensor here.
    itemsizes = {str(i): tensor.element_size() for i, tensor in enumerate(state.values())}
    with zipfile.ZipFile(little) as source, zipfile.ZipFile(big, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            name = info.filename.split("/", 1)[1]
            if name == "byteorder":
                data = b"big"
            elif name.startswith("data/"):
                itemsize = itemsizes[name[len("data/"):]]
                data = np.frombuffer(data, f"<u{itemsize}").astype(f">u{itemsize}").tobytes()
            target.writestr(info, data)
    torch.testing.assert_close(torch.load(big, weights_only=True), state, rtol=0, atol=0)
    assert_same(load(big), state)


def _write_legacy(path, obj, storages):
    """A legacy-format file by hand, for what torch 2.x no longer writes.

    `obj` holds `_HandTensor`s over `_HandStorage`s; `storages` maps each
    storage key to its float32 values.
    """

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, _HandStorage):
                return ("storage", torch.FloatStorage, value.key, "cpu", value.numel, value.view)
            return None

    with open(path, "wb") as f:
        sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
        for header in (torch_checkpoint.LEGACY_MAGIC, torch_checkpoint.LEGACY_PROTOCOL, sys_info):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        pickle.dump(list(storages), f, protocol=2)
        for values in storages.values():
            f.write(struct.pack("<q", values.size) + values.astype("<f4").tobytes())
    return path


class _HandStorage:
    def __init__(self, key, numel, view=None):
        self.key, self.numel, self.view = key, numel, view


class _HandTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


def test_legacy_storage_views(tmp_path):
    """PyTorch < 0.4 saved views of storages: element 2 on, 5 long, of a 10-element root."""
    root = np.arange(10, dtype=np.float32) * 1.5
    view = _HandStorage("root", 10, view=("view", 2, 5))
    obj = {"w": _HandTensor(view, 1, (2, 2), (1, 2)), "whole": _HandTensor(_HandStorage("root", 10), 0, (10,), (1,))}
    path = _write_legacy(tmp_path / "views.pth", obj, {"root": root})
    expected = torch.load(path, weights_only=True)
    assert_same(load(path), expected)
    np.testing.assert_array_equal(load(path)["w"], [[3 * 1.5, 5 * 1.5], [4 * 1.5, 6 * 1.5]])


@pytest.mark.parametrize(
    "offset, size, stride", [(0, (5,), (1,)), (2, (3,), (1,)), (0, (2, 3), (3, 1)), (0, (2,), (4,))]
)
def test_tensor_past_its_storage_is_refused(tmp_path, offset, size, stride):
    """Sizes and strides are checked before numpy reads the bytes (4 elements stored)."""
    storage = _HandStorage("s", 4)
    path = _write_legacy(tmp_path / "past.pth", {"w": _HandTensor(storage, offset, size, stride)}, {"s": np.ones(4)})
    with pytest.raises(ValueError, match="past the end of its storage") as error:
        load(path)
    assert "\n" not in str(error.value) and "past.pth" in str(error.value)


class _Shell:
    """Unpickles by running a shell command: what a hostile .pth does."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Custom:
    pass


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_globals_are_refused_without_running_them(tmp_path, fmt):
    marker = tmp_path / "ran"
    path = _save({"w": torch.ones(2), "evil": _Shell(f"touch {marker}")}, tmp_path / f"evil_{fmt}.pth", fmt)
    with pytest.raises(ValueError) as error:
        load(path)
    message = str(error.value)
    assert message == (
        f"{str(path)!r} holds a '{os.system.__module__}.system' object; only tensors and plain containers are read."
    )
    assert not marker.exists()
    # The file is really hostile: an unrestricted load runs the command.
    torch.load(path, weights_only=False)
    assert marker.exists()

    custom = _save({"w": torch.ones(2), "object": _Custom()}, tmp_path / f"custom_{fmt}.pth", fmt)
    with pytest.raises(ValueError, match=rf"holds a '{__name__}\._Custom' object") as error:
        load(custom)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bfloat16_is_refused_clearly(tmp_path, fmt):
    path = _save({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf16.pth", fmt)
    with pytest.raises(ValueError, match=r"holds bfloat16 tensors, which numpy has no type for") as error:
        load(path)
    assert "\n" not in str(error.value)


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="is not a file torch.save wrote"):
        load(text)
    whole = _save({"w": torch.randn(100)}, tmp_path / "whole.pth", "legacy").read_bytes()
    for name, data in (("truncated", whole[: len(whole) - 10]), ("cut", whole[:200])):
        (tmp_path / f"{name}.pth").write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}.pth") as error:
            load(tmp_path / f"{name}.pth")
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_state_dict(tmp_path, fmt):
    weights = collections.OrderedDict(a=torch.randn(2, 3), b=torch.arange(4))
    flat = load_state_dict(_save(weights, tmp_path / "flat.pth", fmt))
    assert type(flat) is dict
    assert_same(flat, dict(weights))
    wrapped = load_state_dict(_save({"state_dict": weights, "epoch": 3}, tmp_path / "wrapped.pth", fmt))
    assert_same(wrapped, dict(weights))
    with pytest.raises(ValueError, match=r"holds a list, not a state dict of tensors"):
        load_state_dict(_save([torch.ones(1)], tmp_path / "list.pth", fmt))
    with pytest.raises(ValueError, match=r"its entry 'epoch' is a int"):
        load_state_dict(_save({"w": torch.ones(1), "epoch": 3}, tmp_path / "mixed.pth", fmt))


@pytest.mark.parametrize("command", ["train.py", "convert-alexnet"])
def test_commands_refuse_a_hostile_checkpoint_in_one_line(tmp_path, command):
    """The refusal reaches the user as one line and exit 2, and the pickled command never runs."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    marker = tmp_path / "ran"
    path = _save({"features.0.weight": torch.ones(2), "evil": _Shell(f"touch {marker}")}, tmp_path / "evil.pth", "zip")
    if command == "train.py":
        argv = [os.path.join(root, "train.py"), "--loss-weights", str(path), "--limit", "64", "--epochs", "1",
                "--out", str(tmp_path / "run")]
    else:
        argv = ["-m", "keras_pae", command, str(path), str(tmp_path / "alexnet.weights.h5")]
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not TF_STARTUP_LOG.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(
        f": error: {str(path)!r} holds a 'posix.system' object; only tensors and plain containers are read."
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()
    assert not (tmp_path / "run").exists() and not (tmp_path / "alexnet.weights.h5").exists()
