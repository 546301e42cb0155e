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
``OUT/accuracy_by_length.png``. Ctrl-C (SIGINT) or SIGTERM stops the run at the end of
the step it lands in, with a checkpoint that also holds the steps since the last row; a
NaN or infinite loss stops it before anything is saved over the last good checkpoint.

Resuming (``resume=``) restores the model, the optimizer moments and the step, and goes on
drawing the same batches (step ``t`` always uses ``step_rng(seed, t)``), so 6 steps in one
run and 3 + 3 in two give bit-identical parameters, and an interrupted run, resumed, writes
the same checkpoint, eval.json and metrics rows (timings aside) as one never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import fluxion as fx
from fluxion.backends import cpu
from fluxion.core import dtypes
from fluxion.errors import PathError
from fluxion.optim import schedules
from fluxion.serialization import write_atomically
from fluxion.tasks import checkpoint as ckpt
from fluxion.tasks import plots, tensorboard_log
from fluxion.tasks.base import Task, TaskError, TrainConfig, make_task, step_rng, step_seed

# the fields of a metrics row that measure the run's speed: the only ones in which two runs
# of one configuration differ, interrupted and resumed or not
TIMING = ("steps_per_s", "elapsed_s", "time")
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


def autocast(config: TrainConfig) -> fx.autocast:
    """The precision of the training step's forward pass (and so of its backward pass);
    the parameters and their gradients stay float32."""
    return fx.autocast(dtype=fx.bfloat16, enabled=config.precision == "bf16")


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
        loss_fn, clip, wd = autocast(config)(task.loss), config.clip, config.weight_decay
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
        self.loss, self.model, self.clip = autocast(config)(task.loss), model, config.clip
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
        loss, acc = self.loss(self.forward_model, *batch)
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
    """The rows of a ``metrics.jsonl``; with ``upto``, the interval rows of steps <= upto.
    A line that is not JSON (a row whose writing was killed: only ever the last one, past
    the checkpoint) is left out."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped ``train`` at a step boundary, after it saved the checkpoint
    of ``step``; ``--resume`` then writes the files of a run never interrupted.
    ``exit_status`` is the shell's convention: 128 + the signal (130, 143)."""

    def __init__(self, signum: int, step: int, out: Path):
        name = signal.Signals(signum).name
        super().__init__(
            f"{name}: stopped after step {step}, checkpoint saved in {out}; continue with --resume"
        )
        self.signum, self.step, self.exit_status = signum, step, 128 + signum


class Diverged(TaskError):
    """The loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


@contextlib.contextmanager
def _signals_at_step_boundaries():
    """SIGINT and SIGTERM only note themselves in the list this yields (the loop stops at
    the next step boundary), so a step, a row or a save is never cut in the middle. Only
    the main thread receives signals; elsewhere nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {
        kind: signal.signal(kind, lambda signum, _: received.append(signum)) for kind in kinds
    }
    try:
        yield received
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _writing(out: Path, kept: Callable[[], str]):
    """Turn an ``OSError`` of the run's files (a full disk, a folder that cannot be written)
    into a ``PathError`` that says what is kept."""
    try:
        yield
    except OSError as e:
        if isinstance(e, PathError):
            raise PathError(f"train: {e}; {kept()}") from None
        where = e.filename or out
        raise PathError(f"train: cannot write {where} ({e.strerror or e}); {kept()}") from None


