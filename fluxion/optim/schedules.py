"""Learning-rate schedules: functions ``step -> lr``, and a scheduler object for optimizers.

``step`` counts the updates made so far (0 for the first). A Python int gives a Python float;
a tensor (a traced step counter inside ``fx.jit``/``fx.vmap``) gives a float64 tensor, so the
same schedule serves the functional core (``adamw_update(..., lr=schedule)``) and the
stateful optimizers (``AdamW(model, lr=schedule)``).

>>> sched = fx.optim.schedules.warmup_cosine(1e-3, warmup_steps=10, decay_steps=100)
>>> [round(sched(t), 6) for t in (0, 5, 10, 55, 100)]
[0.0, 0.0005, 0.001, 0.0005, 0.0]

Compose with ``join(schedules, boundaries)``: schedule ``i`` runs from ``boundaries[i-1]`` on,
seeing the steps counted from there.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

from fluxion.core import dtypes
from fluxion.core.checks import check_count, check_ints, check_nonnegative, check_size
from fluxion.core.tensor import Tensor
from fluxion.errors import ArgumentTypeError, InvalidArgumentError
from fluxion.ops import elementwise as E
from fluxion.ops.primitives import constant as constant_tensor

Schedule = Callable[[int], float]


_F64 = dtypes.to_np("float64")


def _f64(t):
    return E.astype(t, _F64) if isinstance(t, Tensor) else t


def _f64_tensor(x) -> Tensor:
    return E.astype(x, _F64) if isinstance(x, Tensor) else constant_tensor(x, _F64)


def _min(a, b):
    return E.minimum(a, b) if isinstance(a, Tensor) or isinstance(b, Tensor) else min(a, b)


def _check(op: str, **values) -> None:
    """Learning rates and factors are finite numbers >= 0; counts of steps are ints >= 0."""
    for name, v in values.items():
        if name.endswith("steps"):
            check_size(op, name, v)
        else:
            check_nonnegative(op, name, v)


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    _check("constant", value=value)
    return lambda step: value


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``init_value * gamma ** (step // step_size)`` (PyTorch's ``StepLR``)."""
    _check("step_decay", init_value=init_value, gamma=gamma)
    check_count("step_decay", "step_size", step_size)

    def schedule(step):
        k = E.floor(_f64(step) / step_size) if isinstance(step, Tensor) else step // step_size
        return init_value * (E.power(gamma, k) if isinstance(k, Tensor) else gamma**k)

    return schedule


def exponential(init_value: float, gamma: float) -> Schedule:
    """``init_value * gamma ** step`` (PyTorch's ``ExponentialLR``)."""
    _check("exponential", init_value=init_value, gamma=gamma)

    def schedule(step):
        return init_value * (
            E.power(gamma, _f64(step)) if isinstance(step, Tensor) else gamma**step
        )

    return schedule


