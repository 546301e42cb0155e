"""Every docstring example in the package runs and prints what it shows (doctest).

Examples see their module's names, plus ``fx``, ``np`` and ``F`` (nn.functional) as the
docs write them. Output is compared with ELLIPSIS and NORMALIZE_WHITESPACE.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import fluxion as fx
import fluxion.nn.functional as F

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples():
    for info in pkgutil.walk_packages(fx.__path__, "fluxion."):
        module = importlib.import_module(info.name)
        for test in doctest.DocTestFinder().find(module):
            if test.examples:
                yield test


EXAMPLES = list(_examples())


def test_the_package_has_docstring_examples():
    # a finder that found nothing would make the test below pass vacuously
    assert sum(len(t.examples) for t in EXAMPLES) >= 200


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test):
    test.globs.update(fx=fx, np=np, F=F)
    report: list[str] = []
    result = doctest.DocTestRunner(optionflags=FLAGS).run(test, out=report.append)
    assert result.failed == 0, "".join(report)
