"""fluxion keeps freed memory: new arrays reuse pages instead of faulting fresh ones.

Counted by the kernel (minor page faults of a fresh process), against the same program
with the behaviour switched off.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fluxion

PROGRAM = """
import resource
import numpy as np
import fluxion
x = np.ones(1 << 20, np.float32)  # 4 MiB
def step():
    parts = [x * k for k in range(4)]  # four 4 MiB temporaries alive at once, then freed
    return sum(p.sum() for p in parts)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: str) -> int:
    root = str(Path(fluxion.__file__).parent.parent)
    env = dict(os.environ, FLUXION_KEEP_FREED_MEMORY=keep, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_memory_is_reused_without_page_faults():
    pages = 20 * 4 * (1 << 22) // 4096  # what 80 fresh 4 MiB temporaries fault
    assert _faults("1") < pages // 100
    assert _faults("0") > pages // 4  # glibc trims its heap: the kernel counts the faults
