"""Run the array API standard's conformance suite against fluxion and check its pass rate.

    python tools/array_api_rate.py [--suite DIR] [--max-examples N] [--update]

The suite (data-apis/array-api-tests, pinned, with its spec stubs) is looked for in
``$ARRAY_API_TESTS_DIR``, else in ``../shared/array-api-tests`` beside the checkout. It is
copied to a temporary folder (the pinned copy is read-only, and its ``stubs.py`` asserts a
``array-api/spec/<version>/API_specification`` folder that the copy lacks, so an empty one
is made there) and run with a fixed Hypothesis seed, no deadline (a loaded machine must not
fail a test by its speed) and few examples. The rate is passed / (passed + failed +
errors) over the tests the suite applies: those it skips itself (a newer API version than
fluxion's ``__array_api_version__``, tests it marks flaky) are not counted. The exit
status is 1 when the rate is below the ``min_rate`` in ``tools/array_api_rate.json``;
``--update`` stores there the rate reached less one test. Exit status 3: the suite is
absent.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).with_suffix(".json")


def suite_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get("ARRAY_API_TESTS_DIR"):
        return Path(os.environ["ARRAY_API_TESTS_DIR"])
    return ROOT.parent / "shared" / "array-api-tests"


def run_suite(suite: Path, max_examples: int, seed: int, work: Path) -> Path:
    sys.path.insert(0, str(ROOT))  # this checkout's fluxion, as the suite will import it
    import fluxion

    copy = work / "array-api-tests"
    shutil.copytree(suite, copy)
    for path in copy.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    spec = copy / "array-api" / "spec" / fluxion.__array_api_version__ / "API_specification"
    spec.mkdir(parents=True, exist_ok=True)
    report = work / "report.xml"
    env = dict(os.environ, ARRAY_API_TESTS_MODULE="fluxion", PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "array_api_tests",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--max-examples={max_examples}",
        f"--hypothesis-seed={seed}",
        "--hypothesis-derandomize",  # each test's examples from its own name: stable runs
        "--disable-deadline",
        "-W",
        "ignore",
        f"--junitxml={report}",
    ]
    subprocess.run(command, cwd=copy, env=env, stdout=subprocess.DEVNULL, check=False)
    if not report.exists():
        sys.exit("array_api_rate: the suite wrote no report (it failed to start; run it by hand)")
    return report


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> passed / failed / skipped."""
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "skipped" in kinds:
            out[name] = "skipped"
        elif kinds & {"failure", "error"}:
            out[name] = "failed"
        else:
            out[name] = "passed"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", help="the array-api-tests folder")
    parser.add_argument("--max-examples", type=int, help="Hypothesis examples per test")
    parser.add_argument("--update", action="store_true", help="store the rate reached")
    args = parser.parse_args()
    config = json.loads(CONFIG.read_text())
    suite = suite_dir(args.suite)
    if not (suite / "array_api_tests").is_dir():
        print(f"array_api_rate: SKIPPED, the suite is not at {suite} (set ARRAY_API_TESTS_DIR)")
        return 3
    max_examples = args.max_examples or config["max_examples"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        results = outcomes(run_suite(suite, max_examples, config["seed"], Path(work)))
    counts = collections.Counter(results.values())
    applicable = counts["passed"] + counts["failed"]
    rate = counts["passed"] / applicable
    failed = sorted(name for name, r in results.items() if r == "failed")
    print(
        f"array API suite: {counts['passed']} of {applicable} applicable tests pass "
        f"({rate:.2%}); {counts['skipped']} skipped by the suite; {max_examples} examples, "
        f"seed {config['seed']}, {time.perf_counter() - start:.0f} s"
    )
    for name in failed:
        print(f"  failing: {name.removeprefix('array_api_tests.')}")
    if args.update:
        # a test's margin below the rate reached: a change of Hypothesis's version or of the
        # machine may still turn up an example that fails where the run here did not
        config["min_rate"] = math.floor((rate - 1 / applicable) * 1e4) / 1e4
        CONFIG.write_text(json.dumps(config, indent=2) + "\n")
        print(f"stored min_rate {config['min_rate']} in {CONFIG.name}")
        return 0
    if rate < config["min_rate"]:
        print(f"array_api_rate: FAILED, {rate:.2%} is below the {config['min_rate']:.2%} reached")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
