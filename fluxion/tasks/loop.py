"""The training loop every task shares, in two styles that reach the same result.

Compiled (the default): one ``fx.jit`` function does the whole functional step::

    (loss, acc), grads = fx.value_and_grad(task.loss, has_aux=True)(model, *batch)
    grads, _ = fx.optim.clip_by_global_norm(grads, clip)
    model, state = fx.optim.adamw_update(model, grads, state, lr=lr)

Eager (``--eager``): the imperative loop, ``loss.backward()``, ``clip_grad_norm_``,
``optimizer.step()`` on a stateful ``AdamW``.

Every ``eval_every`` steps the loop appends one JSON line to ``OUT/metrics.jsonl`` (the
interval's mean training loss and accuracy, the learning rate, steps/s and the task's quick
evaluation) and rewrites ``OUT/checkpoint.safetensors``; at the end it runs the full
evaluation (``OUT/eval.json``) and draws ``OUT/curves.png`` and, for tasks with lengths,
``OUT/accuracy_by_length.png``. Ctrl-C saves a checkpoint before stopping.

Resuming (``resume=``) restores the model, the optimizer moments and the step, and goes on
drawing the same batches (step ``t`` always uses ``step_rng(seed, t)``), so 6 steps in one
run and 3 + 3 in two give bit-identical parameters.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import fluxion as fx
from fluxion.optim import schedules
from fluxion.tasks import checkpoint as ckpt
from fluxion.tasks import plots, tensorboard_log
from fluxion.tasks.base import Task, TaskError, TrainConfig, make_task, step_rng, step_seed

METRICS, EVAL, CURVES, BY_LENGTH = (
    "metrics.jsonl",
    "eval.json",
    "curves.png",
    "accuracy_by_length.png",
)


def lr_schedule(config: TrainConfig) -> Callable[[int], float]:
    """``step -> lr``: a linear warm-up over ``config.warmup`` steps (from lr/warmup, so no
    step is wasted at lr 0), then constant, or a cosine decay to a tenth of the peak."""
    peak, warm, total = config.lr, config.warmup, config.steps
    after = (
        schedules.constant(peak)
        if config.schedule == "constant"
        else schedules.cosine(peak, max(total - warm, 1), final_value=peak / 10)
    )
    if warm == 0:
        return after
    return schedules.join([schedules.linear(peak / warm, peak, warm), after], [warm])


# ------------------------------------------------------------------ the two step styles


class CompiledRunner:
    """The functional step under ``fx.jit``: one trace per batch shape, then cached."""

    style = "compiled"

    def __init__(self, task: Task, model, config: TrainConfig, saved_optimizer=None):
        self.model = model
        self.state = (
            ckpt.functional_state_from_dict(model, saved_optimizer)
            if saved_optimizer is not None
            else fx.optim.adamw_init(model)
        )
        loss_fn, clip, wd = task.loss, config.clip, config.weight_decay
        parallel = fx.distributed.world_size() > 1

        def train_step(model, state, lr, *batch):
            (loss, acc), grads = fx.value_and_grad(loss_fn, has_aux=True)(model, *batch)
            if parallel:  # data parallel: the step of the mean loss over every process's shard
                grads, loss, acc = fx.distributed.all_reduce((grads, loss, acc), "mean")
            if clip > 0:
                grads, _ = fx.optim.clip_by_global_norm(grads, clip)
            model, state = fx.optim.adamw_update(model, grads, state, lr=lr, weight_decay=wd)
            return model, state, loss, acc

        self.step_fn = fx.jit(train_step)

    def step(self, batch, lr: float) -> tuple[float, float]:
        # lr enters as a float64 input: one trace serves every value of the schedule
        self.model, self.state, loss, acc = self.step_fn(
            self.model, self.state, np.float64(lr), *batch
        )
        return float(loss), float(acc)

    def optimizer_dict(self) -> dict:
        return ckpt.functional_state_to_dict(self.model, self.state)

    @property
    def stats(self):
        return self.step_fn.stats


class EagerRunner:
    """The imperative loop: ``zero_grad``, forward, ``backward``, clip, ``step``."""

    style = "eager"
    stats = None

    def __init__(self, task: Task, model, config: TrainConfig, saved_optimizer=None):
        self.task, self.model, self.clip = task, model, config.clip
        # data parallel: backward() averages the gradients over the processes (checkpoints
        # keep the bare model)
        self.parallel = fx.distributed.world_size() > 1
        self.forward_model = (
            fx.nn.parallel.DistributedDataParallel(model) if self.parallel else model
        )
        self.optimizer = fx.optim.AdamW(model, lr=config.lr, weight_decay=config.weight_decay)
        if saved_optimizer is not None:
            ckpt.stateful_state_load(model, self.optimizer, saved_optimizer)

    def step(self, batch, lr: float) -> tuple[float, float]:
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        loss, acc = self.task.loss(self.forward_model, *batch)
        loss.backward()
        if self.clip > 0:
            fx.optim.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        if self.parallel:
            loss, acc = fx.distributed.all_reduce((loss.detach(), acc), "mean")
        return float(loss), float(acc)

    def optimizer_dict(self) -> dict:
        return ckpt.stateful_state_to_dict(self.model, self.optimizer)


# ------------------------------------------------------------------ the loop


@dataclass
class TrainResult:
    config: TrainConfig
    step: int
    final: dict[str, Any]
    out_dir: Path
    rows: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stats: Any = None
    seconds: float = 0.0


def read_metrics(path: Path, upto: int | None = None) -> list[dict]:
    """The rows of a ``metrics.jsonl``; with ``upto``, the interval rows of steps <= upto."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if upto is not None:
        rows = [r for r in rows if r["step"] <= upto and not r.get("final")]
    return rows


