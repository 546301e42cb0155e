"""Data parallelism, PyTorch style: ``fx.nn.parallel.DistributedDataParallel``.

Start one process per worker (``mpirun -n 4 python train.py`` or ``fluxion train TASK
--procs 4``); each wraps the same model and feeds it its own shard of the batch
(``fx.data.DistributedSampler``). Training then goes as on one process.
"""

from __future__ import annotations

from fluxion.core.dtypes import is_float
from fluxion.core.tensor import Tensor
from fluxion.core.trace import no_grad
from fluxion.distributed.collectives import BUCKET_BYTES, broadcast, bucketed, replicated_mean
from fluxion.errors import InvalidArgumentError
from fluxion.nn.module import Module


class DistributedDataParallel(Module):
    """``module`` trained on every process at once: ``loss.backward()`` leaves each
    parameter's ``.grad`` averaged over the processes, so every process takes the same
    optimizer step (that of the mean loss over the global batch, when the shards are
    equal). At wrap time every process's parameters and buffers become rank 0's.

    The parameters pass through ``fx.distributed.replicated_mean`` on the way into the
    forward pass: the gradients flowing back through it are all-reduced in buckets of
    ``bucket_cap_mb`` (25 MB, as PyTorch's), not one call per tensor. That holds under
    ``fx.grad`` and inside ``fx.jit`` too.

    >>> model = fx.nn.parallel.DistributedDataParallel(fx.nn.Linear(3, 1))  # a world of one
    >>> model(fx.ones((2, 3))).sum().backward()
    >>> model.module.weight.grad
    [[2. 2. 2.]]:f32[1,3]:cpu(0)
    """

    def __init__(self, module: Module, bucket_cap_mb: float = BUCKET_BYTES / 2**20):
        super().__init__()
        if not isinstance(module, Module):
            raise InvalidArgumentError(
                f"DistributedDataParallel: module must be an fx.nn.Module, got {type(module).__name__}"
            )
        self.module = module
        self.bucket_bytes = int(bucket_cap_mb * 2**20)
        _slots(module)  # every parameter can be reached, or say which cannot
        tensors = [t for t in (*module.parameters(), *module.buffers()) if isinstance(t, Tensor)]
        with no_grad():
            for t, value in zip(tensors, bucketed(lambda flat: broadcast(flat, 0), tensors)):
                t.data = value

    def forward(self, *args, **kwargs):
        slots = _slots(self.module)
        params = list({id(v): v for _, _, v in slots}.values())
        synced = dict(zip(map(id, params), replicated_mean(params, self.bucket_bytes)))
        try:
            for owner, name, value in slots:
                owner.__dict__[name] = synced[id(value)]
            return self.module(*args, **kwargs)
        finally:
            for owner, name, value in slots:
                owner.__dict__[name] = value


def _slots(module: Module) -> list[tuple]:
    """``(owner, attribute, parameter)`` for each floating-point parameter of ``module``,
    held directly as a module attribute (where the forward pass reads it)."""
    slots = []
    for owner in module.modules():
        for name in owner.__dict__["_fx_params"]:
            value = owner.__dict__.get(name)
            if isinstance(value, Tensor) and is_float(value._np_dtype):
                slots.append((owner, name, value))
    found = {id(v) for _, _, v in slots}
    for name, p in module.named_parameters():
        if isinstance(p, Tensor) and is_float(p._np_dtype) and id(p) not in found:
            raise InvalidArgumentError(
                f"DistributedDataParallel: parameter {name!r} is held inside a list, tuple or "
                "dict attribute, where its gradient could not be averaged over processes; make "
                "it an attribute of a module (an fx.nn.ParameterList-like Module)"
            )
    return slots
