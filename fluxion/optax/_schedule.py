"""optax's schedules (``count -> value``) over ``fluxion.optim.schedules``.

``count`` is the number of updates done: a Python int eagerly, a traced int tensor under
``fx.jit`` (then the value is a float64 tensor).
"""

from __future__ import annotations

from fluxion.core.tensor import Tensor
from fluxion.errors import InvalidArgumentError
from fluxion.ops import elementwise as E
from fluxion.optim import schedules as S

constant_schedule = S.constant
join_schedules = S.join


def _per(steps: int, schedule):
    """``schedule`` seeing ``count / steps`` (in float64 when the count is a tensor)."""
    return lambda count: schedule(
        S._f64(count) / steps if isinstance(count, Tensor) else count / steps
    )


def _starting_at(begin: int, init_value: float, schedule):
    """``init_value`` for the first ``begin`` counts, then ``schedule`` counted from there."""
    return S.join([S.constant(init_value), schedule], [begin]) if begin > 0 else schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
):
    """From ``init_value`` to ``end_value`` over ``transition_steps`` counts, starting after
    ``transition_begin``; ``init_value`` throughout when ``transition_steps`` is 0 (as optax)."""
    if transition_steps <= 0:
        return S.constant(init_value)
    return _starting_at(
        transition_begin, init_value, S.linear(init_value, end_value, transition_steps)
    )


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
):
    """``init_value * ((1 - alpha) * c**exponent + alpha)``, ``c`` half a cosine from 1 to 0
    over ``decay_steps`` counts (0 after)."""
    if decay_steps <= 0:
        raise InvalidArgumentError(
            f"cosine_decay_schedule: decay_steps must be > 0, got {decay_steps}"
        )
    half_cosine = S.cosine(1.0, decay_steps)

    def schedule(count):
        c = half_cosine(count)
        if exponent != 1:
            c = c**exponent
        return init_value * ((1 - alpha) * c + alpha)

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
):
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then a cosine
    decay to ``end_value``; ``decay_steps`` counts both."""
    alpha = 0.0 if peak_value == 0 else end_value / peak_value
    return S.join(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
):
    """``init_value * decay_rate ** (count / transition_steps)`` after ``transition_begin``
    (the exponent rounded down with ``staircase``), bounded by ``end_value``."""
    if transition_steps <= 0:
        return S.constant(init_value)
    if staircase:
        decay = S.step_decay(init_value, transition_steps, decay_rate)
    else:
        decay = S.exponential(init_value, decay_rate)
        decay = _per(transition_steps, decay)
    if end_value is not None:
        bound = E.maximum if decay_rate < 1 else E.minimum
        plain = max if decay_rate < 1 else min
        unbounded = decay
        decay = lambda count: (
            bound(unbounded(count), end_value)
            if isinstance(count, Tensor)
            else plain(unbounded(count), end_value)
        )
    return _starting_at(transition_begin, init_value, decay)
