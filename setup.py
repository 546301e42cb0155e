"""fluxion's one C extension, ``fluxion/compiler/native/_call.c``, which runs native kernels
(everything else about the package is in pyproject.toml). Optional: without a C compiler
the install goes on, and compiled functions run their fused groups on NumPy."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "fluxion.compiler.native._call", ["fluxion/compiler/native/_call.c"], optional=True
        )
    ]
)
