"""The kernel cache under faults: every kind of damage to an entry, a cache that is not safe
to use (a file, a symbolic link, a shared folder, another user's files, a planted library),
a full, read-only or size-limited disk, a failing compiler, an exhausted address space,
umask 000, four processes compiling at once, pruning, and the libraries a process keeps.

Each case runs a compiled function in a private cache (``FLUXION_CACHE_DIR``) and checks
its result against the NumPy path (``FLUXION_NATIVE_KERNELS=0``) to the bit, the warnings
(exactly one where something was wrong), and whether its kernel ran natively: a damaged
or unsafe entry is rebuilt and run, a cache that cannot be used falls back to NumPy. Cases
that need a fresh process (limits, several processes) run one; the rest reset the
toolchain's state as a new process has it."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import warnings
import weakref

import numpy as np
import pytest

import fluxion as fx
from fluxion.cli.main import main
from fluxion.compiler.fusion import FUSED
from fluxion.compiler.native import toolchain

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534


def f(x, y):
    # + - * / round as NumPy's do (no fused multiply-adds): the native result is bitwise
    # the NumPy path's
    return (x * 2.0 + y) * x - y / 3.0


X = np.linspace(-3, 3, 5000, dtype=np.float32)
Y = np.cos(X)


@pytest.fixture(scope="module")
def numpy_path():
    mp = pytest.MonkeyPatch()
    mp.setenv("FLUXION_NATIVE_KERNELS", "0")
    toolchain._compiler.cache_clear()
    try:
        return fx.jit(f)(fx.tensor(X), fx.tensor(Y)).numpy()
    finally:
        mp.undo()
        toolchain._compiler.cache_clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty kernel cache, and the toolchain as a new process has it: nothing
    loaded, nothing failed."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(root))
    for name in ("FLUXION_NATIVE_KERNELS", "FLUXION_CACHE_MAX_SIZE", "CC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(toolchain, "_FAILED", [])
    monkeypatch.setattr(toolchain, "_LOADED", weakref.WeakValueDictionary())
    toolchain._compiler.cache_clear()
    toolchain._machine.cache_clear()
    yield root
    toolchain._compiler.cache_clear()
    toolchain._machine.cache_clear()


def run(fn=f, *args):
    """``fn`` compiled afresh and called: its result, the warnings it gave, and whether its
    fused group ran as a native kernel."""
    compiled = fx.jit(fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = compiled(*(args or (fx.tensor(X), fx.tensor(Y)))).numpy()
    (entry,) = compiled.cache.values()
    (group,) = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
    return got, [str(w.message) for w in caught], "static void" in group.compiled.source


def forget_loaded(monkeypatch):
    """Drop the libraries loaded, so the next build reads the cache (as a new process)."""
    gc.collect()
    monkeypatch.setattr(toolchain, "_LOADED", weakref.WeakValueDictionary())


def kernel_entry(root) -> str:
    """The path of the one library of kernels in the cache (not a ``_call`` module)."""
    suffix = toolchain.sysconfig.get_config_var("EXT_SUFFIX")
    (name,) = [n for n in os.listdir(root / "kernels") if not n.endswith(suffix)]
    return str(root / "kernels" / name)


def assert_fine(got, warned, native, numpy_path, warning=None):
    """The result is the NumPy path's, and exactly the expected warning came (or none);
    returns whether the kernel ran natively."""
    assert got.tobytes() == numpy_path.tobytes()
    if warning is None:
        assert warned == [], warned
    else:
        assert len(warned) == 1 and warning in warned[0], warned
    return native


def assert_all_entries_check_out():
    entries = toolchain.cache_entries()
    assert entries and all(e.problem is None for e in entries), entries


# --------------------------------------------------------------- damaged entries are rebuilt


def _truncate(data, rng):
    return data[: rng.integers(0, len(data))]


def _flip(data, rng, start=0, stop=None):
    data = bytearray(data)
    k = rng.integers(start, stop or len(data))
    data[k] ^= 1 << rng.integers(0, 8)
    return bytes(data)


DAMAGE = {
    "truncated": _truncate,
    "empty": lambda data, rng: b"",
    "garbage": lambda data, rng: rng.bytes(len(data)),
    "flipped byte": lambda data, rng: _flip(data, rng, stop=len(data) - toolchain._TRAILER.size),
    "trailer edited": lambda data, rng: _flip(data, rng, start=len(data) - toolchain._TRAILER.size),
    "bytes appended": lambda data, rng: data + b"\0" * 64,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_never_loaded(cache, numpy_path, monkeypatch, damage):
    assert assert_fine(*run(), numpy_path)  # built and stored
    path = kernel_entry(cache)
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(DAMAGE[damage](data, np.random.default_rng(0)))  # the campaign tries more
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path, warning="not loaded but rebuilt")
    assert_all_entries_check_out()
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path)  # the rebuilt entry loads


def test_an_entry_copied_under_another_name_is_not_loaded(cache, numpy_path, monkeypatch):
    """Each entry's hash covers its name: a valid entry under another name fails."""
    assert run(f, *_shape(4999))[2]
    with open(kernel_entry(cache), "rb") as fh:
        other = fh.read()  # another shape's entry, valid
    os.unlink(kernel_entry(cache))
    assert assert_fine(*run(), numpy_path)
    with open(kernel_entry(cache), "wb") as fh:
        fh.write(other)
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path, warning="not loaded but rebuilt")


