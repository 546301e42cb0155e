"""Optimizers, schedules and gradient clipping, checked against torch.optim.

Every trajectory is run three ways on one small problem (a two-layer tanh regression with
three parameter tensors): ``torch.optim``, fluxion's stateful optimizer, and fluxion's
functional core. The stateful and functional runs must agree bitwise (they share one
per-leaf rule); both must follow PyTorch to 1e-5 in float32 over 100 steps.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.core.dtypes import to_np
from fluxion.errors import InvalidArgumentError, ShapeError, TracerError
from fluxion.nn.module import Module, Parameter

STEPS = 100
_rng = np.random.default_rng(0)
X = _rng.standard_normal((16, 3)).astype(np.float32)
Y = _rng.standard_normal((16, 2)).astype(np.float32)
INIT = {
    "w1": (_rng.standard_normal((3, 4)) * 0.5).astype(np.float32),
    "b1": (_rng.standard_normal(4) * 0.1).astype(np.float32),
    "w2": (_rng.standard_normal((4, 2)) * 0.5).astype(np.float32),
}
NAMES = list(INIT)  # the order of torch's parameter list


def fx_loss(p):
    h = fx.tanh(fx.tensor(X) @ p["w1"] + p["b1"])
    return fx.mean((h @ p["w2"] - fx.tensor(Y)) ** 2)


def torch_loss(p):
    h = torch.tanh(torch.from_numpy(X) @ p["w1"] + p["b1"])
    return ((h @ p["w2"] - torch.from_numpy(Y)) ** 2).mean()


def run_torch(cls, kw, steps=STEPS, schedule=None, no_grad_for=None):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in INIT.items()}
    opt = cls([p[k] for k in NAMES], **kw)
    sched = schedule(opt) if schedule else None
    losses = []
    for t in range(steps):
        opt.zero_grad()
        loss = torch_loss(p)
        loss.backward()
        if no_grad_for and t < no_grad_for[1]:
            p[no_grad_for[0]].grad = None
        opt.step()
        if sched:
            sched.step()
        losses.append(loss.item())
    return {k: v.detach().numpy() for k, v in p.items()}, np.array(losses)


def leaf(shape):
    """A float32 tensor of zeros that requires grad (fx.zeros has no requires_grad=)."""
    return fx.tensor(np.zeros(shape, np.float32), requires_grad=True)


def fx_params(requires_grad=True):
    return {k: fx.tensor(v, requires_grad=requires_grad) for k, v in INIT.items()}


def run_stateful(cls, kw, steps=STEPS, no_grad_for=None):
    p = fx_params()
    opt = cls([p[k] for k in NAMES], **kw)
    losses = []
    for t in range(steps):
        opt.zero_grad()
        loss = fx_loss(p)
        loss.backward()
        if no_grad_for and t < no_grad_for[1]:
            p[no_grad_for[0]].grad = None
        assert opt.step() is None
        losses.append(loss.item())
    return {k: v.numpy() for k, v in p.items()}, np.array(losses)


def run_functional(init, update, kw, init_kw, steps=STEPS):
    p = fx_params(requires_grad=False)
    state = init(p, **init_kw)
    losses = []
    for _ in range(steps):
        loss, g = fx.value_and_grad(fx_loss)(p)
        p, state = update(p, g, state, **kw)
        losses.append(loss.item())
    return {k: v.numpy() for k, v in p.items()}, np.array(losses), state


CONFIGS = {
    "sgd": (torch.optim.SGD, fx.optim.SGD, "sgd", dict(lr=0.1)),
    "sgd_momentum": (torch.optim.SGD, fx.optim.SGD, "sgd", dict(lr=0.05, momentum=0.9)),
    "sgd_nesterov_wd": (
        torch.optim.SGD,
        fx.optim.SGD,
        "sgd",
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    "sgd_dampening_wd": (
        torch.optim.SGD,
        fx.optim.SGD,
        "sgd",
        dict(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.1),
    ),
    "adam": (torch.optim.Adam, fx.optim.Adam, "adam", dict(lr=0.01)),
    "adam_wd_amsgrad": (
        torch.optim.Adam,
        fx.optim.Adam,
        "adam",
        dict(lr=0.01, weight_decay=0.01, amsgrad=True),
    ),
    "adam_betas_eps": (
        torch.optim.Adam,
        fx.optim.Adam,
        "adam",
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    ),
    "adamw": (torch.optim.AdamW, fx.optim.AdamW, "adamw", dict(lr=0.01, weight_decay=0.01)),
    "adamw_amsgrad": (
        torch.optim.AdamW,
        fx.optim.AdamW,
        "adamw",
        dict(lr=0.01, weight_decay=0.01, amsgrad=True),
    ),
    "adamw_small_beta1": (  # 1 - beta1 >= 0.5: the other branch of PyTorch's lerp
        torch.optim.AdamW,
        fx.optim.AdamW,
        "adamw",
        dict(lr=0.01, betas=(0.3, 0.999), weight_decay=0.1),
    ),
    "adamw_maximize": (  # ascend the negative loss: a descent of the loss itself
        torch.optim.AdamW,
        fx.optim.AdamW,
        "adamw",
        dict(lr=0.01, maximize=True),
    ),
}


def functional_pair(kind, kw):
    init = getattr(fx.optim, f"{kind}_init")
    update = getattr(fx.optim, f"{kind}_update")
    init_kw = {}
    if kind == "sgd" and kw.get("momentum", 0):
        init_kw["momentum"] = kw["momentum"]
    if kw.get("amsgrad"):
        init_kw["amsgrad"] = True
    return init, update, init_kw


# float32 matmuls sum in their BLAS's order, which differs between torch's build and
# NumPy's and between CPUs; 100 steps of momentum 0.9 grow those last bits to ~4e-6
# (seen on an AVX-512 machine), so trajectories agree to 1e-5, not to the last bit.
TORCH_TOLERANCE = 1e-5


def assert_close_to_torch(params, losses, t_params, t_losses):
    tol = TORCH_TOLERANCE
    for k in NAMES:
        np.testing.assert_allclose(params[k], t_params[k], rtol=tol, atol=tol, err_msg=k)
    np.testing.assert_allclose(losses, t_losses, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- trajectories


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CONFIGS))
def test_trajectory_matches_torch_and_styles_agree_bitwise(name):
    tcls, fcls, kind, kw = CONFIGS[name]
    t_params, t_losses = run_torch(tcls, kw)
    s_params, s_losses = run_stateful(fcls, kw)
    init, update, init_kw = functional_pair(kind, kw)
    f_params, f_losses, state = run_functional(init, update, kw, init_kw)
    assert_close_to_torch(s_params, s_losses, t_params, t_losses)
    for k in NAMES:
        assert np.array_equal(s_params[k], f_params[k]), k  # one rule, two styles: bitwise
    assert np.array_equal(s_losses, f_losses)
    assert int(state.step) == STEPS and state.step.dtype == fx.int32
    if not kw.get("maximize"):
        assert t_losses[-1] < t_losses[0]  # the problem is actually being optimized


@pytest.mark.torch
def test_parameters_without_grad_are_skipped_like_torch():
    # b1 gets no gradient for the first 10 steps: its Adam step count lags, as in PyTorch
    for tcls, fcls, kw in [
        (torch.optim.AdamW, fx.optim.AdamW, dict(lr=0.01)),
        (torch.optim.SGD, fx.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ]:
        t_params, t_losses = run_torch(tcls, kw, no_grad_for=("b1", 10))
        s_params, s_losses = run_stateful(fcls, kw, no_grad_for=("b1", 10))
        assert_close_to_torch(s_params, s_losses, t_params, t_losses)


@pytest.mark.torch
def test_param_groups_match_torch():
    groups = lambda p: [
        {"params": [p["w1"], p["b1"]], "lr": 0.02, "weight_decay": 0.0},
        {"params": [p["w2"]]},
    ]
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in INIT.items()}
    fp = fx_params()
    topt = torch.optim.AdamW(groups(tp), lr=0.005, weight_decay=0.05)
    fopt = fx.optim.AdamW(groups(fp), lr=0.005, weight_decay=0.05)
    for _ in range(50):
        topt.zero_grad(), fopt.zero_grad()
        torch_loss(tp).backward()
        fx_loss(fp).backward()
        topt.step(), fopt.step()
    for k in NAMES:
        np.testing.assert_allclose(fp[k].numpy(), tp[k].detach().numpy(), rtol=1e-6, atol=1e-6)
    assert fopt.lr == 0.02 and fopt.param_groups[1]["lr"] == 0.005
    assert fopt.param_groups[1]["weight_decay"] == 0.05


def test_closure_returns_the_loss():
    p = fx_params()
    opt = fx.optim.SGD(list(p.values()), lr=0.1)

    def closure():
        opt.zero_grad()
        loss = fx_loss(p)
        loss.backward()
        return loss

    first = opt.step(closure)
    second = opt.step(closure)
    assert float(second) < float(first)


# ----------------------------------------------------------------------------- modules


class Tiny(Module):
    """Three parameters and a buffer (which the optimizers must leave alone)."""

    def __init__(self):
        super().__init__()
        self.w1 = Parameter(fx.tensor(INIT["w1"]))
        self.b1 = Parameter(fx.tensor(INIT["b1"]))
        self.w2 = Parameter(fx.tensor(INIT["w2"]))
        self.register_buffer("scale", fx.tensor(1.0))

    def forward(self, x):
        return fx.tanh(x @ self.w1 + self.b1) @ self.w2 * self.scale


def module_loss(m):
    return fx.mean((m(fx.tensor(X)) - fx.tensor(Y)) ** 2)


@pytest.mark.torch
def test_stateful_optimizer_on_a_module_returns_it_and_matches_torch():
    t_params, t_losses = run_torch(torch.optim.AdamW, dict(lr=0.01, amsgrad=True))
    model = Tiny()
    params_before = [id(p) for p in model.parameters()]
    optimizer = fx.optim.AdamW(model, lr=0.01, amsgrad=True)
    assert optimizer.lr == 0.01
    losses = []
    for _ in range(STEPS):
        model.zero_grad()
        loss = module_loss(model)
        loss.backward()
        returned = optimizer.step()
        assert returned is model
        model = returned
        losses.append(loss.item())
    assert [id(p) for p in model.parameters()] == params_before  # updated in place
    assert float(model.scale) == 1.0 and len(optimizer.state) == 3  # the buffer has no state
    params = {k: getattr(model, k).numpy() for k in NAMES}
    assert_close_to_torch(params, np.array(losses), t_params, t_losses)
    # model.parameters() works as well, and step() then returns None
    opt2 = fx.optim.SGD(Tiny().parameters(), lr=0.1)
    assert opt2.step() is None


@pytest.mark.torch
def test_functional_core_on_a_module_leaves_buffers_alone():
    t_params, t_losses = run_torch(torch.optim.AdamW, dict(lr=0.01))
    model = Tiny()
    state = fx.optim.adamw_init(model)
    leaves = fx.tree_leaves(model)
    assert len(state.exp_avg) == len(leaves) == 4
    assert [m is None for m in state.exp_avg] == [False, False, False, True]  # scale: a buffer
    step = lambda m, s: fx.optim.adamw_update(m, fx.grad(module_loss)(m), s, lr=0.01)
    losses = []
    for _ in range(STEPS):
        losses.append(module_loss(model).item())
        model, state = step(model, state)
    assert type(model) is Tiny and float(model.scale) == 1.0
    assert isinstance(model.w1, Parameter) and model.w1.is_leaf and model.w1.requires_grad
    module_loss(model).backward()  # the returned model trains PyTorch-style as well
    assert model.w1.grad is not None
    params = {k: getattr(model, k).numpy() for k in NAMES}
    assert_close_to_torch(params, np.array(losses), t_params, t_losses)
    # train()/eval() does not change the structure the state was built for
    model.eval()
    model, state = step(model, state)
    model.train()
    model, state = step(model, state)
    assert int(state.step) == STEPS + 2


def test_fx_nn_optim_is_fx_optim():
    import fluxion.nn as nn

    assert nn.optim is fx.optim
    assert fx.nn.optim.AdamW is fx.optim.AdamW


# ----------------------------------------------------------------------------- tracers


def test_updated_params_carry_no_graph():
    p = fx_params(requires_grad=True)
    g = fx.grad(fx_loss)({k: v.detach() for k, v in p.items()})
    for init, update, ikw in [
        (fx.optim.sgd_init, fx.optim.sgd_update, dict(momentum=0.9)),
        (fx.optim.adamw_init, fx.optim.adamw_update, {}),
    ]:
        new, state = update(p, g, init(p, **ikw), lr=0.1, **ikw)
        for k in NAMES:
            assert not new[k].requires_grad and new[k].grad_fn is None
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    fx.sum(w * w).backward(create_graph=True)  # a gradient that is itself in a graph
    fx.optim.Adam([w], lr=0.1).step()
    assert w.grad_fn is None and w.is_leaf and w.requires_grad


def test_functional_update_under_vmap_matches_a_loop():
    # an ensemble of three models: params, grads and the whole state are mapped
    rng = np.random.default_rng(1)
    P = {k: fx.tensor(np.stack([v + 0.1 * i for i in range(3)])) for k, v in INIT.items()}
    G = {k: fx.tensor(rng.standard_normal(v.shape).astype(np.float32)) for k, v in P.items()}

    def train(p, g, state):
        for _ in range(3):
            p, state = fx.optim.adamw_update(p, g, state, lr=0.1, amsgrad=True)
        return p, state

    state = fx.vmap(lambda p: fx.optim.adamw_init(p, amsgrad=True))(P)
    state = state._replace(step=fx.tensor([0, 5, 9], dtype=fx.int32))  # traced, per model
    out, out_state = fx.vmap(train)(P, G, state)
    for i in range(3):
        pick = lambda tree: {k: v[i] for k, v in tree.items()}
        s_i = fx.optim.AdamState(
            fx.tensor([0, 5, 9][i], dtype=fx.int32),
            [s[i] for s in state.exp_avg],
            [s[i] for s in state.exp_avg_sq],
            [s[i] for s in state.max_exp_avg_sq],
        )
        ref, ref_state = train(pick(P), pick(G), s_i)
        for k in NAMES:
            np.testing.assert_allclose(out[k][i].numpy(), ref[k].numpy(), rtol=1e-6, atol=1e-7)
        assert int(out_state.step[i]) == int(ref_state.step)


def test_functional_update_under_grad_meta_gradient():
    # d/d(lr) of the loss after two updates: fx.grad through the optimizer (float64)
    p0 = {k: fx.tensor(v.astype(np.float64)) for k, v in INIT.items()}
    g0 = {k: fx.tensor(np.ones(v.shape)) for k, v in INIT.items()}

    for init, update, ikw in [
        (fx.optim.sgd_init, fx.optim.sgd_update, dict(momentum=0.9, nesterov=True)),
        (fx.optim.adam_init, fx.optim.adam_update, dict(amsgrad=True)),
        (fx.optim.adamw_init, fx.optim.adamw_update, dict(weight_decay=0.1)),
    ]:
        init_kw = {k: v for k, v in ikw.items() if k in ("momentum", "amsgrad")}

        def after_two(lr):
            p, s = p0, init(p0, **init_kw)
            for _ in range(2):
                p, s = update(p, g0, s, lr=lr, **ikw)
            return fx.sum(p["w1"] * p["w1"]) + fx.sum(p["b1"])

        lr = 0.05
        dlr = fx.grad(after_two)(fx.tensor(lr, dtype=fx.float64))
        h = 1e-6
        fd = (float(after_two(lr + h)) - float(after_two(lr - h))) / (2 * h)
        assert abs(float(dlr) - fd) < 1e-6 * max(1.0, abs(fd)), (update.__name__, float(dlr), fd)


def test_functional_update_under_jit_matches_eager():
    sched = fx.optim.schedules.warmup_cosine(1e-2, warmup_steps=3, decay_steps=20)

    def train_step(p, s):
        loss, g = fx.value_and_grad(fx_loss)(p)
        g, _ = fx.optim.clip_by_global_norm(g, 0.5)
        p, s = fx.optim.adamw_update(p, g, s, lr=sched)
        return p, s, loss

    jitted = fx.jit(train_step)
    p_e = p_j = fx_params(requires_grad=False)
    s_e = s_j = fx.optim.adamw_init(p_e)
    for _ in range(10):
        p_e, s_e, l_e = train_step(p_e, s_e)
        p_j, s_j, l_j = jitted(p_j, s_j)
    for k in NAMES:
        np.testing.assert_allclose(p_j[k].numpy(), p_e[k].numpy(), rtol=1e-6, atol=1e-7)
    assert int(s_j.step) == 10


def test_maximize_is_descent_on_the_negated_gradient():
    p = fx_params(requires_grad=False)
    g = fx.grad(fx_loss)(p)
    neg = {k: -v for k, v in g.items()}
    a, _ = fx.optim.adam_update(p, g, fx.optim.adam_init(p), lr=0.1, maximize=True)
    b, _ = fx.optim.adam_update(p, neg, fx.optim.adam_init(p), lr=0.1)
    for k in NAMES:
        assert np.array_equal(a[k].numpy(), b[k].numpy())


def test_none_gradients_and_frozen_leaves_pass_through():
    p = {"w": fx.ones(2), "count": fx.tensor(3), "name": "tiny", "b": fx.zeros(2)}
    state = fx.optim.sgd_init(p, momentum=0.9)
    assert state.momentum_buffer[1] is None  # the int tensor is not trained
    grads = {"w": fx.ones(2), "count": None, "name": None, "b": None}
    new, state = fx.optim.sgd_update(p, grads, state, lr=0.5, momentum=0.9)
    assert new["count"] is p["count"] and new["name"] == "tiny" and new["b"] is p["b"]
    np.testing.assert_array_equal(new["w"].numpy(), [0.5, 0.5])


# ----------------------------------------------------------------------------- state dicts


@pytest.mark.parametrize(
    "cls, kw",
    [
        (fx.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
        (fx.optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
        (fx.optim.AdamW, dict(lr=fx.optim.schedules.cosine(0.01, 100, 1e-3))),
    ],
)
def test_state_dict_round_trip_continues_bit_exactly(cls, kw, tmp_path):
    straight, _ = run_stateful(cls, kw, steps=60)

    p = fx_params()
    opt = cls([p[k] for k in NAMES], **kw)
    for _ in range(30):
        opt.zero_grad()
        fx_loss(p).backward()
        opt.step()
    fx.save(opt.state_dict(), tmp_path / "opt.safetensors")
    fx.save({k: v for k, v in p.items()}, tmp_path / "params.safetensors")

    loaded = fx.load(tmp_path / "params.safetensors")
    p2 = {k: fx.tensor(loaded[k], requires_grad=True) for k in NAMES}
    opt2 = cls([p2[k] for k in NAMES], **kw)
    opt2.load_state_dict(fx.load(tmp_path / "opt.safetensors"))
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for _ in range(30):
        opt2.zero_grad()
        fx_loss(p2).backward()
        opt2.step()
    for k in NAMES:
        assert np.array_equal(p2[k].numpy(), straight[k]), k


def test_state_dict_layout_is_torch_like():
    p = fx_params()
    opt = fx.optim.AdamW([p[k] for k in NAMES], lr=0.01, amsgrad=True)
    fx_loss(p).backward()
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1, 2}
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][0]["step"] == 1
    group = sd["param_groups"][0]
    assert group["params"] == [0, 1, 2] and group["lr"] == 0.01 and group["betas"] == (0.9, 0.999)
    assert set(group) == {
        "params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"
    }  # fmt: skip
    # a state dict for another model is refused before anything changes
    other = fx.optim.AdamW([leaf(3)], lr=0.01)
    with pytest.raises(InvalidArgumentError):
        other.load_state_dict(sd)
    shapes = fx.optim.AdamW(
        [leaf((3, 4)), leaf(4),
         leaf((2, 2))]
    )  # fmt: skip
    with pytest.raises(ShapeError):
        shapes.load_state_dict(sd)
    assert shapes.state == {}


# ----------------------------------------------------------------------------- optimizer API


def test_lr_property_zero_grad_and_repr():
    p = fx_params()
    opt = fx.optim.Adam(list(p.values()), lr=0.01)
    assert opt.lr == 0.01
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5 and opt.lr == 0.5
    with pytest.raises(InvalidArgumentError):
        opt.lr = -1.0
    fx_loss(p).backward()
    opt.zero_grad(set_to_none=False)
    assert all(np.array_equal(v.grad.numpy(), np.zeros(v.shape)) for v in p.values())
    opt.zero_grad()
    assert all(v.grad is None for v in p.values())
    assert "Adam (" in repr(opt) and "lr: 0.5" in repr(opt)


def test_bad_inputs_raise_named_errors():
    w = leaf(3)
    with pytest.raises(InvalidArgumentError, match="params is empty"):
        fx.optim.SGD([], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="params is empty"):
        fx.optim.AdamW(iter([]))
    with pytest.raises(InvalidArgumentError, match="learning rate"):
        fx.optim.SGD([w], lr=-0.1)
    with pytest.raises(InvalidArgumentError, match="learning rate"):
        fx.optim.AdamW([w], lr=float("nan"))
    with pytest.raises(InvalidArgumentError, match="beta"):
        fx.optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(InvalidArgumentError, match="beta"):
        fx.optim.AdamW([w], betas=(-0.1, 0.999))
    with pytest.raises(InvalidArgumentError, match="weight_decay"):
        fx.optim.AdamW([w], weight_decay=-0.01)
    with pytest.raises(InvalidArgumentError, match="eps"):
        fx.optim.Adam([w], eps=-1e-8)
    with pytest.raises(InvalidArgumentError, match="momentum"):
        fx.optim.SGD([w], momentum=-0.5)
    with pytest.raises(InvalidArgumentError, match="nesterov"):
        fx.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(InvalidArgumentError, match="more than one"):
        fx.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="floating-point"):
        fx.optim.SGD([fx.tensor([1, 2])], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        fx.optim.SGD([{"params": [w], "betas": (0.9, 0.99)}], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="params must"):
        fx.optim.SGD(3.0, lr=0.1)
    # the functional core checks the same things, and the state it is given
    p = {"w": fx.ones(2)}
    g = {"w": fx.ones(2)}
    with pytest.raises(InvalidArgumentError, match="learning rate"):
        fx.optim.sgd_update(p, g, fx.optim.sgd_init(p), lr=-1.0)
    with pytest.raises(InvalidArgumentError, match="beta"):
        fx.optim.adam_update(p, g, fx.optim.adam_init(p), betas=(1.5, 0.9))
    with pytest.raises(InvalidArgumentError, match="sgd_init\\(params, momentum=0.9\\)"):
        fx.optim.sgd_update(p, g, fx.optim.sgd_init(p), lr=0.1, momentum=0.9)
    with pytest.raises(InvalidArgumentError, match="amsgrad=True"):
        fx.optim.adamw_update(p, g, fx.optim.adamw_init(p), amsgrad=True)
    with pytest.raises(InvalidArgumentError, match="grads have 2 leaves"):
        fx.optim.adam_update(p, {"w": fx.ones(2), "v": fx.ones(2)}, fx.optim.adam_init(p))
    with pytest.raises(ShapeError, match="gradient of leaf 0"):
        fx.optim.adam_update(p, {"w": fx.ones(3)}, fx.optim.adam_init(p))
    with pytest.raises(ShapeError, match="state.exp_avg"):
        fx.optim.adam_update(p, g, fx.optim.adam_init({"w": fx.ones(3)}))
    with pytest.raises(InvalidArgumentError, match="state.exp_avg has 2 entries"):
        fx.optim.adam_update(p, g, fx.optim.adam_init([fx.ones(2), fx.ones(2)]))
    # stateful optimizers refuse traced parameters and point to the functional API
    with pytest.raises(TracerError, match="functional"):
        fx.grad(lambda x: fx.sum(fx.optim.SGD([x], lr=0.1).step() or x))(fx.ones(2))


# ----------------------------------------------------------------------------- schedules

S = fx.optim.schedules


def torch_lrs(make_scheduler, base_lr, steps):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


@pytest.mark.torch
@pytest.mark.parametrize(
    "schedule, make_torch",
    [
        (
            S.step_decay(0.1, step_size=7, gamma=0.5),
            lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5),
        ),
        (S.exponential(0.1, 0.97), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.97)),
        (
            S.cosine(0.1, decay_steps=30, final_value=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.01),
        ),
        (
            S.linear(0.01, 0.1, transition_steps=10),  # a linear warm-up from lr/10
            lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10),
        ),
        (S.constant(0.1), lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    ],
)
def test_schedules_match_torch_lr_schedulers(schedule, make_torch):
    expected = torch_lrs(make_torch, 0.1, 31)
    got = np.array([schedule(t) for t in range(31)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # a tensor step (what a traced step counter is) gives the same values
    traced = np.array([float(schedule(fx.tensor(t, dtype=fx.int32))) for t in range(31)])
    np.testing.assert_allclose(traced, expected, rtol=1e-12, atol=1e-15)


def test_warmup_cosine_and_join():
    s = S.warmup_cosine(1.0, warmup_steps=10, decay_steps=110, init_value=0.1, final_value=0.2)
    assert s(0) == 0.1 and s(5) == pytest.approx(0.55) and s(10) == 1.0
    assert s(60) == pytest.approx(0.2 + 0.8 * 0.5) and s(110) == pytest.approx(0.2)
    assert s(500) == pytest.approx(0.2)
    for t in (0, 5, 9, 10, 11, 60, 110, 200):
        assert float(s(fx.tensor(t))) == pytest.approx(s(t), rel=1e-12)
    j = S.join([S.constant(1.0), S.linear(1.0, 0.0, 4), S.constant(0.5)], [2, 6])
    assert [j(t) for t in range(8)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.5, 0.5]
    assert [float(j(fx.tensor(t))) for t in range(8)] == [j(t) for t in range(8)]
    assert S.linear_warmup(2.0, 4)(2) == 1.0 and S.linear_warmup(2.0, 4)(9) == 2.0
    with pytest.raises(InvalidArgumentError):
        S.join([S.constant(1.0)], [3])
    with pytest.raises(InvalidArgumentError):
        S.warmup_cosine(1.0, warmup_steps=10, decay_steps=5)
    with pytest.raises(InvalidArgumentError):
        S.step_decay(1.0, step_size=0)


@pytest.mark.torch
def test_schedule_as_lr_and_scheduler_object_match_torch():
    kw = dict(momentum=0.9)
    make = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=20, gamma=0.3)
    t_params, t_losses = run_torch(torch.optim.SGD, dict(lr=0.05, **kw), schedule=make)
    # 1. a callable lr
    s_params, s_losses = run_stateful(fx.optim.SGD, dict(lr=S.step_decay(0.05, 20, 0.3), **kw))
    assert_close_to_torch(s_params, s_losses, t_params, t_losses)
    # 2. a scheduler object stepped after the optimizer
    p = fx_params()
    opt = fx.optim.SGD([p[k] for k in NAMES], lr=0.05, **kw)
    sched = fx.optim.LRScheduler(opt, S.step_decay(0.05, 20, 0.3))
    for _ in range(STEPS):
        opt.zero_grad()
        fx_loss(p).backward()
        opt.step()
        sched.step()
    assert_close_to_torch({k: v.numpy() for k, v in p.items()}, s_losses, t_params, t_losses)
    assert sched.get_last_lr() == [opt.lr] and sched.state_dict() == {"last_epoch": STEPS}
    # 3. the functional core with a schedule (called with the count of updates done)
    f_params, f_losses, _ = run_functional(
        fx.optim.sgd_init, fx.optim.sgd_update, dict(lr=S.step_decay(0.05, 20, 0.3), **kw), kw
    )
    for k in NAMES:
        assert np.array_equal(f_params[k], s_params[k])


# ----------------------------------------------------------------------------- clipping


def _grads_pair(scale):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(np.float32) * scale for s in [(3, 4), (4,), (2, 2)]]
    fx_p, t_p = [], []
    for a in arrays:
        f = fx.zeros(a.shape, dtype=fx.float32)
        f.grad = fx.tensor(a)
        t = torch.zeros(a.shape, requires_grad=True)
        t.grad = torch.tensor(a)
        fx_p.append(f), t_p.append(t)
    fx_p.append(leaf(2))  # no grad: ignored by both
    t_p.append(torch.zeros(2, requires_grad=True))
    return fx_p, t_p


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    fx_p, t_p = _grads_pair(scale=2.0)
    grad_objects = [p.grad for p in fx_p[:3]]
    total = fx.optim.clip_grad_norm_(fx_p, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_p, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(float(total), float(t_total), rtol=1e-6)
    for f, t in zip(fx_p[:3], t_p[:3]):
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert all(p.grad is g for p, g in zip(fx_p, grad_objects))  # in place, like g.mul_()
    assert fx_p[3].grad is None


@pytest.mark.torch
def test_clip_grad_value_and_functional_clip():
    fx_p, t_p = _grads_pair(scale=2.0)
    fx.optim.clip_grad_value_(fx_p, 0.7)
    torch.nn.utils.clip_grad_value_(t_p, 0.7)
    for f, t in zip(fx_p[:3], t_p[:3]):
        np.testing.assert_array_equal(f.grad.numpy(), t.grad.numpy())
    # functional: a pytree in, a pytree out; equals clip_grad_norm_
    fx_p, t_p = _grads_pair(scale=2.0)
    tree = {"a": fx_p[0].grad, "b": [fx_p[1].grad, fx_p[2].grad], "none": None}
    clipped, norm = fx.optim.clip_by_global_norm(tree, 1.0)
    total = fx.optim.clip_grad_norm_(fx_p, 1.0)
    assert float(norm) == float(total) and clipped["none"] is None
    assert np.array_equal(clipped["b"][1].numpy(), fx_p[2].grad.numpy())
    assert float(fx.optim.global_norm(clipped)) == pytest.approx(1.0, rel=1e-5)
    # under vmap: each example clipped by its own norm
    batch = fx.tensor(np.array([[3.0, 4.0], [0.3, 0.4]], np.float32))
    out, norms = fx.vmap(lambda g: fx.optim.clip_by_global_norm(g, 1.0))(batch)
    np.testing.assert_allclose(norms.numpy(), [5.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(out.numpy(), [[0.6, 0.8], [0.3, 0.4]], rtol=1e-5)


def test_clip_errors():
    w = leaf(2)
    w.grad = fx.tensor([float("inf"), 1.0])
    with pytest.raises(FloatingPointError, match="error_if_nonfinite"):
        fx.optim.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    with pytest.raises(InvalidArgumentError, match="norm_type"):
        fx.optim.clip_grad_norm_([w], 1.0, norm_type=0)
    assert float(fx.optim.clip_grad_norm_([fx.zeros(2)], 1.0)) == 0.0  # no grads at all


# ----------------------------------------------------------------------------- with fx.nn layers


def _nn_pair():
    fx.manual_seed(0)
    model = fx.nn.Sequential(fx.nn.Linear(3, 8), fx.nn.Tanh(), fx.nn.Linear(8, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    twin.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    )
    return model, twin


def nn_loss(model, x, y):
    return fx.mean((model(x) - y) ** 2)


@pytest.mark.torch
def test_seed_notebook_style_with_nn_layers_matches_torch():
    model, twin = _nn_pair()
    x, y = fx.tensor(X), fx.tensor(Y)
    optimizer = fx.nn.optim.AdamW(model, lr=1e-2)  # the seed's spelling
    t_opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
    losses, t_losses = [], []
    for _ in range(STEPS):
        model.train()
        model.zero_grad()
        loss = nn_loss(model, x, y)
        loss.backward()
        model = optimizer.step()
        losses.append(loss.item())
        t_opt.zero_grad()
        t_loss = ((twin(torch.from_numpy(X)) - torch.from_numpy(Y)) ** 2).mean()
        t_loss.backward()
        t_opt.step()
        t_losses.append(t_loss.item())
    np.testing.assert_allclose(losses, t_losses, rtol=1e-6, atol=1e-6)
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k].numpy(), v.numpy(), rtol=1e-6, atol=1e-6)


def test_functional_core_on_nn_model_eager_jit_and_stateful_agree():
    x, y = fx.tensor(X), fx.tensor(Y)

    def train_step(model, opt_state, x, y):
        loss, grads = fx.value_and_grad(nn_loss, argnums=0)(model, x, y)
        model, opt_state = fx.nn.optim.adamw_update(model, grads, opt_state, lr=1e-2)
        return model, opt_state, loss

    compiled_step = fx.jit(train_step)
    model_e, _ = _nn_pair()
    model_c, _ = _nn_pair()
    model_s, _ = _nn_pair()
    model_e.eval(), model_c.eval()
    state_e, state_c = fx.nn.optim.adamw_init(model_e), fx.nn.optim.adamw_init(model_c)
    optimizer = fx.optim.AdamW(model_s.parameters(), lr=1e-2)
    for _ in range(20):
        model_e, state_e, _ = train_step(model_e, state_e, x, y)
        model_c, state_c, _ = compiled_step(model_c, state_c, x, y)
        model_s.zero_grad()
        nn_loss(model_s, x, y).backward()
        optimizer.step()
    assert type(model_e) is fx.nn.Sequential
    for k, v in model_s.state_dict().items():
        assert np.array_equal(model_e.state_dict()[k].numpy(), v.numpy()), k
        np.testing.assert_allclose(model_c.state_dict()[k].numpy(), v.numpy(), rtol=1e-6, atol=1e-7)


def test_buffers_of_nn_layers_get_no_state():
    class WithBuffer(fx.nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = fx.nn.SinusoidalPositionalEncoding(4, max_len=5)
            self.proj = fx.nn.Linear(4, 4)

        def forward(self, x):
            return self.proj(self.pos(x))

    model = WithBuffer()
    state = fx.optim.adam_init(model)
    mask = fx.nn.module.trainable_mask(model)
    assert [m is not None for m in state.exp_avg] == mask and mask.count(False) == 1
    pe = model.pos.pe.numpy().copy()
    grads = fx.grad(lambda m: fx.sum(m(fx.ones((1, 5, 4))) ** 2))(model)
    model, state = fx.optim.adam_update(model, grads, state, lr=0.1)
    assert np.array_equal(model.pos.pe.numpy(), pe)
    opt = fx.optim.Adam(model, lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2  # weight, bias: no buffer


def _low_precision_runs(dtype, opt_cls, kw, grads, w0):
    """A low-precision parameter through fluxion's optimizer (stateful and functional) and
    a float32 one through torch's, on the same float32 gradients."""
    w = fx.tensor(w0).astype(dtype).requires_grad_()
    tw = torch.tensor(w0.astype(to_np(dtype)).astype(np.float32)).requires_grad_()
    opt = getattr(fx.optim, opt_cls)([w], **kw)
    topt = getattr(torch.optim, opt_cls)([tw], **kw)
    kind = "adam" if opt_cls == "AdamW" else "sgd"
    init, update, init_kw = functional_pair(kind, kw)
    params = {"w": fx.tensor(w0).astype(dtype)}
    state = init(params, **init_kw)
    for g in grads:
        w.grad = fx.tensor(g)
        tw.grad = torch.tensor(g)
        opt.step(), topt.step()
        params, state = (update if kind == "sgd" else fx.optim.adamw_update)(
            params, {"w": fx.tensor(g)}, state, **kw
        )
    return w, opt.state[0], tw, params["w"], state