def linear(init_value: float, end_value: float, transition_steps: int) -> Schedule:
    """From ``init_value`` to ``end_value`` in ``transition_steps`` steps, then constant."""
    _check("linear", init_value=init_value, end_value=end_value, transition_steps=transition_steps)

    def schedule(step):
        if transition_steps == 0:
            return end_value
        frac = _min(_f64(step), transition_steps) / transition_steps
        return init_value + (end_value - init_value) * frac

    return schedule


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then constant."""
    _check("linear_warmup", peak_value=peak_value, warmup_steps=warmup_steps, init_value=init_value)
    return linear(init_value, peak_value, warmup_steps)


def cosine(init_value: float, decay_steps: int, final_value: float = 0.0) -> Schedule:
    """Half a cosine from ``init_value`` down to ``final_value`` in ``decay_steps`` steps, then
    ``final_value`` (PyTorch's ``CosineAnnealingLR`` with ``T_max=decay_steps``, ``eta_min=final_value``)."""
    _check("cosine", init_value=init_value, decay_steps=decay_steps, final_value=final_value)

    def schedule(step):
        if decay_steps == 0:
            return final_value
        frac = _min(_f64(step), decay_steps) / decay_steps
        c = E.cos(math.pi * frac) if isinstance(frac, Tensor) else math.cos(math.pi * frac)
        return final_value + (init_value - final_value) * (1 + c) / 2

    return schedule


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Schedule ``i`` from step ``boundaries[i-1]`` on, called with the steps since then.

    >>> s = fx.optim.schedules.join([constant(1.0), constant(0.1)], [5])
    >>> s(4), s(5)
    (1.0, 0.1)
    """
    schedules = list(schedules)
    boundaries = [
        check_size("join", "boundaries", b) for b in check_ints("join", "boundaries", boundaries)
    ]
    for s in schedules:
        if not callable(s):
            raise ArgumentTypeError(f"join: schedules must be callables step -> lr, got {s!r}")
    if len(schedules) != len(boundaries) + 1:
        raise InvalidArgumentError(
            f"join: needs one boundary fewer than schedules, got {len(schedules)} schedules and "
            f"{len(boundaries)} boundaries"
        )
    if any(b < a for a, b in zip(boundaries, boundaries[1:])):
        raise InvalidArgumentError(f"join: boundaries must be increasing, got {boundaries}")
    starts = [0, *boundaries]

    def schedule(step):
        if not isinstance(step, Tensor):
            i = bisect.bisect_right(boundaries, step)
            return schedules[i](step - starts[i])
        out = _f64_tensor(schedules[0](step))
        for start, s in zip(boundaries, schedules[1:]):
            out = E.where(step >= start, _f64_tensor(s(step - start)), _f64_tensor(out))
        return out

    return schedule


def warmup_cosine(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    final_value: float = 0.0,
) -> Schedule:
    """Linear warm-up to ``peak_value``, then cosine decay to ``final_value``; ``decay_steps``
    counts the whole schedule, warm-up included (as optax's ``warmup_cosine_decay_schedule``)."""
    _check(
        "warmup_cosine", peak_value=peak_value, warmup_steps=warmup_steps,
        decay_steps=decay_steps, init_value=init_value, final_value=final_value,
    )  # fmt: skip
    if decay_steps < warmup_steps:
        raise InvalidArgumentError(
            f"warmup_cosine: decay_steps ({decay_steps}) counts the warm-up too and must be >= "
            f"warmup_steps ({warmup_steps})"
        )
    return join(
        [
            linear(init_value, peak_value, warmup_steps),
            cosine(peak_value, decay_steps - warmup_steps, final_value),
        ],
        [warmup_steps],
    )


class LRScheduler:
    """Drive an optimizer's learning rate from a schedule, PyTorch style: call ``step()`` after
    each ``optimizer.step()``.

    ``schedule`` is one schedule for every group, or a list with one per group; it gives
    absolute learning rates.

    >>> w = fx.tensor([1.0], requires_grad=True)
    >>> opt = fx.optim.SGD([w], lr=0.1)
    >>> sched = fx.optim.LRScheduler(opt, fx.optim.schedules.step_decay(0.1, step_size=2, gamma=0.5))
    >>> for _ in range(3):
    ...     sched.step()
    >>> opt.lr
    0.05
    """

    def __init__(self, optimizer, schedule: Schedule | Sequence[Schedule]):
        groups = optimizer.param_groups
        schedules = (
            list(schedule) if isinstance(schedule, list | tuple) else [schedule] * len(groups)
        )
        if len(schedules) != len(groups):
            raise InvalidArgumentError(
                f"LRScheduler: {len(schedules)} schedules for {len(groups)} parameter groups"
            )
        for s in schedules:
            if not callable(s):
                raise ArgumentTypeError(
                    f"LRScheduler: schedule must be a callable step -> lr (or one per parameter "
                    f"group), got {s!r}; for a constant lr use schedules.constant({s!r})"
                )
        self.optimizer, self.schedules, self.last_epoch = optimizer, schedules, 0
        self._apply()

    def _apply(self) -> None:
        for group, s in zip(self.optimizer.param_groups, self.schedules):
            lr = s(self.last_epoch)
            group["lr"] = float(lr) if isinstance(lr, Tensor) else lr

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._apply()