def _evaluate(task: Task, model, full: bool) -> dict:
    model.eval()
    try:
        with fx.no_grad():
            return task.evaluate(model, full=full)
    finally:
        model.train()


def train(
    config: TrainConfig,
    out_dir,
    *,
    resume: ckpt.Checkpoint | None = None,
    eager: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``config.task`` for ``config.steps`` steps (in all, counting the resumed ones);
    ``tensorboard=False`` writes no ``OUT/tensorboard`` even with tensorboardX installed."""
    config.check()
    lead = fx.distributed.rank() == 0  # data parallel: rank 0 alone reports and writes files
    echo, progress, tensorboard = (echo, progress, tensorboard) if lead else (_quiet, False, False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(config, tokenizer=resume.tokenizer if resume else None)
    fx.manual_seed(config.seed)
    model = task.build_model()
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        start = resume.step
    model.train()
    runner_cls = EagerRunner if eager else CompiledRunner
    runner = runner_cls(task, model, config, resume.optimizer if resume else None)
    schedule = lr_schedule(config)
    metrics_path = out / METRICS
    rows = read_metrics(metrics_path, upto=start) if resume else []
    if lead:
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    board = tensorboard_log.open_log(out, rows, echo) if tensorboard else None
    n_params = sum(p.size for p in model.parameters())
    echo(
        f"{config.task}: {n_params:,} parameters, {runner.style} step, steps {start}..{config.steps}"
        f", batch {config.batch_size}, lr {config.lr:g} ({config.schedule}, warmup {config.warmup})"
        f" -> {out}"
    )

    def save(step: int) -> None:
        if not lead:
            return
        ckpt.save_checkpoint(
            out / ckpt.FILENAME,
            config,
            task.tokenizer_dict(),
            runner.model,
            runner.optimizer_dict(),
            step,
        )

    began = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=start,
        unit="step",
        desc=config.task,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.25,
    )
    window: list[tuple[float, float]] = []
    window_time, completed = 0.0, start
    try:
        for step in range(start, config.steps):
            t0 = time.perf_counter()
            batch = fx.data.shard_batch(task.train_batch(step_rng(config.seed, step)))
            batch = tuple(fx.asarray(b) for b in batch)
            fx.manual_seed(step_seed(config.seed, step))  # dropout, if any, draws from here
            lr = float(schedule(step))
            loss, acc = runner.step(batch, lr)
            completed = step + 1
            window_time += time.perf_counter() - t0
            window.append((loss, acc))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)
            done = completed
            if lead and (done % config.eval_every == 0 or done == config.steps):
                row = {
                    "step": done,
                    "loss": float(np.mean([w[0] for w in window])),
                    task.metric: float(np.mean([w[1] for w in window])),
                    "lr": lr,
                    "steps_per_s": len(window) / max(window_time, 1e-9),
                    "elapsed_s": time.perf_counter() - began,
                    "time": time.time(),
                }
                row.update(_evaluate(task, runner.model, full=False))
                rows.append(row)
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                if board is not None:
                    tensorboard_log.log_row(board, row)
                (bar.write if progress else echo)(_row_text(row, task.metric))
                save(done)
                window, window_time = [], 0.0
    except KeyboardInterrupt:
        bar.close()
        save(completed)
        echo(f"interrupted: checkpoint at step {completed} in {out}; continue with --resume")
        raise
    bar.close()
    if start >= config.steps:
        save(config.steps)
    seconds = time.perf_counter() - began
    if not lead:
        return TrainResult(config, config.steps, {}, out, [], [], runner.stats, seconds)
    final = _evaluate(task, runner.model, full=True)
    final_row = {"step": config.steps, "final": True, "time": time.time(), **_scalars(final)}
    with metrics_path.open("a") as f:
        f.write(json.dumps(final_row) + "\n")
    if board is not None:
        tensorboard_log.log_row(board, final_row)
        board.close()
    (out / EVAL).write_text(json.dumps({"step": config.steps, **final}, indent=1) + "\n")
    files = [str(out / ckpt.FILENAME), str(metrics_path), str(out / EVAL)]
    files += [str(out / tensorboard_log.FOLDER)] if board is not None else []
    files += write_plots(task, rows, final, out, echo)
    for line in task.describe(final):
        echo(line)
    if runner.stats is not None:
        echo(f"compiled step: {runner.stats}")
    echo(f"trained {config.steps - start} steps in {seconds:.1f}s; files in {out}")
    return TrainResult(config, config.steps, final, out, rows, files, runner.stats, seconds)


def _quiet(*_) -> None:
    pass


def write_plots(task: Task, rows, final, out: Path, echo=print) -> list[str]:
    files = []
    curve = plots.plot_curves(rows, out / CURVES, metric=task.metric, notify=echo)
    if curve:
        files.append(curve)
    lengths = task.by_length(final)
    if lengths is not None and curve:
        by_length, trained = lengths
        chart = plots.plot_accuracy_by_length(
            by_length, trained, out / BY_LENGTH, title=f"{task.name}: accuracy by length"
        )
        if chart:
            files.append(chart)
    return files


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, int | float | str | bool)}


def _row_text(row: dict, metric: str) -> str:
    parts = [f"step {row['step']:>6}", f"loss {row['loss']:.4f}", f"{metric} {row[metric]:.3f}"]
    for k, v in row.items():
        if k.startswith("val_") or k.startswith("test_"):
            parts.append(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}")
    parts.append(f"{row['steps_per_s']:.1f} steps/s")
    return "  ".join(parts)


def evaluate_checkpoint(path) -> tuple[Task, dict]:
    """Load a checkpoint and run its task's full evaluation."""
    task, model, _ = load_for_inference(path)
    result = _evaluate(task, model, full=True)
    return task, result


def load_for_inference(path):
    """``(task, model in eval mode, checkpoint)`` rebuilt from a checkpoint file."""
    saved = ckpt.load_checkpoint(path)
    task = make_task(saved.config, tokenizer=saved.tokenizer)
    fx.manual_seed(saved.config.seed)
    model = task.build_model()
    model.load_state_dict(saved.model)
    model.eval()
    return task, model, saved


def default_out_dir(task: str) -> str:
    return os.path.join("runs", task)


RESUMABLE = ("steps", "eval_every")  # what a resumed run may change


def resume_config(task: str, out_dir, given: dict) -> tuple[TrainConfig, ckpt.Checkpoint]:
    """The configuration and checkpoint to continue the run in ``out_dir``. Options in
    ``given`` (None: not given) must match the checkpoint's, apart from ``RESUMABLE``."""
    resume = ckpt.load_checkpoint(os.path.join(out_dir, ckpt.FILENAME))
    config = resume.config
    if config.task != task:
        raise TaskError(
            f"train --resume: {out_dir} holds a {config.task!r} run, not {task!r}; pick the "
            "matching task or another --out"
        )
    for name, value in given.items():
        if value is None or value == getattr(config, name):
            continue
        if name not in RESUMABLE:
            raise TaskError(
                f"train --resume: --{name.replace('_', '-')} {value} differs from the "
                f"checkpoint's {getattr(config, name)}; a resumed run keeps its configuration "
                "(only --steps and --eval-every may change)"
            )
        setattr(config, name, value)
    if resume.step > config.steps:
        raise TaskError(
            f"train --resume: the checkpoint is at step {resume.step}, past --steps "
            f"{config.steps}; ask for more steps"
        )
    return config, resume
