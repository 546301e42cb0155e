"""Training curves and accuracy-by-length charts as PNG files (the optional ``plot`` extra).

Without matplotlib every function returns None after one notice saying how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

_NOTICE = "plots skipped: matplotlib is not installed (pip install 'fluxion[plot]')"
_warned = False


def _pyplot(notify: Callable[[str], None]):
    global _warned
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        if not _warned:
            notify(_NOTICE)
            _warned = True
        return None
    return plt


def plot_curves(
    rows: Sequence[dict], path, metric: str = "accuracy", notify: Callable[[str], None] = print
) -> str | None:
    """Loss (left) and ``metric`` (right) against the step, for training and validation,
    from the rows of ``metrics.jsonl``."""
    plt = _pyplot(notify)
    if plt is None:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, metric, metric)):
        for prefix, style in (("", "-"), ("val_", "o--")):
            points = [(r["step"], r[prefix + key]) for r in rows if r.get(prefix + key) is not None]
            if points:
                steps, values = zip(*points)
                label = "validation" if prefix else "training"
                ax.plot(steps, values, style, label=label, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(True, linestyle="--", alpha=0.5)
        ax.legend()
    if any(r.get("unigram_loss") is not None for r in rows):
        baseline = next(r["unigram_loss"] for r in rows if r.get("unigram_loss") is not None)
        ax_loss.axhline(baseline, color="grey", linestyle=":", label="unigram baseline")
        ax_loss.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_accuracy_by_length(
    by_length: dict[int, float],
    trained: set[int],
    path,
    title: str = "accuracy by length",
    notify: Callable[[str], None] = print,
) -> str | None:
    """Accuracy against the input length; lengths outside ``trained`` are shaded as out of
    distribution."""
    plt = _pyplot(notify)
    if plt is None:
        return None
    lengths = sorted(by_length)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lengths, [by_length[n] for n in lengths], "o-")
    outside = [n for n in lengths if n not in trained]
    for n in outside:
        ax.axvspan(n - 0.5, n + 0.5, color="grey", alpha=0.15, linewidth=0)
    if outside:
        ax.text(outside[-1] + 0.4, 0.05, "shaded: out of distribution", fontsize=9, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("length")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, linestyle="--", alpha=0.5)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)
