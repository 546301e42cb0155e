"""``OUT/tensorboard``: the run's ``metrics.jsonl`` as TensorBoard event files, written
when tensorboardX is installed (``pip install 'fluxion[tensorboard]'``).

Every number of a metrics row is one scalar at the row's step, tagged with its key
(``loss``, ``accuracy``, ``lr``, ``steps_per_s``, ``elapsed_s``, ``val_loss``...); the final
evaluation's go under ``final/`` (``final/val_loss``...) at the last step. A fresh run
removes the folder's earlier event files, as it rewrites ``metrics.jsonl``. A resumed run
from step ``s`` adds an event file that starts with a purge at ``s + 1``: TensorBoard hides
what earlier files hold after ``s``, and the curves go on from the checkpoint without a
doubled point (the final evaluation of a finished run that is resumed stays, at its step).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

FOLDER = "tensorboard"
NOTICE = (
    "tensorboard skipped: tensorboardX is not installed (pip install 'fluxion[tensorboard]'; "
    "--no-tensorboard hides this line)"
)


def open_log(out: Path, start: int, notify: Callable[[str], None]):
    """The ``SummaryWriter`` of ``out / FOLDER`` for a run starting at step ``start``, or
    None (after ``notify(NOTICE)``) without tensorboardX."""
    try:
        from fluxion.utils.tensorboard import SummaryWriter
    except ModuleNotFoundError as e:
        if e.name != "tensorboardX":
            raise
        notify(NOTICE)
        return None
    folder = out / FOLDER
    earlier = sorted(folder.glob("events.out.tfevents.*"))
    if start == 0:
        for old in earlier:
            old.unlink()
        earlier = []
    # the files' names start with the second they were made in; the number orders (and
    # keeps apart) files of one second, which TensorBoard reads in the order of their names
    return SummaryWriter(
        str(folder),
        purge_step=start + 1 if start else None,
        filename_suffix=f".{len(earlier):04d}",
    )


def log_row(writer, row: dict) -> None:
    """One row of ``metrics.jsonl``, flushed: an interrupted run keeps every point."""
    prefix = "final/" if row.get("final") else ""
    for key, value in row.items():
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
            writer.add_scalar(prefix + key, value, row["step"])
    writer.flush()
