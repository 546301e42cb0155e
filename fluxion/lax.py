"""JAX's ``lax`` names for collectives over a named axis of ``fx.pmap``.

The axis of ``fx.pmap`` spans the processes (one device each), so each of these is the
matching ``fx.distributed`` collective, once the name is checked to be a running pmap's.
Each takes a pytree of tensors, as in JAX.

>>> fx.pmap(lambda x: fx.lax.pmean(x, "batch"))(fx.tensor([[2.0]]))   # a world of one
[[2.]]:f32[1,1]:cpu(0)
"""

from __future__ import annotations

from fluxion.core.pytree import tree_map
from fluxion.distributed import collectives as C
from fluxion.distributed import world
from fluxion.distributed.pmap import check_axis_name
from fluxion.ops.creation import tensor
from fluxion.ops.shape import expand_dims, squeeze


def _over_axis(op, fn):
    def collective(x, axis_name, **kwargs):
        check_axis_name(op, axis_name)
        return fn(x, **kwargs)

    collective.__name__ = collective.__qualname__ = op
    return collective


# a pytree is all-reduced in buckets (fx.distributed.all_reduce)
psum = _over_axis("psum", lambda x: C.all_reduce(x, "sum"))
pmean = _over_axis("pmean", lambda x: C.all_reduce(x, "mean"))
pmax = _over_axis("pmax", lambda x: C.all_reduce(x, "max"))
pmin = _over_axis("pmin", lambda x: C.all_reduce(x, "min"))
psum.__doc__ = "The sum over the processes of the named pmap axis."
pmean.__doc__ = "The mean over the processes of the named pmap axis."
pmax.__doc__ = "The elementwise maximum over the processes of the named pmap axis."
pmin.__doc__ = "The elementwise minimum over the processes of the named pmap axis."


def _all_gather(x, axis=0, tiled=False):
    if tiled:
        return tree_map(lambda t: C.all_gather(t, axis), x)
    return tree_map(lambda t: C.all_gather(expand_dims(t, axis), axis), x)


def _psum_scatter(x, scatter_dimension=0, tiled=False):
    if tiled:
        return tree_map(lambda t: C.reduce_scatter(t, scatter_dimension), x)
    return tree_map(lambda t: squeeze(C.reduce_scatter(t, scatter_dimension), scatter_dimension), x)


all_gather = _over_axis("all_gather", _all_gather)
all_gather.__doc__ = """Every process gets all the processes' ``x``: stacked along a new
axis ``axis`` (JAX's default), or with ``tiled=True`` concatenated along ``axis``."""
psum_scatter = _over_axis("psum_scatter", _psum_scatter)
psum_scatter.__doc__ = """The sum over processes, scattered: process ``r`` gets the ``r``-th
slice of ``scatter_dimension`` (whose length is the number of processes), or with
``tiled=True`` its ``r``-th block."""


def axis_index(axis_name) -> object:
    """This process's position along the named pmap axis (its rank), an int64 scalar."""
    check_axis_name("axis_index", axis_name)
    return tensor(world.rank(), dtype="int64")
