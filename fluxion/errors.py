"""Named error types. Each subclasses the built-in a Python user would catch.

Messages follow one pattern: ``op: what is wrong (argument, shapes/dtypes); what to do``.
"""


class FluxionError(Exception):
    """Base class of every error fluxion raises on purpose."""


class ShapeError(FluxionError, ValueError):
    """Shapes that do not fit the op: broadcasting, matmul inner dims, reshape sizes."""


class AxisError(FluxionError, ValueError, IndexError):
    """An axis out of range or given twice."""


class DTypeError(FluxionError, TypeError):
    """A dtype the op does not accept, or a dtype that cannot be represented."""


class IndexOutOfRangeError(FluxionError, IndexError):
    """An index outside the dimension it indexes."""


class InvalidArgumentError(FluxionError, ValueError):
    """A value the op does not accept (ragged nested lists, bad keyword values...)."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type: a float or a string where an int is needed, None where a
    number is. A TypeError, as Python's own; also an InvalidArgumentError."""


class AllocationError(FluxionError, MemoryError):
    """A tensor larger than the memory of the machine: refused before NumPy is asked for it."""


class PathError(FluxionError, OSError):
    """A path that cannot be used as asked: a missing folder, a folder where a file should be."""


class GradError(FluxionError, RuntimeError):
    """Differentiation asked of something that cannot be differentiated as asked."""


class BatchingError(FluxionError, ValueError):
    """vmap given in_axes/out_axes or batch sizes that do not fit the arguments."""


class TracerError(FluxionError, TypeError):
    """A traced value used where a concrete one is needed (Python ``if``, ``.item()``...)."""


class FloatingPointCheckError(FluxionError, FloatingPointError):
    """Raised by ``fx.debug_nans()`` at the first op that produces a NaN or an inf."""


class CheckpointError(FluxionError, ValueError):
    """A checkpoint file that is missing, truncated, corrupted or not a fluxion/safetensors file."""


class DistributedError(FluxionError, RuntimeError):
    """Processes that cannot work together as asked: MPI missing, ranks that disagree."""
