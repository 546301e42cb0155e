"""fluxion: PyTorch-style training and JAX-style transforms from one small core on NumPy.

>>> import fluxion as fx
>>> fx.grad(lambda x: fx.sum(x * 2 * x))(fx.tensor([1.0, 2.0]))
[4. 8.]:f32[2]:cpu(0)
"""

import math

__version__ = "0.1.0"
__array_api_version__ = "2024.12"

from fluxion import (
    data,
    distributed,
    errors,
    fft,
    lax,
    linalg,
    models,
    nn,
    numpy,  # noqa: F401  (jax.numpy's names: import fluxion.numpy as jnp)
    optim,
    tree,
    tree_util,
    utils,
)
from fluxion.array_api import (
    broadcast_shapes,
    concat,
    count_nonzero,
    cumulative_prod,
    cumulative_sum,
    diff,
    isin,
    matrix_transpose,
    meshgrid,
    permute_dims,
    roll,
    searchsorted,
    unique_all,
    unique_counts,
    unique_inverse,
    unique_values,
    unstack,
    vecdot,
)
from fluxion.backends import host_memory  # noqa: F401  (keeps freed memory, see its docstring)
from fluxion.backends.threads import get_num_threads, num_threads, set_num_threads
from fluxion.core.dtypes import (
    DType,
    get_default_dtype,
    set_default_dtype,
    set_float32_matmul_precision,
)
from fluxion.core.pytree import (
    PyTreeDef,
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)
from fluxion.core.tensor import Device, Size, Tensor, cuda, devices
from fluxion.core.tensor import Device as device
from fluxion.core.tensor import Tensor as Array  # JAX's name, for annotations: jax.Array
from fluxion.core.trace import debug_nans, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from fluxion.distributed import pmap
from fluxion.ops import amp, random
from fluxion.ops.amp import autocast, get_autocast_dtype, is_autocast_enabled
from fluxion.ops.creation import (
    arange,
    asarray,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    tensor,
    tril,
    triu,
    zeros,
    zeros_like,
)
from fluxion.ops.elementwise import (  # the array API's
    abs,
    acos,
    acosh,
    add,
    angle,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    astype,
    atan,
    atan2,
    atanh,
    bitwise_and,
    bitwise_invert,
    bitwise_left_shift,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
    cast,
    ceil,
    clamp,
    clip,
    clone,
    conj,
    copysign,
    cos,
    cosh,
    divide,
    equal,
    erf,
    exp,
    expm1,
    floor,
    floor_divide,
    gelu,
    greater,
    greater_equal,
    hypot,
    imag,
    invert,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    nextafter,
    not_equal,
    positive,
    pow,
    power,
    real,
    reciprocal,
    relu,
    remainder,
    round,
    rsqrt,
    sigmoid,
    sign,
    signbit,
    silu,
    sin,
    sinh,
    softplus,
    sqrt,
    square,
    stop_gradient,
    subtract,
    tan,
    tanh,
    true_divide,
    trunc,
    where,
)
from fluxion.ops.indexing import (
    argwhere,
    bincount,
    gather,
    getitem,
    index_put,
    masked_fill,
    nonzero,
    one_hot,
    scatter,
    scatter_add,
    take,
    take_along_axis,
)
from fluxion.ops.inspection import (
    __array_namespace_info__,
    can_cast,
    finfo,
    iinfo,
    isdtype,
    result_type,
)
from fluxion.ops.linalg import dot, einsum, matmul, norm, outer, tensordot
from fluxion.ops.random import Generator, manual_seed, multinomial, rand, randn, randperm
from fluxion.ops.random import global_normal as normal
from fluxion.ops.random import global_randint as randint
from fluxion.ops.random import global_uniform as uniform
from fluxion.ops.reduction import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    argsort,
    cumsum,
    log_softmax,
    logsumexp,
    max,
    mean,
    median,
    min,
    mode,
    prod,
    return_types,
    softmax,
    sort,
    std,
    sum,
    top_k,
    topk,
    var,
)
from fluxion.ops.shape import (
    broadcast_arrays,
    broadcast_to,
    cat,
    chunk,
    concatenate,
    expand_dims,
    flatten,
    flip,
    moveaxis,
    pad,
    permute,
    ravel,
    repeat,
    repeat_interleave,
    reshape,
    slice_tensor,
    split,
    squeeze,
    stack,
    swapaxes,
    tile,
    transpose,
    unsqueeze,
)
from fluxion.placement import (
    default_backend,
    device_count,
    device_get,
    device_put,
    local_device_count,
    local_devices,
)
from fluxion.serialization import load, save
from fluxion.transforms import autodiff as _autodiff
from fluxion.transforms.autodiff import (
    checkpoint,
    custom_jvp,
    custom_vjp,
    grad,
    hessian,
    jacfwd,
    jacrev,
    jvp,
    linearize,
    value_and_grad,
    vjp,
)
from fluxion.transforms.batching import vmap
from fluxion.transforms.control import cond, fori_loop, scan, while_loop
from fluxion.transforms.jit import compile, jit, make_graph, xpr

for _name in (
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
):
    globals()[_name] = getattr(DType, _name)
# PyTorch's short names (set last: they shadow the builtins in this module)
long, int, float, double, half = int64, int32, float32, float64, float16  # noqa: A001, F821

# the array API's constants
e, inf, nan, pi, newaxis = math.e, math.inf, math.nan, math.pi, None


class autograd:
    """PyTorch's ``torch.autograd`` functions: ``fx.autograd.grad(outputs, inputs, ...)``."""

    grad = staticmethod(_autodiff.autograd_grad)
