"""BatchNorm and GroupNorm against PyTorch, and module state through every transform.

A module writes its running statistics during forward. Whatever runs the training step,
eager, ``fx.value_and_grad`` with the model as an argument, ``fx.jit`` of either style,
the outputs, gradients and running statistics after several steps must be PyTorch's; and
no traced value may stay on a module once a transform returns, also when it raises.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nn_testing import close, twin

import fluxion as fx
from fluxion.core.tensor import Tracer
from fluxion.errors import BatchingError, ShapeError

STEPS = 3
LR = 0.1

# (fluxion class, torch class, input shape, kwargs)
LAYERS = {
    "bn1d": (fx.nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 3), {}),
    "bn1d_seq": (fx.nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5), {"momentum": 0.3}),
    "bn1d_cumulative": (fx.nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3), {"momentum": None}),
    "bn1d_no_affine": (fx.nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3), {"affine": False}),
    "bn1d_untracked": (
        fx.nn.BatchNorm1d,
        torch.nn.BatchNorm1d,
        (6, 3),
        {"track_running_stats": False},
    ),
    "bn2d": (fx.nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 2, 5), {"eps": 1e-3}),
}


class FxNet(fx.nn.Module):
    """A linear map of the channels (so that gradients reach the statistics), the norm."""

    def __init__(self, norm, channels):
        super().__init__()
        self.mix = fx.nn.Linear(channels, channels)
        self.norm = norm

    def forward(self, x):
        x = fx.moveaxis(self.mix(fx.moveaxis(x, 1, -1)), -1, 1)
        return self.norm(x)


class TorchNet(torch.nn.Module):
    def __init__(self, norm, channels):
        super().__init__()
        self.mix = torch.nn.Linear(channels, channels)
        self.norm = norm

    def forward(self, x):
        return self.norm(self.mix(x.movedim(1, -1)).movedim(-1, 1))


def nets(name, dtype=np.float64):
    fcls, tcls, shape, kw = LAYERS[name]
    torch.manual_seed(0)
    t = TorchNet(tcls(shape[1], **kw), shape[1])
    f = FxNet(fcls(shape[1], **kw), shape[1])
    twin(f, t, dtype)
    return f, t, shape


def batches(shape, dtype=np.float64):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal(shape) * 2 + 0.5).astype(dtype) for _ in range(STEPS)]


def weights(shape):
    return np.random.default_rng(2).standard_normal(shape)


def torch_run(t, xs, w):
    """Outputs, input gradients and state after each SGD step."""
    opt = torch.optim.SGD(t.parameters(), lr=LR)
    record = []
    for x in xs:
        xt = torch.tensor(x, requires_grad=True)
        out = t(xt)
        loss = (out * torch.tensor(w)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        record.append((out.detach().numpy(), xt.grad.numpy(), _torch_state(t)))
    return record


def _torch_state(t):
    return {k: v.detach().numpy().copy() for k, v in t.state_dict().items()}


def _fx_state(f):
    return {k: v.numpy().copy() for k, v in f.state_dict().items()}


def eager_step(f, w):
    opt = fx.optim.SGD(f, lr=LR)

    def step(x):
        out = f(x)
        loss = fx.sum(out * fx.tensor(w))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return out

    return step


def functional_step(w):
    """The JAX face: the model is an argument, the gradient taken of a pure-looking loss."""

    def loss_and_output(model, x):
        out = model(x)
        return fx.sum(out * fx.tensor(w)), out

    def step(model, x):
        (_, out), (g_model, g_x) = fx.value_and_grad(loss_and_output, argnums=(0, 1), has_aux=True)(
            model, x
        )
        model = fx.optim.sgd_update(model, g_model, fx.optim.sgd_init(model), lr=LR)[0]
        return model, out, g_x

    return step


def fx_run(name, f, xs, w, mode):
    record = []
    if mode in ("eager", "compiled_closure"):
        step = eager_step(f, w)
        step = fx.jit(step) if mode == "compiled_closure" else step
        for x in xs:
            xt = fx.tensor(x, requires_grad=True)
            out = step(xt)
            record.append((out.detach().numpy(), None, _fx_state(f)))
        return f, record
    step = functional_step(w)
    step = fx.jit(step) if mode == "compiled_argument" else step
    for x in xs:
        f, out, g_x = step(f, fx.tensor(x))
        record.append((out.numpy(), g_x.numpy(), _fx_state(f)))
    return f, record


MODES = ["eager", "functional", "compiled_closure", "compiled_argument"]


@pytest.mark.torch
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_training_steps_match_torch(name, mode):
    f, t, shape = nets(name)
    xs, w = batches(shape), weights(shape)
    want = torch_run(t, xs, w)
    f, got = fx_run(name, f, xs, w, mode)
    assert list(got[0][2]) == list(want[0][2])  # the state dict's keys, in torch's order
    for k, ((out, g_x, state), (t_out, t_gx, t_state)) in enumerate(zip(got, want)):
        close(out, t_out, np.float64, f"step {k}: output")
        if g_x is not None:
            close(g_x, t_gx, np.float64, f"step {k}: input gradient")
        for key in t_state:
            close(state[key], t_state[key], np.float64, f"step {k}: {key}")
    t.eval(), f.eval()
    x = batches(shape)[0]
    close(f(fx.tensor(x)), t(torch.tensor(x)), np.float64, "eval output")


@pytest.mark.torch
def test_float32_batchnorm_and_torch_state_dict():
    f, t, shape = nets("bn2d", np.float32)
    x = batches(shape, np.float32)[0]
    close(f(fx.tensor(x)), t(torch.tensor(x)), np.float32, "train output")
    close(f.norm.running_var, t.norm.running_var, np.float32, "running_var")
    assert f.norm.num_batches_tracked.dtype == fx.int64 and int(f.norm.num_batches_tracked) == 1


@pytest.mark.torch
@pytest.mark.parametrize("shape, groups", [((4, 6), 3), ((2, 4, 5), 2), ((3, 6, 2, 3), 6)])
def test_group_norm_matches_torch(shape, groups):
    torch.manual_seed(0)
    t = torch.nn.GroupNorm(groups, shape[1])
    with torch.no_grad():
        t.weight.normal_(), t.bias.normal_()
    f, t = twin(fx.nn.GroupNorm(groups, shape[1]), t, np.float64)
    x = np.random.default_rng(0).standard_normal(shape)
    w = weights(shape)
    xt = torch.tensor(x, requires_grad=True)
    (t(xt) * torch.tensor(w)).sum().backward()
    g_x, g_f = fx.grad(lambda x, m: fx.sum(m(x) * fx.tensor(w)), argnums=(0, 1))(fx.tensor(x), f)
    close(f(fx.tensor(x)), t(torch.tensor(x)), np.float64, "output")
    close(g_x, xt.grad, np.float64, "input gradient")
    close(g_f.weight, t.weight.grad, np.float64, "weight gradient")
    close(g_f.bias, t.bias.grad, np.float64, "bias gradient")


def test_bad_inputs_are_named():
    with pytest.raises(ShapeError, match=r"BatchNorm1d: expected an input of shape \(N, 3"):
        fx.nn.BatchNorm1d(3)(fx.ones((4, 5)))
    with pytest.raises(ShapeError, match="BatchNorm2d: expected a 4-d input"):
        fx.nn.BatchNorm2d(3)(fx.ones((4, 3)))
    with pytest.raises(
        fx.errors.InvalidArgumentError, match="num_groups=4 must divide num_channels=6"
    ):
        fx.nn.GroupNorm(4, 6)


# ----------------------------------------------------------------------------- no leaked tracer


def _tracers_on(module) -> list:
    found = []
    for m in [module, *module.modules()]:
        for name, value in vars(m).items():
            if isinstance(value, Tracer) or isinstance(getattr(value, "_grad", None), Tracer):
                found.append(f"{type(m).__name__}.{name}")
    return found


def _model():
    fx.manual_seed(0)
    return fx.nn.Sequential(fx.nn.Linear(3, 3), fx.nn.BatchNorm1d(3), fx.nn.Dropout(0.1))


def _loss(model, x):
    return fx.sum(model(x) ** 2)


X = fx.tensor(np.random.default_rng(3).standard_normal((5, 3)))

# every way a transform meets a module that writes state: the module as an argument (a
# copy is what the function gets) or closed over, transforms nested
WAYS = {
    "grad_argument": lambda m: fx.grad(_loss)(m, X),
    "grad_closure": lambda m: fx.grad(lambda x: _loss(m, x))(X),
    "value_and_grad": lambda m: fx.value_and_grad(_loss)(m, X),
    "vjp": lambda m: fx.vjp(_loss, m, X)[1](fx.tensor(1.0)),
    "jvp": lambda m: fx.jvp(lambda x: _loss(m, x), (X,), (fx.ones_like(X),)),
    "jacrev": lambda m: fx.jacrev(lambda x: m(x))(X),
    "hessian": lambda m: fx.hessian(lambda x: _loss(m, x))(X),
    "jit_argument": lambda m: fx.jit(_loss)(m, X),
    "jit_closure": lambda m: fx.jit(lambda x: _loss(m, x))(X),
    "jit_grad": lambda m: fx.jit(fx.grad(_loss))(m, X),
    "grad_jit": lambda m: fx.grad(fx.jit(_loss))(m, X),
    "checkpoint": lambda m: fx.grad(lambda x: fx.checkpoint(lambda x: _loss(m, x))(x))(X),
    "compiled_model_backward": lambda m: fx.sum(fx.jit(m)(X)).backward(),
}


@pytest.mark.parametrize("way", list(WAYS))
def test_state_written_under_a_transform_is_eagers(way):
    """One step of ``way`` leaves the model's running statistics as one eager forward pass
    does (dropout's draws included), and no traced value behind."""
    eager = _model()
    fx.manual_seed(7)
    eager(X)
    model = _model()
    fx.manual_seed(7)
    WAYS[way](model)
    assert _tracers_on(model) == []
    for key, value in eager.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key].numpy(), value.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(
        fx.randn(2).numpy(), (fx.manual_seed(7), eager(X), fx.randn(2))[2].numpy()
    )


