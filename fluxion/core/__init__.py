"""dtypes, Tensor, the trace stack and primitive registry, pytrees."""
