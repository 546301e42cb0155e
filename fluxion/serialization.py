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
``state.3.exp_avg``). The header's ``__metadata__`` holds two more entries: ``fluxion``, JSON
with the skeleton of the saved object (dicts, lists and tuples, references to the tensors by
name, and plain values such as step counts, lr and betas), and ``fluxion.crc32``, a checksum
of the whole file (the CRC-32 of the CRC-32s of its 8 MiB blocks, computed with those 8 hex
digits as ``00000000``, the blocks in parallel), so that any byte changed after the save,
in the data, the header or the metadata, raises ``CheckpointError``; so does a truncated
file, before anything is returned. (Files of version 1 carry a CRC-32 per tensor only.)

Saving writes an unnamed file in the same folder (``O_TMPFILE``), syncs it and links it in
over the old one: a save killed at any moment leaves the old file and nothing else. Where the
filesystem has no unnamed files the temporary is ``.NAME.PID.RANDOM.fluxion-tmp``, and the
next save in the folder removes those whose process is gone. Loading maps the file
(copy-on-write) and checks the checksum over the mapping: the tensors are views of it,
nothing is copied. (Like any mapped loader's, they would fault if another program cut the
file short in place while they live; fluxion's saves replace files, never rewrite them.)

A plain safetensors file (no fluxion entry, e.g. pretrained weights) loads as a flat dict.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import importlib
import json
import math
import mmap
import os
import re
import secrets
import struct
import zlib
from typing import Any

import numpy as np

from fluxion.backends import threads
from fluxion.core import dtypes
from fluxion.core.checks import check_output_path, check_path
from fluxion.core.tensor import Tensor
from fluxion.errors import CheckpointError, PathError

__all__ = ["save", "load", "CheckpointNotFoundError"]

FORMAT, VERSION = "fluxion.serialization", 2
# the header's entry that holds the CRC-32 of the whole file, computed with it blank
CRC_KEY, _BLANK = "fluxion.crc32", "00000000"
_CRC_FIELD = f'"{CRC_KEY}":"'.encode()
# a save's temporary while it is written: .NAME.PID.RANDOM.fluxion-tmp
_TEMP = ".fluxion-tmp"
_BLOCK = 8 << 20  # the checksum's blocks, checked in parallel
_STALE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}" + re.escape(_TEMP) + "$")

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
_TAGS = {dtype: tag for tag, dtype in _DTYPES.items()}


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """``load`` of a path where there is no file."""


# ----------------------------------------------------------------------------- save