@pytest.mark.torch
@pytest.mark.parametrize(
    "opt_cls, kw", [("AdamW", dict(lr=0.01, amsgrad=True)), ("SGD", dict(lr=0.05, momentum=0.9))]
)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_parameters_train_through_a_float32_master(dtype, opt_cls, kw):
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(5)]
    w, state, tw, fw, fstate = _low_precision_runs(dtype, opt_cls, kw, grads, w0)
    assert w.dtype == fw.dtype == dtype
    assert all(v.dtype == fx.float32 for k, v in state.items() if k != "step")
    # the master follows torch's float32 trajectory; the parameter is the master rounded
    master = state["master"].numpy()
    np.testing.assert_allclose(master, tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w.numpy(), master.astype(to_np(dtype)))
    # one rule, two styles: bitwise
    np.testing.assert_array_equal(fstate.master[0].numpy(), master)
    np.testing.assert_array_equal(fw.numpy(), w.numpy())


@pytest.mark.torch
def test_updates_below_a_bfloat16_step_accumulate_in_the_master():
    w0 = np.ones((2, 2), np.float32)
    grads = [np.full((2, 2), 1.0, np.float32)] * 20
    w, state, tw, _, _ = _low_precision_runs("bfloat16", "SGD", dict(lr=1e-3), grads, w0)
    # each step (1e-3) is below half a bfloat16 step at 1 (2**-8): torch's bfloat16
    # parameter would stay 1.0; the master moves by 0.02, and the parameter with it
    np.testing.assert_allclose(state["master"].numpy(), tw.detach().numpy(), rtol=1e-6)
    t_bf16 = torch.ones(2, 2, dtype=torch.bfloat16, requires_grad=True)
    t_opt = torch.optim.SGD([t_bf16], lr=1e-3)
    for g in grads:
        t_bf16.grad = torch.tensor(g).bfloat16()
        t_opt.step()
    assert (t_bf16.float() == 1.0).all()
    np.testing.assert_array_equal(w.numpy(), tw.detach().numpy().astype(ml_dtypes.bfloat16))
    assert (w.astype(fx.float32).numpy() < 1.0).all()


