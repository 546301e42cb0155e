"""The toolchain of native kernels (``emit.py`` writes their C): the C compiler and its
flags, the kernel cache on disk, and loading kernels into the process.

A compiled function's kernels become one shared library: their C is split into one part per
core, the parts compiled at once (``cc -c``) and linked into one library. On workload A's 45
kernels that takes 310 ms against 320 ms for one library per part (the parts' links ran at
once), and one library costs 5 memory mappings whatever its number of kernels, where one per
part cost 5 per core.

The cache (``cache_dir()/kernels``) keeps each library, named by the hash of its C and of
what else it depends on (``_machine``), so a function compiles once per machine. Nothing in
it is trusted:

* The folders are made private (0700, whatever the umask) and refused (the fallback below)
  where they are not folders of the current user that only that user can write: a shared
  or world-writable ``FLUXION_CACHE_DIR``, a file, a symbolic link.
* An entry is opened without following symbolic links and read only where it is a regular
  file of the current user that no one else can write. Its bytes are checked against the
  size and SHA-256 recorded when it was built, and the bytes checked are the bytes loaded
  (from a private copy, see ``_loaded_copy``): no file can be swapped between the check and
  the load, and no file the process maps can be truncated under it (a SIGBUS). An entry
  that fails a check is rebuilt and replaced, with a warning, never loaded.
* The cache is pruned, least recently used first, to ``FLUXION_CACHE_MAX_SIZE`` bytes
  (1G; K, M and G are powers of 1000), passing it by about a 64th between prunings.
* A library is unloaded when no kernel of it is held any more (its compiled function, or
  the entry of its shape in that function's cache, is gone), and a process keeps at most
  ``MAX_LOADED`` loaded.

Any failure to build, store or load (no compiler, a compiler error, a cache that is not
safe, a full or read-only disk, an exhausted address space) warns once, and the fused
groups of every compiled function run on NumPy for the rest of the process.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import errno
import functools
import gc
import hashlib
import importlib.machinery
import importlib.util
import itertools
import os
import re
import secrets
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from typing import NamedTuple

from fluxion.errors import InvalidArgumentError

# -O1 -ftree-vectorize: as fast as -O2 on these loops (GELU's forward and backward, a masked
# softmax, a layer norm's: within 1%) and 20-25% faster to compile (gcc takes 4-6 ms a loop);
# -ffp-contract=off: no fused multiply-adds, so + - * / round exactly as NumPy's do;
# -fwrapv: signed integers wrap on overflow, as NumPy's do; -fopenmp-simd: honour the
# "declare simd" of emit.py's prelude, which points the vectorizer at libmvec;
# -fno-trapping-math: a comparison may then be if-converted into a blend, so a loop with a
# select (the prelude's fx_exp clamps its argument) still vectorizes (softmax's exp ran
# scalar, 4x slower, without it); it changes no result, only FP exception flags, which
# nothing reads.
FLAGS = [
    "-O1",
    "-ftree-vectorize",
    "-march=native",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fwrapv",
    "-fopenmp-simd",
    "-fPIC",
]

# Kernels are plain C, compiled without Python's headers; Python runs them through _call.c,
# built by pip at install or, where it was not (a checkout run in place) or where the build
# is of an older calling convention (its ABI), into the cache.
_CALL_SOURCE = os.path.join(os.path.dirname(__file__), "_call.c")


@functools.cache
def _call_abi() -> int:
    with open(_CALL_SOURCE) as f:
        return int(re.search(r"#define FX_CALL_ABI (\d+)", f.read()).group(1))


# A loaded library costs 5 memory mappings; Linux gives a process 65,530 (vm.max_map_count),
# and dlopen failed once they were spent (~6,500 shapes of a function, never unloaded). The
# libraries held are those of the compiled functions alive, 64 shapes each at most (jit's
# max_cache_size); this bound keeps them under a tenth of what Linux allows.
MAX_LOADED = 1024

DEFAULT_MAX_SIZE = "1G"

# Pruning stats every file of the cache (~5 us each: 33 ms for 6,600 entries), so it is not
# done on every store: with a chance of _SCANS * stored bytes / limit, about once per
# 1/_SCANS of the limit stored, which lets the cache pass its limit by about that much.
_SCANS = 64

# A temporary file (its name starts with a dot) this old was left by a process killed
# while writing or loading it.
_STALE_SECONDS = 3600

_FAILED: list[str] = []  # why native kernels failed, once they did: no more tries
_LOCK = threading.Lock()  # _FAILED and _LOADED, for threads compiling at once


def usable_compiler() -> str | None:
    return None if _FAILED else _compiler()


@functools.cache
def _compiler() -> str | None:
    """The C compiler, or None (with a warning) where there is none to use."""
    if os.environ.get("FLUXION_NATIVE_KERNELS", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    headers = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
    if compiler is None or not (headers or _installed_call()):  # headers: to build _call.c
        warnings.warn(
            "fluxion: no C compiler or no Python headers (Python.h); fused groups of "
            "compiled functions run on NumPy, slower. Install gcc and python3-dev to fix.",
            stacklevel=2,
        )
        return None
    return compiler


@functools.cache
def _machine() -> str:
    """What the built code depends on besides its source: -march=native, the compiler."""
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line for line in f if line.startswith("flags")), "")
    version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True).stdout
    return "\n".join([cpu, version, sys.version, " ".join(FLAGS)])


def cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("FLUXION_CACHE_DIR") or os.path.join(root, "fluxion")


def max_cache_size() -> int:
    """The bytes the kernel cache may hold: ``FLUXION_CACHE_MAX_SIZE`` (default 1G)."""
    text = os.environ.get("FLUXION_CACHE_MAX_SIZE", DEFAULT_MAX_SIZE)
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmg]?)b?\s*", text, re.IGNORECASE)
    if found is None:
        raise InvalidArgumentError(
            f"FLUXION_CACHE_MAX_SIZE={text!r} is not a size: give bytes, or a number with "
            "K, M or G (powers of 1000), e.g. 500M"
        )
    number, unit = found.groups()
    return int(float(number) * 1000 ** " kmg".index(unit.lower() or " "))


class ToolchainError(Exception):
    """Native kernels cannot be built, stored or loaded here (jit warns and runs them on
    NumPy); the message says why."""


class _Unsafe(Exception):
    """A cache entry that is not loaded; the message says why (after the entry's name)."""


class Library:
    """The kernels of one loaded shared library: ``call`` (``_call.c``'s, which runs one) and
    each kernel's ``(address, length, parts)`` by name: where it runs and how it splits
    (its ``_split``, see emit.py). The library is unloaded once nothing holds this."""

    def __init__(self, call, handle: int, kernels: dict):
        self.call, self.kernels = call, kernels
        weakref.finalize(self, _ctypes.dlclose, handle).atexit = False


_LOADED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # entry name -> Library


def build(sources: dict[str, str], prelude: str) -> Library | None:
    """The kernels ``sources`` (name -> C, each after ``prelude``) built into one library and
    loaded, or taken from the cache or from a library loaded already; None, with a warning
    the first time, where they cannot be."""
    compiler = usable_compiler()
    if compiler is None:
        return None
    try:
        return _build(compiler, sources, prelude)
    except ToolchainError as e:
        reason = str(e)
    except (OSError, MemoryError, InvalidArgumentError) as e:  # a full disk, no memory...
        reason = f"native kernels could not be built, stored or loaded in {cache_dir()}: {e}"
    with _LOCK:
        first = not _FAILED
        _FAILED.append(reason)
    if first:
        warnings.warn(
            f"fluxion: {reason[-2000:]}\nCompiled functions run their fused groups on NumPy "
            "for the rest of this process (FLUXION_NATIVE_KERNELS=0 silences this).",
            stacklevel=3,
        )
    return None


def _build(compiler: str, sources: dict[str, str], prelude: str) -> Library:
    text = "\n\n".join([prelude, *sources.values()])
    name = _entry_name(text, ".so")
    call = call_module()
    with _LOCK:
        library = _LOADED.get(name)
    if library is not None:  # the same kernels again (another function's, or evicted)
        return library
    limit = max_cache_size()
    parts = _chunks(sources, os.cpu_count() or 1)
    wanted = {name: ["\n\n".join([prelude, *part.values()]) for part in parts]}
    if call is None:
        with open(_CALL_SOURCE) as f:
            call_source = f.read()
        call_name = _entry_name(call_source, sysconfig.get_config_var("EXT_SUFFIX"))
        wanted[call_name] = [call_source]
    with _cache() as folder:
        found, unsafe = {}, []
        for entry in wanted:
            try:
                found[entry] = _read(folder, entry)
            except _Unsafe as e:
                unsafe.append(f"{entry} {e}")
        missing = {entry: wanted[entry] for entry in wanted if found.get(entry) is None}
        if missing:
            built = _compile(compiler, missing)
            for entry, data in built.items():
                _store(folder, entry, data)
            found |= built
            stored = sum(map(len, built.values()))
            if limit <= _SCANS * stored or secrets.randbelow(limit) < _SCANS * stored:
                _prune(folder, limit)
        if unsafe:
            many = len(unsafe) > 1
            warnings.warn(
                f"fluxion: {len(unsafe)} kernel cache entr{'ies were' if many else 'y was'} "
                f"not loaded but rebuilt, in {cache_dir()}: {unsafe[0]}",
                stacklevel=3,
            )
        if call is None:
            call = _load_call(folder, found[call_name])
        return _load(folder, name, found[name], call.call, list(sources))


def _installed_call():
    """The ``_call`` module pip built, None where it did not build it or built an older
    ``_call.c`` (``pip install`` again after editing it)."""
    try:
        from fluxion.compiler.native import _call
    except ImportError:
        return None
    return _call if getattr(_call, "ABI", None) == _call_abi() else None


def call_module():
    """The ``_call`` module kernels run through (``last_threads()`` says on which threads
    the last one ran); None before the cache has built it, where pip did not."""
    return _installed_call() or _CALL.get("module")


_CALL: dict = {}  # "module": the _call built into the cache, once loaded


def _load_call(folder: int, library: bytes):
    with _loaded_copy(folder, library, sysconfig.get_config_var("EXT_SUFFIX")) as path:
        loader = importlib.machinery.ExtensionFileLoader("_call", path)
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location("_call", path, loader=loader)
        )
        loader.exec_module(module)
    return _CALL.setdefault("module", module)


