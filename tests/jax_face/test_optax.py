"""fluxion.optax against optax itself (the oracle): every transformation, chain and schedule
over several steps on the same gradients, to float32 accuracy (the order of operations inside
Adam is PyTorch's, not optax's); and an optax-style AdamW against fx.optim.AdamW and
fx.optim.adamw_update, bitwise, eagerly and under fx.jit (one per-leaf rule, three faces)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxion as fx
import fluxion.optax as fxo

STEPS = 6
RNG = np.random.default_rng(0)
INIT = {
    "w": RNG.normal(size=(3, 4)).astype(np.float32),
    "b": RNG.normal(size=(4,)).astype(np.float32),
}
GRADS = [
    {k: RNG.normal(size=v.shape).astype(np.float32) * 3 for k, v in INIT.items()}
    for _ in range(STEPS)
]


def run(lib, tx):
    """Params after each step with the fixed gradients; the params are numpy arrays."""
    as_array = (lambda a: jnp.asarray(a)) if lib is optax else fx.tensor
    params = {k: as_array(v) for k, v in INIT.items()}
    state = tx.init(params)
    history = []
    for g in GRADS:
        updates, state = tx.update({k: as_array(v) for k, v in g.items()}, state, params)
        params = lib.apply_updates(params, updates)
        history.append({k: np.asarray(v) for k, v in params.items()})
    return history, state


def both(make):
    return run(fxo, make(fxo))[0], run(optax, make(optax))[0]


CHAINS = {
    "sgd": lambda o: o.sgd(0.1),
    "sgd_momentum": lambda o: o.sgd(0.05, momentum=0.9),
    "sgd_nesterov": lambda o: o.sgd(0.05, momentum=0.9, nesterov=True),
    "adam": lambda o: o.adam(1e-2),
    "adam_betas": lambda o: o.adam(3e-2, b1=0.3, b2=0.9, eps=1e-6),
    "adamw": lambda o: o.adamw(1e-2, weight_decay=0.1),
    "adamw_mask": lambda o: o.adamw(1e-2, weight_decay=0.1, mask={"w": True, "b": False}),
    "clip_then_adamw": lambda o: o.chain(o.clip_by_global_norm(1.0), o.adamw(1e-2)),
    "clip_unclipped": lambda o: o.chain(o.clip_by_global_norm(100.0), o.sgd(0.1)),
    "clip_value": lambda o: o.chain(o.clip(0.5), o.scale(-0.1)),
    "hand_built_adamw": lambda o: o.chain(
        o.scale_by_adam(), o.add_decayed_weights(0.05), o.scale_by_learning_rate(1e-2)
    ),
    "trace_scale": lambda o: o.chain(o.trace(0.5), o.scale(-0.1)),
    "adam_scheduled": lambda o: o.adam(o.linear_schedule(1e-2, 1e-3, 4)),
    "inject_adamw": lambda o: o.inject_hyperparams(o.adamw)(learning_rate=1e-2, weight_decay=0.1),
    "inject_scheduled": lambda o: o.inject_hyperparams(o.sgd)(
        learning_rate=o.cosine_decay_schedule(0.1, 5), momentum=0.9
    ),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_matches_optax(name):
    got, want = both(CHAINS[name])
    for step, (g, w) in enumerate(zip(got, want)):
        for k in INIT:
            np.testing.assert_allclose(g[k], w[k], rtol=2e-6, atol=2e-6, err_msg=f"{k} step {step}")
    assert not np.allclose(got[-1]["w"], INIT["w"])  # the chain did move the parameters


def test_states_have_optax_fields():
    params = {k: fx.tensor(v) for k, v in INIT.items()}
    state = fxo.adamw(1e-3).init(params)
    ostate = optax.adamw(1e-3).init({k: jnp.asarray(v) for k, v in INIT.items()})
    assert len(state) == len(ostate) and state[0]._fields == ostate[0]._fields
    _, state = run(fxo, fxo.adam(1e-3))
    assert int(state[0].count) == STEPS and state[0].count.dtype == fx.int32
    _, istate = run(fxo, fxo.inject_hyperparams(fxo.adam)(learning_rate=1e-3))
    assert set(istate.hyperparams) == {"learning_rate"} and int(istate.count) == STEPS


def test_inject_hyperparams_can_be_changed_between_steps():
    results = []
    for o in (fxo, optax):
        as_array = jnp.asarray if o is optax else fx.tensor
        params = {"w": as_array(INIT["w"])}
        tx = o.inject_hyperparams(o.sgd)(learning_rate=0.1)
        state = tx.init(params)
        state.hyperparams["learning_rate"] = as_array(np.float32(0.5))
        updates, state = tx.update({"w": as_array(GRADS[0]["w"])}, state, params)
        results.append(np.asarray(o.apply_updates(params, updates)["w"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    np.testing.assert_allclose(results[0], INIT["w"] - 0.5 * GRADS[0]["w"], rtol=1e-6)


SCHEDULES = {
    "constant": lambda o: o.constant_schedule(0.3),
    "linear": lambda o: o.linear_schedule(1.0, 0.1, 7),
    "linear_begin": lambda o: o.linear_schedule(1.0, 0.1, 7, transition_begin=3),
    "linear_no_steps": lambda o: o.linear_schedule(1.0, 0.1, 0),
    "cosine": lambda o: o.cosine_decay_schedule(0.5, 8),
    "cosine_alpha_exponent": lambda o: o.cosine_decay_schedule(0.5, 8, alpha=0.1, exponent=2.0),
    "warmup_cosine": lambda o: o.warmup_cosine_decay_schedule(0.0, 1.0, 3, 10, end_value=0.05),
    "exponential": lambda o: o.exponential_decay(1.0, 3, 0.5),
    "exponential_staircase_begin_end": lambda o: o.exponential_decay(
        1.0, 3, 0.5, transition_begin=2, staircase=True, end_value=0.2
    ),
    "exponential_growth_end": lambda o: o.exponential_decay(0.1, 2, 2.0, end_value=0.5),
    "join": lambda o: o.join_schedules(
        [o.constant_schedule(1.0), o.linear_schedule(1.0, 0.0, 4), o.constant_schedule(0.1)],
        [2, 6],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_optax(name):
    mine, theirs = SCHEDULES[name](fxo), SCHEDULES[name](optax)
    counts = range(14)
    want = [float(theirs(jnp.asarray(c, jnp.int32))) for c in counts]
    np.testing.assert_allclose([float(mine(c)) for c in counts], want, rtol=1e-6, atol=1e-7)
    # a traced count (inside fx.jit) gives the same values
    traced = fx.jit(lambda c: fx.astype(mine(c), fx.float32))
    np.testing.assert_allclose(
        [float(traced(fx.tensor(c, dtype=fx.int32))) for c in counts], want, rtol=1e-6, atol=1e-7
    )


# ----------------------------------------------------------------------------- bitwise AdamW


def loss(params, x, y):
    return fx.mean((fx.tanh(x @ params["w"]) + params["b"] - y) ** 2)


X = fx.tensor(RNG.normal(size=(5, 3)).astype(np.float32))
Y = fx.tensor(RNG.normal(size=(5, 4)).astype(np.float32))
HP = dict(lr=3e-2, betas=(0.9, 0.99), eps=1e-7, weight_decay=0.05)


def optax_step(params, state, tx):
    grads = fx.grad(loss)(params, X, Y)
    updates, state = tx.update(grads, state, params)
    return fxo.apply_updates(params, updates), state


def functional_step(params, state):
    grads = fx.grad(loss)(params, X, Y)
    return fx.optim.adamw_update(params, grads, state, **HP)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
def test_optax_adamw_is_bitwise_fx_optim_adamw(jit, schedule):
    lr = fx.optim.schedules.warmup_cosine(HP["lr"], 2, 8) if schedule else HP["lr"]
    hp = {**HP, "lr": lr}
    tx = fxo.adamw(lr, b1=0.9, b2=0.99, eps=1e-7, weight_decay=0.05)
    step_o = fx.jit(optax_step, static_argnums=2) if jit else optax_step
    step_f = fx.jit(functional_step) if jit else functional_step
    fresh = lambda: {k: fx.tensor(v) for k, v in INIT.items()}
    p_o, p_f = fresh(), fresh()
    s_o, s_f = tx.init(p_o), fx.optim.adamw_init(p_f)
    stateful = {k: fx.nn.Parameter(fx.tensor(v)) for k, v in INIT.items()}
    opt = fx.optim.AdamW(list(stateful.values()), **hp)
    for _ in range(STEPS):
        p_o, s_o = step_o(p_o, s_o, tx)
        if schedule:
            p_f, s_f = fx.optim.adamw_update(p_f, fx.grad(loss)(p_f, X, Y), s_f, **hp)
        else:
            p_f, s_f = step_f(p_f, s_f)
        opt.zero_grad()
        loss(stateful, X, Y).backward()
        opt.step()
        for k in INIT:
            assert np.array_equal(p_o[k].numpy(), p_f[k].numpy()), k
            assert np.array_equal(p_o[k].numpy(), stateful[k].numpy()), k
    assert not np.array_equal(p_o["w"].numpy(), INIT["w"])


def test_optax_sgd_momentum_is_bitwise_fx_optim_sgd():
    tx = fxo.sgd(0.05, momentum=0.9, nesterov=True)
    p_o = {k: fx.tensor(v) for k, v in INIT.items()}
    s_o = tx.init(p_o)
    stateful = {k: fx.nn.Parameter(fx.tensor(v)) for k, v in INIT.items()}
    opt = fx.optim.SGD(list(stateful.values()), lr=0.05, momentum=0.9, nesterov=True)
    for _ in range(STEPS):
        p_o, s_o = optax_step(p_o, s_o, tx)
        opt.zero_grad()
        loss(stateful, X, Y).backward()
        opt.step()
    for k in INIT:
        assert np.array_equal(p_o[k].numpy(), stateful[k].numpy()), k


def test_update_without_params_names_the_fix():
    tx = fxo.adamw(1e-3)
    params = {"w": fx.ones(2)}
    with pytest.raises(
        fx.errors.InvalidArgumentError, match="tx.update\\(updates, state, params\\)"
    ):
        tx.update({"w": fx.ones(2)}, tx.init(params))
    with pytest.raises(fx.errors.InvalidArgumentError, match="eps_root"):
        fxo.scale_by_adam(eps_root=1e-8)


LOGITS = RNG.normal(size=(4, 5)).astype(np.float32)
PROBS = np.asarray(jax.nn.softmax(RNG.normal(size=(4, 5)).astype(np.float32)))
LABELS = RNG.integers(0, 5, size=(4,)).astype(np.int32)
BINARY = (RNG.random(size=(4, 5)) > 0.5).astype(np.float32)
LOSSES = {
    "softmax_cross_entropy": (LOGITS, PROBS),
    "softmax_cross_entropy_with_integer_labels": (LOGITS, LABELS),
    "squared_error": (LOGITS, PROBS),
    "l2_loss": (LOGITS, PROBS),
    "sigmoid_binary_cross_entropy": (LOGITS, BINARY),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_optax(name):
    args = LOSSES[name]
    got = getattr(fxo, name)(*(fx.tensor(a) for a in args)).numpy()
    want = np.asarray(getattr(optax, name)(*(jnp.asarray(a) for a in args)))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_global_norm_matches_optax():
    tree = {k: fx.tensor(v) for k, v in INIT.items()}
    want = optax.global_norm({k: jnp.asarray(v) for k, v in INIT.items()})
    np.testing.assert_allclose(float(fxo.global_norm(tree)), float(want), rtol=1e-6)
