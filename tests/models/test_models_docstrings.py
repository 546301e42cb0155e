"""The examples in fluxion.models' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import fluxion as fx

MODULES = ["", ".layers", ".gpt", ".classifier", ".seq2seq", ".decoding"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module("fluxion.models" + name)
    fx.manual_seed(0)
    globs = {"fx": fx, "np": np}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, extraglobs=globs, optionflags=flags, verbose=False)
    assert result.failed == 0 and result.attempted > 0
