"""Checkpoints as safetensors files: state dicts, Modules, optimizer state. No pickle.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> model = fx.nn.Linear(3, 2)
>>> fx.save(model, os.path.join(folder, "model.safetensors"))  # a Module: its state_dict()
>>> model.load_state_dict(fx.load(os.path.join(folder, "model.safetensors")))
_IncompatibleKeys(missing_keys=[], unexpected_keys=[])
>>> optimizer = fx.optim.AdamW(model)
>>> fx.save(optimizer, os.path.join(folder, "opt.safetensors"))  # nested: state + groups
>>> optimizer.load_state_dict(fx.load(os.path.join(folder, "opt.safetensors")))

The file is a standard safetensors file (readable by ``safetensors.numpy`` or torch, bfloat16
included): one entry per tensor, named by its dotted path (``layers.0.weight``,
``state.3.exp_avg``). The header's ``__metadata__`` holds one more entry, ``fluxion``: JSON
with the skeleton of the saved object (dicts, lists and tuples, references to the tensors by
name, and plain values such as step counts, lr and betas) and a CRC-32 of every tensor's
bytes. ``load`` checks all of it before returning, so a truncated or corrupted file raises
``CheckpointError`` instead of giving back half a model; saving writes to a temporary file
and renames it, so an interrupted save never leaves a truncated checkpoint behind.

A plain safetensors file (no fluxion entry, e.g. pretrained weights) loads as a flat dict.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import zlib
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from fluxion.core import dtypes
from fluxion.core.checks import check_output_path, check_path
from fluxion.core.tensor import Tensor
from fluxion.errors import CheckpointError

__all__ = ["save", "load", "CheckpointNotFoundError"]

FORMAT, VERSION = "fluxion.serialization", 1

# safetensors dtype tags -> NumPy dtypes (safetensors.numpy.load knows no BF16)
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "U32": np.dtype(np.uint32),
    "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16),
    "I32": np.dtype(np.int32),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "BF16": dtypes.bfloat16_np,
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
}


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """``load`` of a path where there is no file."""


# ----------------------------------------------------------------------------- save


def save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` as safetensors.

    ``obj``: a state dict (name -> Tensor), a Module or an optimizer (saved as their
    ``state_dict()``), or any nest of dicts (str/int keys), lists and tuples whose leaves are
    tensors, NumPy arrays, numbers, strings, bools or None.
    """
    path = check_output_path("save", "path", path)
    if not isinstance(obj, dict | list | tuple | Tensor) and callable(
        getattr(obj, "state_dict", None)
    ):
        obj = obj.state_dict()
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, "", arrays)
    crc = {name: _crc(a) for name, a in arrays.items()}
    meta = {"format": FORMAT, "version": VERSION, "tree": tree, "crc32": crc}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        safetensors.numpy.save_file(arrays, tmp, metadata={"fluxion": json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _encode(x, path: str, arrays: dict) -> Any:
    """The JSON skeleton of ``x``; its tensors go into ``arrays`` under unique dotted names."""
    if isinstance(x, Tensor | np.ndarray):
        array = x._concrete() if isinstance(x, Tensor) else x
        if array.dtype not in dtypes.SHORT_NAMES:
            raise CheckpointError(
                f"save: the array at '{path}' has dtype {array.dtype}, which fluxion does not support"
            )
        name = path or "tensor"
        if name in arrays or name == "__metadata__":
            n = 2
            while f"{name}#{n}" in arrays:
                n += 1
            name = f"{name}#{n}"
        arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return {"tensor": name}
    if isinstance(x, dict):
        items = []
        for k, v in x.items():
            if isinstance(k, bool) or not isinstance(k, str | int):
                raise CheckpointError(f"save: dict keys must be str or int, got {k!r} at '{path}'")
            items.append([k, _encode(v, f"{path}.{k}" if path else str(k), arrays)])
        return {"dict": items}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a NamedTuple (fluxion.optim states)
        cls = type(x)
        if not cls.__module__.startswith("fluxion."):
            raise CheckpointError(
                f"save: cannot store a {cls.__name__} (at '{path or 'the top'}'): only fluxion's own "
                "NamedTuples can be restored; convert it to a dict or tuple first"
            )
        fields = [_encode(v, f"{path}.{k}" if path else k, arrays) for k, v in zip(x._fields, x)]
        return {"namedtuple": [f"{cls.__module__}:{cls.__qualname__}", fields]}
    if type(x) in (list, tuple):  # not subclasses: they would come back as plain tuples
        kind = "list" if isinstance(x, list) else "tuple"
        return {
            kind: [_encode(v, f"{path}.{i}" if path else str(i), arrays) for i, v in enumerate(x)]
        }
    if isinstance(x, np.generic):
        x = x.item()
    if x is None or isinstance(x, bool | int | float | str):
        return {"value": x}
    raise CheckpointError(
        f"save: cannot store a {type(x).__name__} (at '{path or 'the top'}'); checkpoints hold "
        "tensors, numbers, strings, bools, None and dicts/lists/tuples of them (no pickle)"
    )


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(array.reshape(-1).view(np.uint8))


# ----------------------------------------------------------------------------- load


def load(path: str | os.PathLike):
    """Read a checkpoint written by ``save`` (or any safetensors file, as a flat dict).

    Returns what was saved (a Module or optimizer comes back as its state dict) with
    ``Tensor`` leaves. Raises ``CheckpointError`` for a missing, truncated, corrupted or
    foreign file; nothing is returned unless the whole file checks out.
    """
    path = check_path("load", "path", path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointNotFoundError(
            f"load: no checkpoint at '{path}' (no such file); check the path, or save one with fx.save"
        ) from None
    except IsADirectoryError:
        raise CheckpointError(f"load: '{path}' is a directory, not a checkpoint file") from None
    header = _header(path, data)
    try:
        entries = dict(safetensors.deserialize(data))
    except Exception as e:  # safetensors raises its own error type for bad offsets, sizes...
        raise CheckpointError(
            f"load: '{path}' is truncated or corrupted ({e}); the checkpoint cannot be read"
        ) from None
    arrays = {}
    for name in header:
        if name == "__metadata__":
            continue
        entry = entries[name]
        tag = entry["dtype"]
        if tag not in _DTYPES:
            raise CheckpointError(
                f"load: tensor '{name}' in '{path}' has dtype {tag}, which fluxion does not support"
            )
        arrays[name] = np.frombuffer(entry["data"], _DTYPES[tag]).reshape(entry["shape"])
    meta = (header.get("__metadata__") or {}).get("fluxion")
    if meta is None:  # a plain safetensors file: a flat state dict
        return {name: Tensor._from_array(a) for name, a in arrays.items()}
    try:
        meta = json.loads(meta)
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}")
        if meta["version"] > VERSION:
            raise CheckpointError(
                f"load: '{path}' was written by a newer fluxion (checkpoint version "
                f"{meta['version']}, this one reads up to {VERSION}); upgrade fluxion"
            )
        crcs, tree = meta["crc32"], meta["tree"]
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"load: the fluxion metadata of '{path}' is corrupted ({type(e).__name__}: {e})"
        ) from None
    if set(crcs) != set(arrays):
        raise CheckpointError(
            f"load: '{path}' is corrupted: its tensors {sorted(arrays)} do not match its metadata "
            f"{sorted(crcs)}"
        )
    for name, a in arrays.items():
        if _crc(a) != crcs[name]:
            raise CheckpointError(
                f"load: '{path}' is corrupted: the data of tensor '{name}' fails its checksum"
            )
    try:
        return _decode(tree, arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ImportError) as e:
        raise CheckpointError(
            f"load: the structure stored in '{path}' is corrupted ({type(e).__name__}: {e})"
        ) from None


def _header(path: str, data: bytes) -> dict:
    """The safetensors JSON header, with the checks that tell a foreign file from a broken one."""
    what = f"load: '{path}' is not a safetensors checkpoint"
    if len(data) < 8:
        raise CheckpointError(f"{what} (only {len(data)} bytes: empty or truncated)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        if n > 100_000_000 or not data[8:9] == b"{":
            raise CheckpointError(f"{what} (no safetensors header; was it written by fx.save?)")
        raise CheckpointError(
            f"load: '{path}' is truncated: its header needs {n} bytes, the file has {len(data) - 8}"
        )
    try:
        header = json.loads(data[8 : 8 + n], object_pairs_hook=dict)
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{what} (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} (its header is not a JSON object)")
    end = 8 + n + max(
        (e["data_offsets"][1] for k, e in header.items() if k != "__metadata__" and isinstance(e, dict)
         and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2),
        default=0,
    )  # fmt: skip
    if len(data) < end:
        raise CheckpointError(
            f"load: '{path}' is truncated: it should hold {end} bytes, it has {len(data)}"
        )
    return header


def _decode(node, arrays: dict):
    ((kind, value),) = node.items()
    if kind == "tensor":
        return Tensor._from_array(arrays[value])
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in value}
    if kind == "list":
        return [_decode(v, arrays) for v in value]
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in value)
    if kind == "value":
        return value
    if kind == "namedtuple":
        (qualified, fields) = value
        module, _, name = qualified.partition(":")
        if not module.startswith("fluxion."):  # never import what a file names, outside fluxion
            raise ValueError(f"NamedTuple {qualified!r} is not one of fluxion's")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise ValueError(f"{qualified!r} is not a NamedTuple")
        return cls(*(_decode(v, arrays) for v in fields))
    raise ValueError(f"unknown node kind {kind!r}")