def save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` as safetensors.

    ``obj``: a state dict (name -> Tensor), a Module or an optimizer (saved as their
    ``state_dict()``), or any nest of dicts (str/int keys), lists and tuples whose leaves are
    tensors, NumPy arrays, numbers, strings, bools or None. Raises ``PathError`` when the
    file cannot be written (a full disk, a read-only folder); what was at ``path`` is then
    unchanged.
    """
    path = check_output_path("save", "path", path)
    if not isinstance(obj, dict | list | tuple | Tensor) and callable(
        getattr(obj, "state_dict", None)
    ):
        obj = obj.state_dict()
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, "", arrays)
    meta = {"format": FORMAT, "version": VERSION, "tree": tree}
    header: dict[str, Any] = {"__metadata__": {"fluxion": json.dumps(meta), CRC_KEY: _BLANK}}
    offset = 0  # widest items first: every tensor starts aligned to its itemsize
    for name in sorted(arrays, key=lambda k: -arrays[k].dtype.itemsize):
        a = arrays[name]
        header[name] = {
            "dtype": _TAGS[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads
    prefix = struct.pack("<Q", len(text)) + text
    chunks = [prefix] + [arrays[n].reshape(-1).view(np.uint8) for n in header if n in arrays]
    try:
        write_atomically(path, chunks, 8 + text.index(_CRC_FIELD) + len(_CRC_FIELD))
    except OSError as e:
        raise PathError(
            f"save: cannot write {path!r} ({e.strerror or e}); nothing was written, the file "
            "that was there (if any) is unchanged"
        ) from None


def write_atomically(path: str, chunks, checksum_at: int | None = None) -> None:
    """``chunks`` (bytes-like) into a new file at ``path``; with ``checksum_at``, the file's
    checksum (``_file_crc``) written over the 8 bytes at that offset.

    The data goes into an unnamed file (``O_TMPFILE``) that is linked in only once complete
    and on disk, so a save killed at any moment leaves nothing; where the filesystem has no
    unnamed files, into a temporary named after this process, which the next save in that
    folder removes once the process is gone. The folder is synced after the rename."""
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder)
    temp = os.path.join(
        folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP}"
    )
    fd, named = _open_unnamed(folder), False
    if fd is None:
        fd, named = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), True
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            for chunk in chunks:
                f.write(chunk)
        if checksum_at is not None:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as written:  # as the file has them
                os.pwrite(fd, b"%08x" % _file_crc(written, checksum_at), checksum_at)
        os.fsync(fd)
        if not named:
            # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N links the open file itself
            proc = os.open("/proc/self/fd", os.O_RDONLY)
            try:
                os.link(str(fd), temp, src_dir_fd=proc, follow_symlinks=True)
            finally:
                os.close(proc)
            named = True
        os.replace(temp, path)
        named = False
    finally:
        os.close(fd)
        if named:
            os.remove(temp)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _file_crc(data, at: int) -> int:
    """The file's checksum: the CRC-32 of the CRC-32s (little-endian) of its 8 MiB blocks,
    with the 8 bytes at ``at`` read as ``00000000``. Blocks are checked by several threads
    (zlib lets go of the GIL), so a large file checks at the speed of its reading."""
    view = memoryview(data)

    def block_crc(start: int) -> int:
        block = view[start : start + _BLOCK]
        if start <= at < start + _BLOCK or start <= at + 7 < start + _BLOCK:
            patched = bytearray(block)
            for i in range(max(at, start), min(at + 8, start + len(block))):
                patched[i - start] = ord("0")
            block = patched
        return zlib.crc32(block)

    starts = range(0, len(view), _BLOCK)
    if len(starts) > 1:
        workers = min(len(starts), threads.get_num_threads())
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            crcs = list(pool.map(block_crc, starts))
    else:
        crcs = [block_crc(0)]
    return zlib.crc32(struct.pack(f"<{len(crcs)}I", *crcs))


def _open_unnamed(folder: str) -> int | None:
    """A file descriptor of a new unnamed file in ``folder``, or None where that cannot be."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o666)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # no unnamed files here
            return None
        raise


def _remove_stale_temporaries(folder: str) -> None:
    """Remove the temporaries of saves whose process is gone (killed in the middle)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _STALE.match(name)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # alive (or another user's): its save may be running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(FileNotFoundError):  # another save removed it first
            os.remove(os.path.join(folder, name))


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
    foreign file; nothing is returned unless the whole file checks out. The tensors are
    views of the file mapped copy-on-write: nothing is read twice, and writing to them
    never changes the file.
    """
    path = check_path("load", "path", path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise CheckpointError(
                    f"load: '{path}' is not a safetensors checkpoint (only {size} bytes: "
                    "empty or truncated)"
                )
            data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
    except FileNotFoundError:
        raise CheckpointNotFoundError(
            f"load: no checkpoint at '{path}' (no such file); check the path, or save one with fx.save"
        ) from None
    except IsADirectoryError:
        raise CheckpointError(f"load: '{path}' is a directory, not a checkpoint file") from None
    except PermissionError:
        raise CheckpointError(f"load: '{path}' cannot be read (permission denied)") from None
    n, header = _header(path, data)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"load: the metadata of '{path}' is corrupted (not a JSON object)")
    checked = _check_crc(path, data, n)
    arrays = _tensors(path, data, n, header)
    if "fluxion" not in meta:  # a plain safetensors file: a flat state dict
        return {name: Tensor._from_array(a) for name, a in arrays.items()}
    try:
        meta = json.loads(meta["fluxion"])
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}")
        if meta["version"] > VERSION:
            raise CheckpointError(
                f"load: '{path}' was written by a newer fluxion (checkpoint version "
                f"{meta['version']}, this one reads up to {VERSION}); upgrade fluxion"
            )
        if meta["version"] >= 2 and not checked:
            raise ValueError(f"its {CRC_KEY} entry is missing")
        tree = meta["tree"]
        if meta["version"] == 1:  # before the checksum covered the whole file: one per tensor
            crcs = meta["crc32"]
            if set(crcs) != set(arrays) or any(_crc(a) != crcs[k] for k, a in arrays.items()):
                raise CheckpointError(
                    f"load: '{path}' is corrupted: the data of a tensor fails its checksum"
                )
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"load: the fluxion metadata of '{path}' is corrupted ({type(e).__name__}: {e})"
        ) from None
    try:
        return _decode(tree, arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ImportError) as e:
        raise CheckpointError(
            f"load: the structure stored in '{path}' is corrupted ({type(e).__name__}: {e})"
        ) from None


def _header(path: str, data: memoryview) -> tuple[int, dict]:
    """The length and the JSON of the safetensors header, with the checks that tell a
    foreign file from a truncated one."""
    what = f"load: '{path}' is not a safetensors checkpoint"
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        if n > 100_000_000 or data[8:9] != b"{":
            raise CheckpointError(f"{what} (no safetensors header; was it written by fx.save?)")
        raise CheckpointError(
            f"load: '{path}' is truncated: its header needs {n} bytes, the file has {len(data) - 8}"
        )
    try:
        header = json.loads(bytes(data[8 : 8 + n]))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{what} (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} (its header is not a JSON object)")
    end = 8 + n + max(
        (e["data_offsets"][1] for k, e in header.items() if k != "__metadata__" and isinstance(e, dict)
         and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
         and isinstance(e["data_offsets"][1], int)),
        default=0,
    )  # fmt: skip
    if len(data) < end:
        raise CheckpointError(
            f"load: '{path}' is truncated: it should hold {end} bytes, it has {len(data)}"
        )
    return n, header


def _check_crc(path: str, data: memoryview, n: int) -> bool:
    """Check the checksum of the whole file (``_file_crc``), if its header has one (True
    then)."""
    raw = bytes(data[8 : 8 + n])
    count = raw.count(_CRC_FIELD)
    if count == 0:
        return False
    at = 8 + raw.find(_CRC_FIELD) + len(_CRC_FIELD)
    stored = bytes(data[at : at + 9])
    crc = _file_crc(data, at)
    if count > 1 or stored != b'%08x"' % crc:
        raise CheckpointError(
            f"load: '{path}' is corrupted: the file fails its checksum (CRC-32 of the whole "
            "file, header included); it was changed or damaged after it was saved"
        )
    return True


def _tensors(path: str, data: memoryview, n: int, header: dict) -> dict[str, np.ndarray]:
    """The arrays the header describes, as views of ``data``, after the checks of
    safetensors: known dtypes, sizes that fit the shapes, data laid end to end."""
    bad = f"load: '{path}' is corrupted"
    arrays, spans = {}, []
    for name, entry in header.items():
        try:
            tag, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not (isinstance(begin, int) and isinstance(end, int) and isinstance(shape, list)):
                raise TypeError("offsets and shape must be integers")
            if not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"shape {shape}")
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"{bad}: the entry of tensor '{name}' is malformed ({e})"
            ) from None
        if tag not in _DTYPES:
            raise CheckpointError(
                f"load: tensor '{name}' in '{path}' has dtype {tag}, which fluxion does not support"
            )
        dtype, count = _DTYPES[tag], math.prod(shape)
        if end - begin != count * dtype.itemsize or begin < 0:
            raise CheckpointError(
                f"{bad}: tensor '{name}' of shape {shape} and dtype {tag} has {end - begin} bytes"
            )
        spans.append((begin, end, name))
        array = np.frombuffer(data, dtype, count, 8 + n + begin) if count else np.empty(0, dtype)
        arrays[name] = array.reshape(shape) if array.flags.aligned else array.reshape(shape).copy()
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise CheckpointError(f"{bad}: the data of tensor '{name}' overlaps or leaves a gap")
        position = end
    if 8 + n + position != len(data):
        raise CheckpointError(
            f"{bad}: {len(data) - 8 - n - position} bytes follow the last tensor's data"
        )
    return arrays


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
