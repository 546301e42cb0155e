"""TensorBoard event files: ``SummaryWriter`` as in ``torch.utils.tensorboard``, taking
fluxion tensors. Install it with ``pip install 'fluxion[tensorboard]'``::

    from fluxion.utils.tensorboard import SummaryWriter

    with SummaryWriter("runs/mine") as writer:
        for step in range(100):
            loss = train_step()                      # a fluxion scalar, or a float
            writer.add_scalar("train/loss", loss, step)
        writer.add_histogram("weights", model.fc.weight, step)
        writer.add_text("notes", "lr 1e-3, no warm-up", step)

then ``tensorboard --logdir runs``. ``fluxion train`` writes ``OUT/tensorboard`` with it.

The events are written by tensorboardX, the writer PyTorch Lightning also uses: installed,
it takes 4 MB with protobuf, against 91 MB for the ``tensorboard`` package (its web server,
grpc, ...), which is needed only to view the files, and writes as fast (16,000-27,000
scalars/s against 27,000-43,000 for tensorboard's own ``EventFileWriter``; a training run
writes a few per evaluation).
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from fluxion.core.tensor import Tensor

try:
    import tensorboardX
except ModuleNotFoundError as e:
    if e.name != "tensorboardX":
        raise
    raise ModuleNotFoundError(
        "fluxion.utils.tensorboard writes with tensorboardX, which is not installed: "
        "pip install 'fluxion[tensorboard]'",
        name="tensorboardX",
    ) from None


def _scalar(value):
    return float(value) if isinstance(value, Tensor) else value


_writers = itertools.count()


class SummaryWriter(tensorboardX.SummaryWriter):
    """tensorboardX's ``SummaryWriter`` (the methods and arguments of
    ``torch.utils.tensorboard``'s: ``add_scalar``, ``add_scalars``, ``add_histogram``,
    ``add_text``, ``flush``, ``close``, ``with``...), whose scalar and histogram methods
    take fluxion tensors as well as floats and NumPy arrays.

    As torch's, each writer's file name ends with the process id and a counter: tensorboardX
    names files by the second only, so a second writer made in the same second in the same
    folder would overwrite the first one's file."""

    def __init__(self, *args, filename_suffix: str | None = None, **kwargs):
        if filename_suffix is None:
            filename_suffix = f".{os.getpid()}.{next(_writers)}"
        super().__init__(*args, filename_suffix=filename_suffix, **kwargs)

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, **kwargs):
        super().add_scalar(tag, _scalar(scalar_value), global_step, walltime, **kwargs)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        values = {tag: _scalar(v) for tag, v in tag_scalar_dict.items()}
        super().add_scalars(main_tag, values, global_step, walltime)

    def add_histogram(self, tag, values, global_step=None, *args, **kwargs):
        if isinstance(values, Tensor):
            values = np.asarray(values)
        super().add_histogram(tag, values, global_step, *args, **kwargs)