def _load(folder: int, name: str, library: bytes, call, kernels: list[str]) -> Library:
    """Loads ``library``, the checked bytes of entry ``name``, and finds its ``kernels``."""
    with _LOCK:
        if len(_LOADED) >= MAX_LOADED:
            gc.collect()  # compiled functions gone, their libraries held in a cycle
        if len(_LOADED) >= MAX_LOADED:
            raise ToolchainError(
                f"{len(_LOADED)} libraries of native kernels are loaded, the most a process "
                "keeps (toolchain.MAX_LOADED): the compiled functions alive hold them"
            )
        try:
            with _loaded_copy(folder, library, ".so") as path:
                loaded = ctypes.CDLL(path)
        except OSError as e:  # out of address space or memory mappings, ...
            raise ToolchainError(f"native kernels could not be loaded: {e}") from e
        try:
            found = {
                k: (
                    ctypes.cast(getattr(loaded, k), ctypes.c_void_p).value,
                    *(ctypes.c_int64 * 2).in_dll(loaded, f"{k}_split"),
                )
                for k in kernels
            }
        except (AttributeError, ValueError) as e:
            _ctypes.dlclose(loaded._handle)
            raise ToolchainError(f"a library of native kernels lacks a kernel: {e}") from e
        library = _LOADED[name] = Library(call, loaded._handle, found)
        return library


