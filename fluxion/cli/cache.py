"""``fluxion cache``: where the kernel cache is, its size and entries; ``fluxion cache
clear`` empties it. Each entry is checked as it would be before loading, so a damaged one
shows here with why it would be rebuilt."""

from __future__ import annotations

import os
import sys
import time

from fluxion.compiler.native import toolchain

SHOWN = 20  # entries listed without --all: the most recently used


def run_cache(action: str, show_all: bool) -> int:
    folder = os.path.join(toolchain.cache_dir(), "kernels")
    try:
        if action == "clear":
            count, size = toolchain.clear_cache()
            print(f"removed {count} entries ({size:,} bytes) from {folder}")
            return 0
        entries = toolchain.cache_entries()
    except (toolchain.ToolchainError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    limit = toolchain.max_cache_size()
    print(f"kernel cache: {folder}")
    if not entries:
        print(f"empty (limit {limit:,} bytes, FLUXION_CACHE_MAX_SIZE)")
        return 0
    size = sum(e.size for e in entries)
    print(
        f"{size:,} bytes in {len(entries)} entries (limit {limit:,} bytes, FLUXION_CACHE_MAX_SIZE)"
    )
    unsafe = [e for e in entries if e.problem]
    if unsafe:
        print(f"{len(unsafe)} would not be loaded, but rebuilt")
    print(f"{'last used':<19}  {'bytes':>11}  entry")
    for e in entries if show_all else entries[:SHOWN]:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.used))
        problem = f"  (not loaded: {e.problem})" if e.problem else ""
        print(f"{used}  {e.size:>11,}  {e.name}{problem}")
    if not show_all and len(entries) > SHOWN:
        print(f"... and {len(entries) - SHOWN} more (--all lists them)")
    return 0
