"""jit's compiler: passes, fusion, code generation and native kernels over core/ir.py."""
