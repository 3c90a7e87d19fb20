"""Reads PyTorch `.pth` checkpoints with the standard library and numpy only.

`torch.save` writes a pickle whose tensors point at raw storages by a
persistent id; since PyTorch 1.6 the pickle and the storages sit in a zip
(`<name>/data.pkl`, `<name>/data/<key>`, `<name>/byteorder`), before that
(and still with `_use_new_zipfile_serialization=False`) they follow each
other in one stream: magic number, protocol version, system info, the
object pickle, the list of storage keys, then each storage as a
little-endian int64 element count and its raw bytes.

The unpickler resolves only the globals a state dict needs (`OrderedDict`,
torch's tensor and parameter rebuild functions, storage classes and dtypes)
and refuses every other one before anything is called, so reading a file
never runs code it holds. Everything the pickle can reach is immutable
(named tuples, bound methods), and each tensor's size and strides are
checked against its storage before numpy looks at the bytes.
"""

import collections
import os
import pickle
import struct
import zipfile

import numpy as np

# torch.serialization's MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# Storage classes by name (`torch.FloatStorage`, ...) and, for the dtypes
# that have none (torch >= 2.3 writes `_rebuild_tensor_v3`, an
# `UntypedStorage` and a dtype global), dtypes by name (`torch.uint16`, ...).
STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexDoubleStorage": "c16",
    "ComplexFloatStorage": "c8",
}
TENSOR_DTYPES = {
    "float64": "f8",
    "float32": "f4",
    "float16": "f2",
    "int64": "i8",
    "int32": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint64": "u8",
    "uint32": "u4",
    "uint16": "u2",
    "uint8": "u1",
    "bool": "?",
    "complex128": "c16",
    "complex64": "c8",
}
# dtypes numpy has no type for, by storage class or dtype name.
NO_NUMPY_TYPE = {
    "BFloat16Storage": "bfloat16",
    "bfloat16": "bfloat16",
    "ComplexHalfStorage": "complex32",
    "complex32": "complex32",
}


class _Refused(ValueError):
    """A file this reader will not read; the message is the one sentence to show."""


_StorageType = collections.namedtuple("_StorageType", "dtype")
_DType = collections.namedtuple("_DType", "dtype")
# A storage as the pickle refers to it: `numel` elements of `dtype` from
# element `start` of the storage saved under `key` (start > 0 only for the
# storage views of old legacy files).
_StorageRef = collections.namedtuple("_StorageRef", "key dtype start numel")
_Tensor = collections.namedtuple("_Tensor", "storage offset size stride dtype")


