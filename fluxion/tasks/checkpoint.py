"""Task checkpoints: one safetensors file (``fx.save``) that is enough to resume or to use a run.

It holds ``model`` (the state dict), ``optimizer`` (the AdamW moments by parameter name and
the step count), ``step``, ``window`` (the (loss, accuracy) of each step since the last
metrics row, so that a run stopped between rows writes the row it would have written), and,
as JSON strings in the file's metadata, ``config`` (the ``TrainConfig``) and ``tokenizer``.
Nothing else is needed to resume exactly: the data and every random stream of step ``t``
are functions of (seed, ``t``) (``base.step_rng``, ``base.step_seed``). The optimizer state is stored by parameter name, not by
position, so a run trained with the compiled functional step can be resumed with the
imperative loop (``--eager``) and the other way round.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

import fluxion as fx
from fluxion.errors import CheckpointError
from fluxion.optim.functional import AdamState
from fluxion.tasks.base import TrainConfig

FORMAT = "fluxion.tasks/1"
FILENAME = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    config: TrainConfig
    tokenizer: dict | None
    model: dict  # parameter name -> Tensor
    optimizer: dict  # {"step": int, "exp_avg": {name: Tensor}, "exp_avg_sq": {name: Tensor}}
    step: int
    path: str
    window: list  # [(loss, accuracy)] of the steps after the last metrics row


def save_checkpoint(
    path, config: TrainConfig, tokenizer, model, optimizer: dict, step: int, window=()
):
    fx.save(
        {
            "format": FORMAT,
            "config": json.dumps(config.to_dict()),
            "tokenizer": json.dumps(tokenizer),
            "step": int(step),
            "window": [[float(loss), float(acc)] for loss, acc in window],
            "model": model.state_dict(),
            "optimizer": optimizer,
        },
        path,
    )


def load_checkpoint(path) -> Checkpoint:
    """Read and check a task checkpoint; ``CheckpointError`` when it is not one."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
    data = fx.load(path)  # raises CheckpointError for missing, truncated, corrupted files
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"'{path}' is a safetensors file but not a fluxion training checkpoint (no "
            f"'{FORMAT}' entry); pass the checkpoint.safetensors that `fluxion train` wrote"
        )
    try:
        config = TrainConfig.from_dict(json.loads(data["config"]))
        tokenizer = json.loads(data["tokenizer"])
        opt = data["optimizer"]
        optimizer = {
            "step": int(opt["step"]),
            "exp_avg": dict(opt["exp_avg"]),
            "exp_avg_sq": dict(opt["exp_avg_sq"]),
        }
        window = [(float(loss), float(acc)) for loss, acc in data.get("window", [])]
        return Checkpoint(
            config, tokenizer, dict(data["model"]), optimizer, int(data["step"]), path, window
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"'{path}': the training checkpoint is incomplete or corrupted ({type(e).__name__}: {e})"
        ) from None


# ------------------------------------------------------------------ optimizer state <-> names


def _leaf_names(model) -> list[str | None]:
    """The state-dict name of every leaf of ``fx.tree_leaves(model)`` (None: not a tensor
    the state dict holds). A tensor used twice (tied weights) is named once per use."""
    by_id = {id(t): name for name, t in model.state_dict(keep_vars=True).items()}
    names, seen = [], {}
    for leaf in fx.tree_leaves(model):
        name = by_id.get(id(leaf))
        if name is not None:
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
        names.append(name)
    return names


def functional_state_to_dict(model, state: AdamState) -> dict[str, Any]:
    exp_avg, exp_avg_sq = {}, {}
    for name, m, v in zip(_leaf_names(model), state.exp_avg, state.exp_avg_sq):
        if m is not None:
            exp_avg[name], exp_avg_sq[name] = m, v
    return {"step": int(state.step), "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def functional_state_from_dict(model, saved: dict[str, Any]) -> AdamState:
    fresh = fx.optim.adamw_init(model)
    names = _leaf_names(model)
    _check_names({n for n, m in zip(names, fresh.exp_avg) if m is not None}, set(saved["exp_avg"]))
    exp_avg = [
        None if m is None else _like(saved["exp_avg"][n], m) for n, m in zip(names, fresh.exp_avg)
    ]
    exp_avg_sq = [
        None if m is None else _like(saved["exp_avg_sq"][n], m)
        for n, m in zip(names, fresh.exp_avg_sq)
    ]
    step = fx.astype(fx.tensor(saved["step"]), fresh.step.dtype)
    return AdamState(step, exp_avg, exp_avg_sq, None)


def stateful_state_to_dict(model, optimizer) -> dict[str, Any]:
    names = [name for name, _ in model.named_parameters()]
    sd = optimizer.state_dict()
    return {
        "step": int(sd["step_count"]),
        "exp_avg": {names[i]: s["exp_avg"] for i, s in sd["state"].items()},
        "exp_avg_sq": {names[i]: s["exp_avg_sq"] for i, s in sd["state"].items()},
    }


def stateful_state_load(model, optimizer, saved: dict[str, Any]) -> None:
    names = [name for name, _ in model.named_parameters()]
    if saved["step"] == 0 and not saved["exp_avg"]:
        return
    _check_names(set(names), set(saved["exp_avg"]))
    state = {
        i: {
            "step": saved["step"],
            "exp_avg": saved["exp_avg"][n],
            "exp_avg_sq": saved["exp_avg_sq"][n],
        }
        for i, n in enumerate(names)
    }
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups, "step_count": saved["step"]})


def _check_names(want: set, have: set) -> None:
    if want != have:
        missing, extra = sorted(want - have), sorted(have - want)
        raise CheckpointError(
            "the optimizer state in the checkpoint does not fit the model "
            f"(missing: {missing[:4]}, unexpected: {extra[:4]}); was it written by another "
            "model, or with tied weights by the other training mode (--eager)?"
        )


def _like(saved, fresh):
    array = np.asarray(saved.numpy() if hasattr(saved, "numpy") else saved)
    if tuple(array.shape) != tuple(fresh.shape):
        raise CheckpointError(
            f"an optimizer moment has shape {tuple(array.shape)} in the checkpoint but the "
            f"parameter has shape {tuple(fresh.shape)}"
        )
    return fx.tensor(array.astype(fresh.numpy().dtype, copy=True))