def _finite(arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays if dtypes.is_float(a.dtype))


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
    ``tensorboard=False`` writes no ``OUT/tensorboard`` even with tensorboardX installed.

    SIGINT (Ctrl-C) and SIGTERM stop the run at the next step boundary with a checkpoint
    (``Interrupted``); a NaN or infinite loss stops it with ``Diverged``, the last good
    checkpoint kept; a file that cannot be written raises ``PathError``."""
    config.check()
    lead = fx.distributed.rank() == 0  # data parallel: rank 0 alone reports and writes files
    echo, progress, tensorboard = (echo, progress, tensorboard) if lead else (_quiet, False, False)
    out = Path(out_dir)
    saved_at = [resume.step if resume else None]

    def kept() -> str:
        if saved_at[0] is None:
            return "no checkpoint was written yet"
        return f"the checkpoint of step {saved_at[0]} in {out} is intact"

    with _writing(out, kept), _signals_at_step_boundaries() as received:
        return _train(
            config, out, resume, eager, progress, tensorboard, echo, received, saved_at, kept, lead
        )


def _train(config, out, resume, eager, progress, tensorboard, echo, received, saved_at, kept, lead):
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
        write_atomically(str(metrics_path), ["".join(json.dumps(r) + "\n" for r in rows).encode()])
    board = tensorboard_log.open_log(out, rows, echo) if tensorboard else None
    n_params = sum(p.size for p in model.parameters())
    echo(
        f"{config.task}: {n_params:,} parameters, {runner.style} step, steps {start}..{config.steps}"
        f", batch {config.batch_size}, lr {config.lr:g} ({config.schedule}, warmup {config.warmup})"
        f" -> {out}"
    )
    if config.precision == "bf16":
        echo(f"precision bf16: fx.autocast; bfloat16 matmuls run in {cpu.describe_bf16()}")

    def check(step: int) -> None:
        """Before a row and a checkpoint: nothing NaN or inf is saved over a good one."""
        optimizer = runner.optimizer_dict()
        arrays = [t.numpy() for t in runner.model.state_dict().values()]
        arrays += [t.numpy() for k in ("exp_avg", "exp_avg_sq") for t in optimizer[k].values()]
        if not _finite(arrays):
            raise Diverged(
                f"train: the parameters hold NaN or inf after step {step}; nothing was saved: "
                f"{kept()}; lower --lr or clip the gradients (--clip)"
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
            window,
        )
        saved_at[0] = step

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
    # the steps since the last row: (loss, accuracy) each, resumed from the checkpoint
    window: list[tuple[float, float]] = [tuple(w) for w in resume.window] if resume else []
    timed, window_time, completed = 0, 0.0, start
    for step in range(start, config.steps):
        if received:
            break
        t0 = time.perf_counter()
        batch = fx.data.shard_batch(task.train_batch(step_rng(config.seed, step)))
        batch = tuple(fx.asarray(b) for b in batch)
        fx.manual_seed(step_seed(config.seed, step))  # dropout, if any, draws from here
        lr = float(schedule(step))
        loss, acc = runner.step(batch, lr)
        if not math.isfinite(loss):
            bar.close()
            raise Diverged(
                f"train: the loss is {loss} at step {step + 1} (lr {lr:g}); training stopped: "
                f"{kept()}; lower --lr or clip the gradients (--clip)"
            )
        completed = step + 1
        window_time += time.perf_counter() - t0
        timed += 1
        window.append((loss, acc))
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)
        if completed % config.eval_every == 0 or completed == config.steps:
            row = {
                "step": completed,
                "loss": float(np.mean([w[0] for w in window])),
                task.metric: float(np.mean([w[1] for w in window])),
                "lr": lr,
                "steps_per_s": timed / max(window_time, 1e-9),
                "elapsed_s": time.perf_counter() - began,
                "time": time.time(),
            }
            row.update(_evaluate(task, runner.model, full=False))
            check(completed)
            rows.append(row)
            # the row, then the checkpoint: killed between the two, the resume starts from
            # the previous checkpoint and writes the row again
            if lead:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            window, timed, window_time = [], 0, 0.0
            save(completed)
            if board is not None:
                tensorboard_log.log_row(board, row)
            (bar.write if progress else echo)(_row_text(row, task.metric))
    bar.close()
    if received:
        if saved_at[0] != completed:
            check(completed)
            save(completed)
        if board is not None:
            board.close()
        echo(f"interrupted: checkpoint at step {completed} in {out}; continue with --resume")
        raise Interrupted(received[0], completed, out)
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
    write_atomically(
        str(out / EVAL), [(json.dumps({"step": config.steps, **final}, indent=1) + "\n").encode()]
    )
    files = [str(out / ckpt.FILENAME), str(metrics_path), str(out / EVAL)]
    files += [str(out / tensorboard_log.FOLDER)] if board is not None else []
    files += write_plots(task, rows, final, out, echo)
    for line in task.describe(final):
        echo(line)
    if runner.stats is not None:
        echo(f"compiled step: {runner.stats}")
    echo(f"trained {config.steps - start} steps in {seconds:.1f}s; files in {out}")
    if received:  # during the final evaluation: the files are complete, the exit says it
        raise Interrupted(received[0], config.steps, out)
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