def load(path):
    """Reads what `torch.save` wrote to `path`, tensors as numpy arrays.

    The result is `torch.load(path, weights_only=True)` with every tensor
    replaced by a C-contiguous array of the same dtype, shape and values, for
    files that hold only tensors and plain containers (dict, OrderedDict,
    list, tuple, str, numbers, None).

    Args:
        path: a `.pth`/`.pt` file in torch.save's zip or legacy format.

    Raises:
        ValueError: one sentence naming the file, for a file that is not a
            torch checkpoint, is corrupt, or holds anything else than tensors
            and plain containers (the refused global is named).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    try:
        reader = _ZipReader(path) if is_zip else _LegacyReader(path)
        return reader.load()
    except _Refused:
        raise
    except Exception as error:  # Truncated or hand-made files fail in many ways.
        raise ValueError(
            f"Could not read a torch checkpoint from {path!r} ({type(error).__name__})."
        ) from None


def load_state_dict(path):
    """Reads a PyTorch state dict from `path` as `{name: numpy array}`.

    A checkpoint of the form `{"state_dict": {...}, ...}` gives its inner
    state dict.

    Args:
        path: a `.pth`/`.pt` file in torch.save's zip or legacy format.

    Raises:
        ValueError: as `load`, or when the file holds anything else than a
            mapping of names to tensors.
    """
    path = os.fspath(path)
    state = load(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict of tensors."
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise ValueError(
                f"{path!r} is not a state dict of tensors: its entry {key!r} "
                f"is a {type(value).__name__}."
            )
    return dict(state)


class _Unpickler(pickle.Unpickler):
    """Resolves only a state dict's globals; storages through `storage_ref`."""

    def __init__(self, file, path, storage_ref=None):
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storage_ref = storage_ref

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils":
            rebuild = {
                "_rebuild_tensor": self._rebuild_tensor,
                "_rebuild_tensor_v2": self._rebuild_tensor_v2,
                "_rebuild_tensor_v3": self._rebuild_tensor_v3,
                "_rebuild_parameter": self._rebuild_parameter,
            }.get(name)
            if rebuild is not None:
                return rebuild
        # Old GPU checkpoints name `torch.cuda.FloatStorage`; the device is ignored.
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if (module, name) == ("torch.storage", "UntypedStorage"):
            return _StorageType("u1")
        if module == "torch" and name in TENSOR_DTYPES:
            return _DType(TENSOR_DTYPES[name])
        if module in ("torch", "torch.cuda") and (name in NO_NUMPY_TYPE or name.startswith("float8")):
            raise _Refused(
                f"{self.path!r} holds {NO_NUMPY_TYPE.get(name, name)} tensors, which numpy has "
                "no type for; save them as float32 (tensor.float()) to read them here."
            )
        raise _Refused(
            f"{self.path!r} holds a '{module}.{name}' object; only tensors and "
            "plain containers are read."
        )

    def persistent_load(self, pid):
        if self.storage_ref is None or not isinstance(pid, tuple) or not pid:
            raise _Refused(f"{self.path!r} holds an object torch.save never writes here.")
        if _ascii(pid[0]) != "storage":
            raise _Refused(
                f"{self.path!r} holds a pickled {_ascii(pid[0])!r} (a whole module?); "
                "only tensors and plain containers are read."
            )
        return self.storage_ref(pid[1:])

    def _rebuild_tensor(self, storage, offset, size, stride):
        if not isinstance(storage, _StorageRef):
            raise _Refused(f"{self.path!r} rebuilds a tensor from something else than a storage.")
        return self._tensor(storage, offset, size, stride, storage.dtype)

    def _rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad, hooks, metadata=None):
        self._no_metadata(metadata)
        return self._rebuild_tensor(storage, offset, size, stride)

    def _rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
        self._no_metadata(metadata)
        if not isinstance(storage, _StorageRef) or not isinstance(dtype, _DType):
            raise _Refused(f"{self.path!r} rebuilds a tensor from something else than a storage.")
        return self._tensor(storage, offset, size, stride, dtype.dtype)

    def _rebuild_parameter(self, data, requires_grad, hooks):
        return data

    def _no_metadata(self, metadata):
        # Conjugate/negative bits and the like would change the values read.
        if metadata:
            raise _Refused(
                f"{self.path!r} holds a tensor with metadata {metadata!r}; "
                "only plain tensors are read."
            )

    def _tensor(self, storage, offset, size, stride, dtype):
        """Checks that the view stays inside its storage; the bytes come later."""
        if not (
            _is_int(offset)
            and isinstance(size, tuple)
            and isinstance(stride, tuple)
            and len(size) == len(stride)
            and all(_is_int(n) for n in size + stride)
        ):
            raise _Refused(f"{self.path!r} holds a tensor with a malformed size or stride.")
        itemsize = np.dtype(dtype).itemsize
        if all(n > 0 for n in size):
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if (last + 1) * itemsize > storage.numel * np.dtype(storage.dtype).itemsize:
                raise _Refused(f"{self.path!r} is corrupt: a tensor reaches past the end of its storage.")
        return _Tensor(storage, offset, size, stride, dtype)