_COPIES = itertools.count()


@contextlib.contextmanager
def _loaded_copy(folder: int, library: bytes, suffix: str):
    """A path to a new copy of ``library`` in the cache ``folder`` (a descriptor), for the
    loader, removed once loaded (a loaded library stays mapped). The path goes through this
    process's descriptor of the folder checked, so no one can swap the file between its
    writing and its loading; and each copy's name is new in the process, since the loader
    hands back the library it loaded before from a path it has seen before."""
    name = f".load-{os.getpid()}-{next(_COPIES)}{suffix}"
    try:
        _write_new(folder, name, library)
        yield f"/proc/self/fd/{folder}/{name}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=folder)


def _entry_name(source: str, suffix: str) -> str:
    """The name of what ``source`` builds to on this machine in the cache."""
    return (
        hashlib.sha256((_MAGIC.decode() + _machine() + source).encode()).hexdigest()[:32] + suffix
    )


# An entry is its library's bytes, then a trailer: _MAGIC, the library's size, and
# sha256(entry name + library). In the entry and not in a sidecar or a manifest: one rename
# publishes a library and its check together, so no reader, writer or pruner ever sees one
# without the other; and the name hashed with the bytes ties them to it (an entry copied
# under another name fails). No fsync: a file torn by a power cut fails the check and is
# rebuilt, so the first call of a function does not wait for the disk.
_MAGIC = b"fluxion1"  # the format's version, also hashed into the names
_TRAILER = struct.Struct("<8sQ32s")


