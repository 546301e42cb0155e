"""Step times when the cores are busy: workload A (or B) of ``bench/workloads.py``,
fluxion beside PyTorch (and JAX when importable) in the same run, under each load:

* ``alone``: nothing else runs;
* ``two_at_once``: two copies of the benchmark at once (two ranks of a job on one machine);
* ``beside_torch``: beside a PyTorch training loop on every core;
* ``busy_loops``: beside one busy Python loop per core.

Each scenario runs ``workloads.py --json`` in a fresh process (two, for ``two_at_once``)
while the load runs in others, and reports the median ms per step of each mode, its
ratio to its own time alone, and torch eager's time over fluxion's under the same load.
``others`` is the load this script did not make: the machine's busy CPU time during the
scenario less that of this script's processes, in cores (on a shared machine "alone" is
not alone; a scenario with much of it is worth running again).

    python bench/contention.py                       # workload A, ~4 min
    python bench/contention.py --scenarios alone,busy_loops --modes compiled_functional
    python bench/contention.py --workload B --repeat 1
"""

from __future__ import annotations

# isort: split

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from fluxion.backends.threads import available_cores

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["alone", "two_at_once", "beside_torch", "busy_loops"]

BUSY_LOOP = "while True: pass"
TORCH_JOB = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.GELU(), torch.nn.Linear(512, 512))
opt = torch.optim.AdamW(model.parameters())
x = torch.randn(256, 512)
while True:
    opt.zero_grad()
    (model(x) ** 2).mean().backward()
    opt.step()
"""


def _load(scenario: str) -> list[subprocess.Popen]:
    """Start the background processes of a scenario (none for alone/two_at_once)."""
    code = {"beside_torch": [TORCH_JOB], "busy_loops": [BUSY_LOOP] * available_cores()}
    procs = [
        subprocess.Popen([sys.executable, "-c", c], stdout=subprocess.DEVNULL)
        for c in code.get(scenario, [])
    ]
    time.sleep(2.0 if procs else 0.0)  # the load is running before the measurement starts
    return procs


def _benchmark(args) -> subprocess.Popen:
    command = [
        sys.executable,
        os.path.join(HERE, "workloads.py"),
        "--workload",
        args.workload,
        "--modes",
        args.modes,
        "--json",
    ]
    if args.repeat:
        command += ["--repeat", str(args.repeat)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _medians(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"workloads.py failed (exit {proc.returncode})")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["mode"]: r["step_ms_median"] for r in records if "mode" in r}


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the processes waited for
    return usage.ru_utime + usage.ru_stime


def run_scenario(scenario: str, args) -> tuple[list[dict], float]:
    """Median ms per step of each mode, per benchmark process of the scenario, and the
    cores other processes kept busy meanwhile."""
    start = time.perf_counter(), _busy_seconds(), _children_seconds()
    load = _load(scenario)
    try:
        runs = [_benchmark(args) for _ in range(2 if scenario == "two_at_once" else 1)]
        results = [_medians(p) for p in runs]
    finally:
        for p in load:
            p.kill()
            p.wait()
    wall, busy, ours = (
        now - then
        for now, then in zip((time.perf_counter(), _busy_seconds(), _children_seconds()), start)
    )
    return results, max(0.0, busy - ours) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["A", "B"], default="A")
    parser.add_argument("--modes", default="compiled_functional,eager_imperative,torch_eager")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=None, help="workloads.py's --repeat")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    if "alone" not in scenarios:
        scenarios.insert(0, "alone")  # the reference of every ratio
    print(f"workload {args.workload}, modes {args.modes}, {available_cores()} cores")
    alone = None
    header = f"{'scenario':<14} {'mode':<20} {'ms/step':>9} {'x alone':>8} {'torch/fluxion':>14}"
    print(header + "  others")
    for scenario in scenarios:
        results, others = run_scenario(scenario, args)
        for k, medians in enumerate(results):
            alone = alone or medians
            torch_ms = medians.get("torch_eager")
            for mode, ms in medians.items():
                versus = f"{torch_ms / ms:.2f}" if torch_ms and mode != "torch_eager" else ""
                name = scenario + (f"[{k}]" if scenario == "two_at_once" else "")
                print(
                    f"{name:<14} {mode:<20} {ms:9.2f} {ms / alone[mode]:8.2f} {versus:>14}"
                    f"  {others:.1f} cores"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