def test_a_damaged_call_module_is_rebuilt(cache, numpy_path, monkeypatch):
    """Where pip did not build ``_call.c``, its module is an entry like the kernels'."""
    monkeypatch.setattr(toolchain, "_installed_call", lambda: None)
    monkeypatch.setattr(toolchain, "_CALL", {})
    assert assert_fine(*run(), numpy_path)
    suffix = toolchain.sysconfig.get_config_var("EXT_SUFFIX")
    (name,) = [n for n in os.listdir(cache / "kernels") if n.endswith(suffix)]
    with open(cache / "kernels" / name, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff" * 8)
    forget_loaded(monkeypatch)
    monkeypatch.setattr(toolchain, "_CALL", {})
    assert assert_fine(*run(), numpy_path, warning="not loaded but rebuilt")
    assert_all_entries_check_out()


# --------------------------------------------------------- nothing unsafe is loaded or used


def _planted_library(tmp_path, marker) -> bytes:
    """A library with the kernel's name that, when loaded, leaves ``marker`` behind (its
    constructor runs at load) and computes nothing."""
    source = tmp_path / "planted.c"
    source.write_text(
        "#include <fcntl.h>\n#include <unistd.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ close(creat("{marker}", 0600)); }}\n'
        "void k0(void *const *data) {}\n"
    )
    built = tmp_path / "planted.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(source), "-o", str(built)], check=True)
    return built.read_bytes()


def _plant(path, library):
    """``library`` written over the entry at ``path`` with a valid trailer: a forgery that
    knows the format (the hash is no secret; only ownership and modes keep it out)."""
    name = os.path.basename(path)
    trailer = toolchain._TRAILER.pack(
        toolchain._MAGIC, len(library), toolchain._digest(name, library)
    )
    os.unlink(path)
    with open(path, "wb") as fh:
        fh.write(library + trailer)


def _chown_or_skip(path, uid):
    try:
        os.chown(path, uid, uid, follow_symlinks=False)
    except PermissionError:
        pytest.skip(f"cannot chown {path} to another user (uid {uid}) without root")


def test_a_library_planted_by_another_user_is_not_loaded(cache, numpy_path, monkeypatch, tmp_path):
    assert assert_fine(*run(), numpy_path)
    marker = tmp_path / "planted-library-ran"
    path = kernel_entry(cache)
    _plant(path, _planted_library(tmp_path, marker))
    _chown_or_skip(path, NOBODY)
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path, warning=f"owned by uid {NOBODY}")
    assert not marker.exists()
    assert os.stat(path).st_uid == os.geteuid()  # replaced by the user's own
    assert_all_entries_check_out()