def test_sgd_momentum_buffer_does_not_alias_the_gradient():
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    opt = fx.optim.SGD([w], lr=0.1, momentum=0.9)
    fx.sum(w * w).backward()
    opt.step()
    fx.optim.clip_grad_norm_([w], 1e-3)  # scales the (stale) gradient in place
    np.testing.assert_allclose(opt.state[0]["momentum_buffer"].numpy(), [2.0, 4.0])


@pytest.mark.parametrize(
    "opt_cls, kw, init, update",
    [
        ("AdamW", dict(lr=0.01, amsgrad=True), fx.optim.adamw_init, fx.optim.adamw_update),
        ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), fx.optim.sgd_init, fx.optim.sgd_update),
    ],
)
def test_one_update_over_mixed_parameters_matches_the_per_leaf_rule(opt_cls, kw, init, update):
    # the eager step lays alike parameters end to end (float32 ones of several shapes, one
    # float64, bfloat16 ones through their masters); the functional core updates leaf by leaf
    rng = np.random.default_rng(7)
    shapes = {"a": (3, 4), "b": (), "c": (0, 2), "d": (5,), "e": (2, 3), "f": (4,), "g": (2, 2)}
    dtypes = {"e": np.float64, "f": ml_dtypes.bfloat16, "g": ml_dtypes.bfloat16}
    values = {
        k: rng.standard_normal(s).astype(dtypes.get(k, np.float32)) for k, s in shapes.items()
    }
    params = {k: fx.tensor(v, requires_grad=True) for k, v in values.items()}
    opt = getattr(fx.optim, opt_cls)(list(params.values()), **kw)
    f_params = {k: fx.tensor(v) for k, v in values.items()}
    extra = {"amsgrad": True} if opt_cls == "AdamW" else {"momentum": kw["momentum"]}
    state = init(f_params, **extra)
    for _ in range(4):
        grads = {
            k: fx.tensor(rng.standard_normal(s).astype(values[k].dtype)) for k, s in shapes.items()
        }
        for k, p in params.items():
            p.grad = grads[k]
        opt.step()
        f_params, state = update(f_params, grads, state, **kw)
    for k, p in params.items():
        assert p.dtype == f_params[k].dtype and p.shape == shapes[k], k
        np.testing.assert_array_equal(p.numpy(), f_params[k].numpy(), err_msg=k)