def _digest(name: str, library: bytes) -> bytes:
    return hashlib.sha256(name.encode() + library).digest()


def _checked(name: str, data: bytes) -> bytes:
    """The library held in ``data``, the bytes of entry ``name``; raises _Unsafe where they
    do not match its trailer."""
    library = data[: -_TRAILER.size]
    magic, size, digest = _TRAILER.unpack_from(data, len(library)) if library else (b"", 0, b"")
    if magic != _MAGIC:
        raise _Unsafe("has no trailer (damaged, or written by an older fluxion)")
    if size != len(library):
        raise _Unsafe(f"holds {len(library)} bytes where {size} were stored")
    if digest != _digest(name, library):
        raise _Unsafe("does not match the SHA-256 recorded when it was built")
    return library


_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _read(folder: int, name: str, use: bool = True) -> bytes | None:
    """The library kept as ``name`` in the cache ``folder`` (a descriptor), checked (and
    marked used, for pruning, where ``use``); None where there is none; raises _Unsafe where
    it is not to be loaded."""
    try:
        fd = os.open(name, _FILE, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as e:  # ELOOP: a symbolic link
        raise _Unsafe(
            "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read: {e}"
        ) from e
    try:
        problem = _not_private(os.fstat(fd), stat.S_ISREG, "a regular file")
        if problem:
            raise _Unsafe(problem)
        with open(fd, "rb", closefd=False) as f:
            data = f.read()
        if use:
            os.utime(fd)
    finally:
        os.close(fd)
    return _checked(name, data)


def _not_private(st: os.stat_result, is_kind, kind: str) -> str | None:
    """Why a file or folder (its stat) is not the current user's own, or None."""
    if not is_kind(st.st_mode):
        return f"is not {kind}"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"can be written by others (mode {stat.filemode(st.st_mode)})"
    return None


@contextlib.contextmanager
def _cache(create: bool = True):
    """A descriptor of the cache's kernels folder, checked (and made, private, with the
    folders above it, where they are missing and ``create``; None where it is missing and
    not ``create``), closed after; raises ToolchainError where a folder is not safe to use."""
    root = cache_dir()
    missing, path = [], os.path.join(root, "kernels")
    if not (create or os.path.lexists(path)):
        yield None
        return
    while create and not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        # made by another process at once, or under a file (said below)
        with contextlib.suppress(FileExistsError, NotADirectoryError):
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    fd = _open_folder(root)
    try:
        folder = _open_folder(os.path.join(root, "kernels"), fd, "kernels")
    finally:
        os.close(fd)
    try:
        yield folder
    finally:
        os.close(folder)


def _open_folder(path: str, dir_fd: int | None = None, name: str | None = None) -> int:
    try:
        fd = os.open(name or path, _FOLDER, dir_fd=dir_fd)
    except NotADirectoryError as e:
        what = "a symbolic link (not followed)" if os.path.islink(path) else "not a folder"
        raise ToolchainError(f"the kernel cache {path} is {what}{_PRIVATE}") from e
    problem = _not_private(os.fstat(fd), stat.S_ISDIR, "a folder")
    if problem:
        os.close(fd)
        raise ToolchainError(f"the kernel cache {path} {problem}{_PRIVATE}")
    return fd


_PRIVATE = "; point FLUXION_CACHE_DIR at a folder that only you can write"


def _write_new(folder: int, name: str, data: bytes) -> None:
    """Writes ``data`` into a new file ``name`` of ``folder`` (a descriptor) that only the
    current user can read and write, whatever the umask."""
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=folder,
    )
    with open(fd, "wb") as f:
        f.write(data)


def _store(folder: int, name: str, library: bytes) -> None:
    """Keeps ``library`` as entry ``name``, atomically: a process reading it at the same
    time sees all of it, or the entry before."""
    trailer = _TRAILER.pack(_MAGIC, len(library), _digest(name, library))
    temporary = f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _write_new(folder, temporary, library + trailer)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise


class Entry(NamedTuple):
    """A file of the kernel cache: its name, bytes, last use (seconds since the epoch), and
    why it would not be loaded (None for an entry that would)."""

    name: str
    size: int
    used: float
    problem: str | None