class _Reader:
    """Unpickles the object, then turns its tensors into arrays."""

    byteorder = "<"

    def __init__(self, path):
        self.path = path
        self.declared = {}  # storage key -> (dtype, numel) as the pickle declares it

    def storage_ref(self, args):
        if len(args) == 4:  # zip: type, key, location, numel
            storage_type, key, _, numel = args
            view = None
        elif len(args) == 5:  # legacy: ... and the view of old files
            storage_type, key, _, numel, view = args
        else:
            raise _Refused(f"{self.path!r} holds a storage reference of an unknown form.")
        key = _ascii(key)
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _is_int(numel):
            raise _Refused(f"{self.path!r} holds a malformed storage reference.")
        dtype = storage_type.dtype
        if self.declared.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise _Refused(f"{self.path!r} is corrupt: storage {key!r} is declared twice differently.")
        if view is None:
            return _StorageRef(key, dtype, 0, numel)
        _, start, view_numel = view
        if not (_is_int(start) and _is_int(view_numel) and start + view_numel <= numel):
            raise _Refused(f"{self.path!r} is corrupt: a storage view lies outside its storage.")
        return _StorageRef(key, dtype, start, view_numel)

    def unpickle(self, file):
        return _Unpickler(file, self.path, self.storage_ref).load()

    def to_arrays(self, obj, storages):
        if isinstance(obj, _Tensor):
            return self.array(obj, storages[obj.storage.key])
        if isinstance(obj, (_StorageRef, _StorageType, _DType)):
            raise _Refused(f"{self.path!r} holds a bare storage or dtype; only tensors are read.")
        if isinstance(obj, dict):
            converted = type(obj)((k, self.to_arrays(v, storages)) for k, v in obj.items())
            if isinstance(obj, collections.OrderedDict):
                converted.__dict__.update(obj.__dict__)  # a state dict's `_metadata`
            return converted
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.to_arrays(v, storages) for v in obj)
        return obj

    def array(self, tensor, data):
        """A C-contiguous, native-endian copy of `tensor` read from `data`."""
        dtype = np.dtype(tensor.dtype)
        if 0 in tensor.size:
            return np.zeros(tensor.size, dtype)
        ref = tensor.storage
        start = ref.start * np.dtype(ref.dtype).itemsize + tensor.offset * dtype.itemsize
        flat = np.frombuffer(data, dtype.newbyteorder(self.byteorder), offset=start,
                             count=(len(data) - start) // dtype.itemsize)
        # torch's strides count elements; numpy's count bytes.
        view = np.lib.stride_tricks.as_strided(
            flat, tensor.size, [s * dtype.itemsize for s in tensor.stride], writeable=False
        )
        return np.array(view, dtype.newbyteorder("="), order="C")

    def check_length(self, key, data):
        dtype, numel = self.declared[key]
        if len(data) != numel * np.dtype(dtype).itemsize:
            raise _Refused(
                f"{self.path!r} is corrupt: storage {key!r} has {len(data)} bytes, "
                f"expected {numel * np.dtype(dtype).itemsize}."
            )
        return data


class _ZipReader(_Reader):
    def load(self):
        with zipfile.ZipFile(self.path) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise _Refused(f"{self.path!r} is a zip file but not one torch.save wrote.")
            prefix = pickles[0][: -len("data.pkl")]
            if f"{prefix}byteorder" in archive.namelist():
                # Files from before PyTorch 2.1 have no record: little-endian.
                order = archive.read(f"{prefix}byteorder").decode("ascii").strip()
                if order not in ("little", "big"):
                    raise _Refused(f"{self.path!r} names an unknown byte order {order!r}.")
                self.byteorder = "<" if order == "little" else ">"
            with archive.open(pickles[0]) as f:
                obj = self.unpickle(f)
            storages = {
                key: self.check_length(key, archive.read(f"{prefix}data/{key}"))
                for key in self.declared
            }
        return self.to_arrays(obj, storages)


class _LegacyReader(_Reader):
    def load(self):
        with open(self.path, "rb") as f:
            plain = _Unpickler(f, self.path)
            try:
                magic = plain.load()
            except _Refused:
                raise
            except Exception:
                magic = None
            if magic != LEGACY_MAGIC:
                raise _Refused(f"{self.path!r} is not a file torch.save wrote (zip or legacy format).")
            protocol = _Unpickler(f, self.path).load()
            if protocol != LEGACY_PROTOCOL:
                raise _Refused(f"{self.path!r} uses legacy protocol {protocol!r}; only {LEGACY_PROTOCOL} is read.")
            _Unpickler(f, self.path).load()  # system info; the storages are little-endian anyway
            obj = self.unpickle(f)
            keys = [_ascii(k) for k in _Unpickler(f, self.path).load()]
            storages = {}
            for key in keys:
                if key not in self.declared:
                    raise _Refused(f"{self.path!r} is corrupt: it stores {key!r}, which no tensor uses.")
                dtype, numel = self.declared[key]
                (count,) = struct.unpack("<q", f.read(8))
                if count != numel:
                    raise _Refused(f"{self.path!r} is corrupt: storage {key!r} holds {count} elements, expected {numel}.")
                storages[key] = self.check_length(key, f.read(numel * np.dtype(dtype).itemsize))
        missing = set(self.declared) - set(storages)
        if missing:
            raise _Refused(f"{self.path!r} is corrupt: storage {sorted(missing)[0]!r} is missing.")
        return self.to_arrays(obj, storages)


def _ascii(value):
    # Checkpoints pickled under Python 2 may hold these names as bytes.
    return value.decode("ascii") if isinstance(value, bytes) else value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