@pytest.mark.parametrize("way", [w for w in WAYS if w != "compiled_model_backward"])
def test_a_transform_that_raises_leaves_the_state_as_it_was(way):
    model = _model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    failing = fx.nn.Sequential(model, fx.nn.Linear(4, 1))  # 3 features into 4: ShapeError
    with pytest.raises(ShapeError):
        WAYS[way](failing)
    assert _tracers_on(model) == []
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_vmap_refuses_a_batched_state_update_and_leaves_the_state():
    model = _model()
    before = model[1].running_mean.numpy().copy()
    with pytest.raises(BatchingError, match="BatchNorm1d.running_mean was written inside vmap"):
        fx.vmap(lambda x: _loss(model, x[None]))(X)
    assert _tracers_on(model) == []
    np.testing.assert_array_equal(model[1].running_mean.numpy(), before)
    model.eval()  # eval mode writes nothing: vmap is fine
    per_row = fx.vmap(lambda x: _loss(model, x[None]))(X)
    np.testing.assert_allclose(
        per_row.numpy(), [float(_loss(model, X[i : i + 1])) for i in range(5)]
    )


def test_compiled_step_writes_into_the_module_of_each_call():
    """The compiled function writes a module argument's statistics into the module given
    at each call, not the one it was traced with."""
    step = fx.jit(_loss)
    first, second = _model(), _model()
    for m in (first, second):
        m.eval()[1].train()  # no dropout: the two runs see the same computation
    step(first, X)
    step(second, X)
    step(second, X)
    assert step.stats.misses == 1 and step.stats.hits == 2
    assert int(first[1].num_batches_tracked) == 1 and int(second[1].num_batches_tracked) == 2
    reference = _model().eval()
    reference[1].train()
    reference(X), reference(X)
    np.testing.assert_allclose(second[1].running_var.numpy(), reference[1].running_var.numpy())


def test_a_value_leaked_from_a_transform_cannot_be_used_later():
    leaked = []
    fx.grad(lambda x: (leaked.append(x * 2), fx.sum(x))[1])(X)
    with pytest.raises(fx.errors.TracerError, match="leaked out of the function"):
        leaked[0] + 1.0