def _files(folder: int | None) -> list[tuple]:
    """(last use in ns, bytes, name) of each file of ``folder`` (a descriptor; none where
    it is None)."""
    files = []
    if folder is None:
        return files
    with os.scandir(folder) as found:
        for item in found:
            with contextlib.suppress(FileNotFoundError):  # pruned at once by another process
                st = item.stat(follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    files.append((st.st_mtime_ns, st.st_size, item.name))
    return files


def _prune(folder: int, limit: int) -> None:
    """Removes the least recently used files of the cache until it holds at most ``limit``
    bytes, and temporary files that processes killed while writing them left."""
    files = sorted(_files(folder))
    total = sum(size for _, size, _ in files)
    stale = time.time_ns() - _STALE_SECONDS * 10**9
    for used, size, name in files:
        if name.startswith(".") and used > stale:
            continue  # another process is writing or loading it
        if total > limit or name.startswith("."):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
            total -= size


def cache_entries() -> list[Entry]:
    """The files of the kernel cache, most recently used first, each checked as it would be
    before loading; raises ToolchainError where the cache is not safe to use."""
    entries = []
    with _cache(create=False) as folder:
        for used, size, name in sorted(_files(folder), reverse=True):
            try:
                _read(folder, name, use=False)
                problem = None
            except _Unsafe as e:
                problem = str(e)
            entries.append(Entry(name, size, used / 1e9, problem))
    return entries


def cache_usage() -> tuple[int, int]:
    """How many files the kernel cache holds and their bytes; files that another process
    prunes meanwhile are not counted."""
    with _cache(create=False) as folder:
        files = _files(folder)
    return len(files), sum(size for _, size, _ in files)


def clear_cache() -> tuple[int, int]:
    """Removes every file of the kernel cache; returns how many and their bytes."""
    with _cache(create=False) as folder:
        files = _files(folder)
        for _, _, name in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
    return len(files), sum(size for _, size, _ in files)


def _chunks(sources: dict[str, str], n: int) -> list[dict[str, str]]:
    """``sources`` in at most ``n`` parts of about equal length, longest first."""
    parts: list[dict[str, str]] = [{} for _ in range(min(n, len(sources)))]
    sizes = [0] * len(parts)
    for name, text in sorted(sources.items(), key=lambda item: -len(item[1])):
        k = sizes.index(min(sizes))
        parts[k][name] = text
        sizes[k] += len(text)
    return parts


def _compile(compiler: str, wanted: dict[str, list[str]]) -> dict[str, bytes]:
    """The library of each entry of ``wanted`` (name -> the C of its parts): every part
    compiled at once, then each entry's parts linked; raises ToolchainError with the compiler's
    errors."""
    scratch = tempfile.mkdtemp(prefix="fluxion-cc-")
    try:
        include = "-I" + sysconfig.get_paths()["include"]
        objects = {entry: [] for entry in wanted}
        compiles = []
        for k, (entry, parts) in enumerate(wanted.items()):
            for j, part in enumerate(parts):
                source = os.path.join(scratch, f"{k}-{j}.c")
                with open(source, "w") as f:
                    f.write(part)
                objects[entry].append(source[:-1] + "o")
                compiles.append([compiler, *FLAGS, include, "-c", source, "-o", source[:-1] + "o"])
        _run(compiles)
        linked = {entry: os.path.join(scratch, f"{k}.so") for k, entry in enumerate(wanted)}
        _run(
            [compiler, "-shared", *objects[entry], "-o", path, "-lmvec", "-lm", "-pthread"]
            for entry, path in linked.items()
        )
        built = {}
        for entry, path in linked.items():
            with open(path, "rb") as f:
                built[entry] = f.read()
        return built
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(commands) -> None:
    """Runs compiler ``commands`` at once; raises ToolchainError with the errors of the first
    that failed."""
    running, failures = [], []
    try:
        for command in commands:
            running.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True))
    except OSError as e:
        failures.append(f"{command[0]}: {e}")
    for process in running:
        _, errors = process.communicate()
        if process.returncode != 0:
            status = f"{' '.join(process.args)} exited with status {process.returncode}"
            failures.append(errors or status)
    if failures:
        raise ToolchainError(f"the C compiler failed on native kernels:\n{failures[0]}")
