"""The examples in fluxion.data's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest


@pytest.mark.parametrize("name", ["", ".tokenizers", ".datasets"])
def test_docstring_examples(name):
    module = importlib.import_module("fluxion.data" + name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=flags, verbose=False)
    assert result.failed == 0 and result.attempted > 0