@pytest.mark.parametrize("folder", ["root", "kernels"])
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_folder_others_can_write_is_refused(
    cache, numpy_path, monkeypatch, tmp_path, folder, mode
):
    """World-writable (sticky or not) or group-writable (shared): a planted library with a
    valid trailer, even one owned by the user, is not loaded; everything runs on NumPy."""
    assert assert_fine(*run(), numpy_path)
    marker = tmp_path / "planted-library-ran"
    _plant(kernel_entry(cache), _planted_library(tmp_path, marker))
    os.chmod(cache if folder == "root" else cache / "kernels", mode)
    forget_loaded(monkeypatch)
    assert not assert_fine(*run(), numpy_path, warning="can be written by others")
    assert not marker.exists()


def test_a_folder_of_another_user_is_refused(cache, numpy_path, monkeypatch):
    assert assert_fine(*run(), numpy_path)
    _chown_or_skip(cache / "kernels", NOBODY)
    forget_loaded(monkeypatch)
    assert not assert_fine(*run(), numpy_path, warning=f"owned by uid {NOBODY}")


def test_an_entry_others_can_write_is_not_loaded(cache, numpy_path, monkeypatch):
    assert assert_fine(*run(), numpy_path)
    os.chmod(kernel_entry(cache), 0o666)
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path, warning="can be written by others")
    assert os.stat(kernel_entry(cache)).st_mode & 0o777 == 0o600


def test_a_symbolic_link_entry_is_not_followed(cache, numpy_path, monkeypatch, tmp_path):
    assert assert_fine(*run(), numpy_path)
    path = kernel_entry(cache)
    shutil.move(path, tmp_path / "elsewhere.so")  # a valid entry, but reached by a link
    os.symlink(tmp_path / "elsewhere.so", path)
    forget_loaded(monkeypatch)
    assert assert_fine(*run(), numpy_path, warning="a symbolic link")
    assert not os.path.islink(path)


def test_a_symbolic_link_cache_folder_is_refused(cache, numpy_path, monkeypatch, tmp_path):
    assert assert_fine(*run(), numpy_path)
    os.symlink(cache, tmp_path / "link")
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(tmp_path / "link"))
    forget_loaded(monkeypatch)
    assert not assert_fine(*run(), numpy_path, warning="a symbolic link (not followed)")


def test_a_cache_path_that_is_a_file_is_refused(cache, numpy_path):
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a folder")
    assert not assert_fine(*run(), numpy_path, warning="is not a folder")
    assert not assert_fine(*run(), numpy_path)  # NumPy for the rest of the process, quietly


def test_under_umask_000_nothing_is_writable_by_others(cache, numpy_path, monkeypatch):
    deep = cache / "a" / "b"
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(deep))
    old = os.umask(0)
    try:
        assert assert_fine(*run(), numpy_path)
        for folder in (cache, cache / "a", deep, deep / "kernels"):
            assert os.stat(folder).st_mode & 0o777 == 0o700, folder
        for name in os.listdir(deep / "kernels"):
            assert os.stat(deep / "kernels" / name).st_mode & 0o777 == 0o600, name
        forget_loaded(monkeypatch)
        monkeypatch.setattr(toolchain, "_compile", None)  # built already: not called
        assert assert_fine(*run(), numpy_path)
    finally:
        os.umask(old)


# ------------------------------------------------------------ failures fall back to NumPy


@pytest.mark.parametrize("compiler", ["false", "/nonexistent/cc"])
def test_a_failing_compiler_falls_back_for_the_rest_of_the_process(
    cache, numpy_path, monkeypatch, compiler
):
    monkeypatch.setenv("CC", compiler)
    warning = "exited with status 1" if compiler == "false" else "No such file or directory"
    assert not assert_fine(*run(), numpy_path, warning=warning)
    monkeypatch.delenv("CC")
    toolchain._compiler.cache_clear()
    assert not assert_fine(*run(), numpy_path)  # not tried again, and no second warning


