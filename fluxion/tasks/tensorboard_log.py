"""``OUT/tensorboard``: the run's ``metrics.jsonl`` as TensorBoard event files, written
when tensorboardX is installed (``pip install 'fluxion[tensorboard]'``).

Every number of a metrics row is one scalar at the row's step, tagged with its key
(``loss``, ``accuracy``, ``lr``, ``steps_per_s``, ``elapsed_s``, ``val_loss``...), at the
row's ``time``; the final evaluation's go under ``final/`` (``final/val_loss``...). The
folder always holds what ``metrics.jsonl`` holds: a run starts a new event file with the
rows it keeps (none, or a resumed run's rows up to its checkpoint) and deletes the earlier
files, so the curves of a resumed run go on from the checkpoint without a doubled or
orphaned point, in every TensorBoard viewer (a purge event would hide orphans from
TensorBoard's Python loader only, not from its default data server).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

FOLDER = "tensorboard"
NOTICE = (
    "tensorboard skipped: tensorboardX is not installed (pip install 'fluxion[tensorboard]'; "
    "--no-tensorboard hides this line)"
)
NOT_SCALARS = ("step", "time", "final")


def open_log(out: Path, kept_rows: list[dict], notify: Callable[[str], None]):
    """The ``SummaryWriter`` of ``out / FOLDER``, holding ``kept_rows`` already; None
    (after ``notify(NOTICE)``) without tensorboardX."""
    try:
        from fluxion.utils.tensorboard import SummaryWriter
    except ModuleNotFoundError as e:
        if e.name != "tensorboardX":
            raise
        notify(NOTICE)
        return None
    folder = out / FOLDER
    for earlier in folder.glob("events.out.tfevents.*"):
        earlier.unlink()
    writer = SummaryWriter(str(folder))
    for row in kept_rows:
        log_row(writer, row)
    return writer


def log_row(writer, row: dict) -> None:
    """One row of ``metrics.jsonl``, flushed: an interrupted run keeps every point."""
    prefix = "final/" if row.get("final") else ""
    for key, value in row.items():
        if key not in NOT_SCALARS and isinstance(value, int | float):
            writer.add_scalar(prefix + key, value, row["step"], walltime=row.get("time"))
    writer.flush()
