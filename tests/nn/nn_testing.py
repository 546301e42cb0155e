"""Helpers for comparing fluxion layers with their PyTorch twins.

The twin's weights are copied into the fluxion layer by name through
``load_state_dict(torch_module.state_dict())``, so every comparison also checks that
parameter names and shapes match PyTorch's.
"""

from __future__ import annotations

import numpy as np
import torch

import fluxion as fx

TOL = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
FX_DTYPE = {np.float64: fx.float64, np.float32: fx.float32}


def close(actual, expected, dtype, what="", scale=1.0):
    actual = actual.numpy() if isinstance(actual, fx.Tensor) else np.asarray(actual)
    expected = (
        expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    )
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    tol = TOL[dtype] * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def twin(fx_module, torch_module, dtype):
    """Put both in ``dtype``, copy the torch weights into the fluxion module by name."""
    torch_module.to(TORCH_DTYPE[dtype])
    fx_module.to(FX_DTYPE[dtype])
    fx_module.load_state_dict(torch_module.state_dict())
    return fx_module, torch_module


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def compare(
    fx_module,
    torch_module,
    inputs,
    dtype,
    call_fx=None,
    call_torch=None,
    grad_inputs=None,
    scale=1.0,
    seed=0,
):
    """Forward, backward() and fx.grad of ``fx_module`` against ``torch_module``.

    ``inputs``: NumPy arrays (float ones get gradients unless ``grad_inputs`` lists the
    positions that do) or other values passed as they are (masks, ...: give them as
    (fx value, torch value) pairs). ``call_*(module, *inputs)`` default to module(*inputs);
    when the call returns a tuple, its first entry is compared and differentiated.
    """
    call_fx = call_fx or (lambda m, *xs: m(*xs))
    call_torch = call_torch or (lambda m, *xs: m(*xs))
    rng = np.random.default_rng(seed)
    floats = [
        i
        for i, x in enumerate(inputs)
        if isinstance(x, np.ndarray)
        and x.dtype.kind == "f"
        and (grad_inputs is None or i in grad_inputs)
    ]

    def fx_value(i, x, requires_grad):
        if isinstance(x, tuple):
            return x[0]
        if isinstance(x, np.ndarray):
            return fx.tensor(x, requires_grad=requires_grad and i in floats)
        return x

    def torch_value(i, x):
        if isinstance(x, tuple):
            return x[1]
        if isinstance(x, np.ndarray):
            t = torch.from_numpy(x.copy())
            return t.requires_grad_(i in floats)
        return x

    first = lambda out: out[0] if isinstance(out, tuple) else out
    t_in = [torch_value(i, x) for i, x in enumerate(inputs)]
    torch_module.zero_grad()
    t_out = first(call_torch(torch_module, *t_in))
    ct = rand(rng, tuple(t_out.shape), dtype)
    (t_out * torch.from_numpy(ct)).sum().backward()
    t_grads = {n: p.grad for n, p in torch_module.named_parameters() if p.grad is not None}

    # PyTorch style: backward() fills .grad
    fx_module.zero_grad()
    f_in = [fx_value(i, x, True) for i, x in enumerate(inputs)]
    f_out = first(call_fx(fx_module, *f_in))
    close(f_out, t_out, dtype, "forward", scale)
    (f_out * fx.tensor(ct)).sum().backward()
    f_params = dict(fx_module.named_parameters())
    assert set(f_params) == {n for n, _ in torch_module.named_parameters()}
    for name, g in t_grads.items():
        close(f_params[name].grad, g, dtype, f"backward() grad of {name}", scale)
    for i in floats:
        close(f_in[i].grad, t_in[i].grad, dtype, f"backward() grad of input {i}", scale)

    # JAX style: fx.grad w.r.t. the module (a pytree) and the float inputs
    plain = [fx_value(i, x, False) for i, x in enumerate(inputs)]

    def loss(module, *diff):
        args = list(plain)
        for i, d in zip(floats, diff):
            args[i] = d
        return (first(call_fx(module, *args)) * fx.tensor(ct)).sum()

    grads = fx.grad(loss, argnums=tuple(range(1 + len(floats))))(
        fx_module, *[plain[i] for i in floats]
    )
    g_module = grads[0]
    assert type(g_module) is type(fx_module)
    g_params = dict(g_module.named_parameters())
    for name, g in t_grads.items():
        close(g_params[name], g, dtype, f"fx.grad of {name}", scale)
    for k, i in enumerate(floats):
        close(grads[1 + k], t_in[i].grad, dtype, f"fx.grad of input {i}", scale)
    return f_out, t_out