def test_a_full_disk_falls_back(cache, numpy_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert not assert_fine(*run(), numpy_path, warning="No space left on device")
    assert [n for n in os.listdir(cache / "kernels") if n.startswith(".")] == []  # no temporary


def test_a_bad_size_limit_falls_back_naming_the_variable(cache, numpy_path, monkeypatch):
    monkeypatch.setenv("FLUXION_CACHE_MAX_SIZE", "lots")
    assert not assert_fine(*run(), numpy_path, warning="FLUXION_CACHE_MAX_SIZE='lots'")


# ------------------------------------------------------------ pruning and loaded libraries


def _shape(n):
    return fx.tensor(X[:n]), fx.tensor(Y[:n])


def test_the_cache_is_pruned_least_recently_used_first(cache, numpy_path, monkeypatch):
    entries = {}  # shape -> its entry's name

    def use(n):
        forget_loaded(monkeypatch)
        assert run(f, *_shape(n))[2]
        (entries[n],) = toolchain._LOADED

    use(4000)
    size = os.path.getsize(cache / "kernels" / entries[4000])
    monkeypatch.setenv("FLUXION_CACHE_MAX_SIZE", str(int(size * 2.5)))  # two of them fit
    for n in [4001, 4002, 4003]:
        use(n)
        use(4000)  # loaded from the cache again: the most recently used
    kept = {n for n, name in entries.items() if os.path.exists(cache / "kernels" / name)}
    assert kept == {4000, 4003}, kept
    total = sum(os.path.getsize(cache / "kernels" / n) for n in os.listdir(cache / "kernels"))
    assert total <= size * 2.5


def _mappings() -> int:
    with open("/proc/self/maps") as fh:
        return sum(1 for _ in fh)


def test_libraries_are_unloaded_with_the_functions_holding_them(cache, monkeypatch):
    compiled = fx.jit(f, max_cache_size=4)
    before = _mappings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit's retracing warning
        for n in range(3000, 3024):  # 24 shapes, 4 kept
            compiled(*_shape(n))
    gc.collect()
    assert len(toolchain._LOADED) <= 4
    assert _mappings() - before <= 4 * 5 + 10  # 5 mappings a library, and a few for NumPy
    del compiled
    gc.collect()
    assert len(toolchain._LOADED) == 0


def test_a_process_keeps_at_most_max_loaded_libraries(cache, numpy_path, monkeypatch):
    monkeypatch.setattr(toolchain, "MAX_LOADED", 2)
    held = [fx.jit(f) for _ in range(3)]
    for k, compiled in enumerate(held[:2]):
        compiled(*_shape(2000 + k))
    assert assert_fine(*run(), numpy_path, warning="the most a process keeps") is False


# -------------------------------------------------------------- in a process of their own

CHILD = """
import json, os, resource, sys, warnings
import numpy as np
import fluxion as fx
from fluxion.compiler.native import toolchain
from fluxion.compiler.fusion import FUSED
{setup}
x = np.linspace(-3, 3, 5000, dtype=np.float32)
compiled = fx.jit(lambda x, y: (x * 2.0 + y) * x - y / 3.0)
{before}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    got = compiled(fx.tensor(x), fx.tensor(np.cos(x))).numpy()
(entry,) = compiled.cache.values()
(group,) = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
print(json.dumps({{
    "result": got.tobytes().hex(),
    "warnings": [str(w.message) for w in caught],
    "native": "static void" in group.compiled.source,
}}))
"""


def child(cache, setup="", before="", command=(), wait=True):
    env = dict(os.environ, FLUXION_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    for name in ("FLUXION_NATIVE_KERNELS", "FLUXION_CACHE_MAX_SIZE", "CC"):
        env.pop(name, None)
    code = CHILD.format(setup=setup, before=before)
    process = subprocess.Popen(
        [*command, sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    return finish(process) if wait else process


def finish(process):
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"the child died with status {process.returncode}"
    got = json.loads(out.strip().splitlines()[-1])
    return np.frombuffer(bytes.fromhex(got["result"]), np.float32), got["warnings"], got["native"]


def test_four_processes_compile_into_one_cache_at_once(tmp_path, numpy_path):
    start = tmp_path / "start"
    wait = f"while not os.path.exists({str(start)!r}): pass"  # all compile at the same moment
    processes = [child(tmp_path / "cache", before=wait, wait=False) for _ in range(4)]
    start.touch()
    for process in processes:
        assert assert_fine(*finish(process), numpy_path)
    assert assert_fine(*child(tmp_path / "cache"), numpy_path)


def test_an_exhausted_address_space_falls_back(tmp_path, numpy_path):
    """With the address space limited to what the process maps already, loading the library
    fails (gcc, a new process, is not limited by the parent's use): NumPy, one warning."""
    limit = (
        "size = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1])\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size * 1024, resource.RLIM_INFINITY))"
    )
    # _call and the compiler found first: they are loaded once per process, before the limit
    warm = "fx.jit(lambda x: x * 3.0 + 1.0)(fx.ones(5000))"
    got = child(tmp_path / "cache", before=f"{warm}\n{limit}")
    assert not assert_fine(*got, numpy_path, warning="could not be loaded")


def test_a_file_size_limit_falls_back(tmp_path, numpy_path):
    """A file size limit between the sources and the libraries: the compiler's output (and
    an entry) cannot be written, the sources can: ``_call.c`` (11.5 KB; written where pip did
    not build ``_call``) and a kernel's C. A kernel library is ~15 KB, ``_call``'s more."""
    source = os.path.getsize(os.path.join(ROOT, "fluxion", "compiler", "native", "_call.c"))
    limit = f"resource.setrlimit(resource.RLIMIT_FSIZE, ({source + 1024}, resource.RLIM_INFINITY))"
    got = child(tmp_path / "cache", before=limit)
    assert not assert_fine(*got, numpy_path, warning="File size limit exceeded")


def _without_root_powers():
    """A command prefix that runs a process without root's right to write anywhere."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("root writes into read-only folders, and setpriv (to drop that) is missing")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


@pytest.mark.parametrize("filled", [False, True])
def test_a_read_only_cache_falls_back(tmp_path, numpy_path, filled):
    """Empty, its kernels cannot be stored; filled, they cannot be copied for loading (and
    their last use not recorded): NumPy, one warning."""
    command = _without_root_powers()
    cache = tmp_path / "cache"
    if filled:
        assert assert_fine(*child(cache), numpy_path)
    else:
        (cache / "kernels").mkdir(parents=True, mode=0o700)
    os.chmod(cache / "kernels", 0o500)
    try:
        got = child(cache, command=command)
        assert not assert_fine(*got, numpy_path, warning="Permission denied")
    finally:
        os.chmod(cache / "kernels", 0o700)


# ----------------------------------------------------------------------- fluxion cache


def test_the_cache_command_shows_and_clears_the_cache(cache, numpy_path, monkeypatch, capsys):
    assert main(["cache"]) == 0
    assert "empty" in capsys.readouterr().out
    assert run()[2]
    path = kernel_entry(cache)
    with open(path, "r+b") as fh:
        fh.write(b"\0" * 16)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    size = sum(os.path.getsize(cache / "kernels" / n) for n in os.listdir(cache / "kernels"))
    assert str(cache / "kernels") in out and f"{size:,} bytes" in out, out
    assert os.path.basename(path) in out and "does not match" in out, out
    assert main(["cache", "clear"]) == 0
    assert os.listdir(cache / "kernels") == []
    assert "removed" in capsys.readouterr().out


def test_the_cache_command_refuses_an_unsafe_cache(cache, capsys):
    (cache / "kernels").mkdir(parents=True)
    os.chmod(cache / "kernels", 0o777)
    assert main(["cache", "clear"]) == 1
    assert "can be written by others" in capsys.readouterr().err
