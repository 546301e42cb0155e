"""The PyTorch face against torch itself: ``dim=`` calls and Tensor methods give torch's
values, dtypes, shapes and named (values, indices) results; ``axis=`` keeps NumPy's
meaning; the torch-style names (device, cuda, Size, dtype aliases, Generator...) behave as
torch's. The ops also have op-table entries (forward, jvp, vjp, vmap, jit); this file
checks what those cannot: agreement with torch's own conventions."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.errors import FluxionError, ShapeError

RNG = np.random.default_rng(0)
X = RNG.permutation(24).reshape(2, 3, 4).astype(np.float32) / 4  # no ties
INTS = RNG.integers(0, 4, size=(3, 7))


def same(got, want, what=""):
    """Structure (named tuples by field), dtype, shape and values."""
    if isinstance(want, tuple):
        assert type(got).__name__ == type(want).__name__.split(".")[-1], what
        assert got._fields == ("values", "indices"), what
        for g, w in zip(got, want):
            same(g, w, what)
        return
    if isinstance(want, torch.Tensor):
        assert isinstance(got, fx.Tensor), f"{what}: got {type(got).__name__}"
        assert str(got.dtype) == str(want.dtype).removeprefix("torch."), f"{what}: {got.dtype}"
        assert got.shape == tuple(want.shape), f"{what}: {got.shape} vs {tuple(want.shape)}"
        np.testing.assert_allclose(
            got.numpy(), want.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=what
        )
        return
    assert got == want, f"{what}: {got!r} vs {want!r}"


# (name, call) where call(lib, x) runs on fx or torch identically
CALLS = {
    "max_dim": lambda m, x: m.max(x, dim=1),
    "max_dim_keepdim": lambda m, x: m.max(x, dim=-1, keepdim=True),
    "min_dim": lambda m, x: m.min(x, dim=0),
    "max_all": lambda m, x: m.max(x),
    "max_pair": lambda m, x: m.max(x, x.flip(0)) if m is torch else m.max(x, m.flip(x, 0)),
    "sort_dim": lambda m, x: m.sort(x, dim=-1),
    "sort_desc": lambda m, x: m.sort(x, dim=1, descending=True),
    "topk": lambda m, x: m.topk(x, 2, dim=1),
    "topk_smallest": lambda m, x: m.topk(x, 3, largest=False),
    "median_dim": lambda m, x: m.median(x, dim=2),
    "argmax_dim": lambda m, x: m.argmax(x, dim=1),
    "argmin_keepdim": lambda m, x: m.argmin(x, dim=2, keepdim=True),
    "sum_keepdim": lambda m, x: m.sum(x, dim=(0, 2), keepdim=True),
    "mean_dim": lambda m, x: m.mean(x, dim=-1),
    "var_dim": lambda m, x: m.var(x, dim=1),  # unbiased, as torch
    "std_dim_biased": lambda m, x: m.std(x, dim=1, unbiased=False),
    "var_correction": lambda m, x: m.var(x, dim=0, correction=0),
    "prod_dim": lambda m, x: m.prod(x, dim=1),
    "logsumexp": lambda m, x: m.logsumexp(x, dim=1),
    "softmax": lambda m, x: m.softmax(x, dim=0),
    "log_softmax": lambda m, x: m.log_softmax(x, dim=-1),
    "cumsum": lambda m, x: m.cumsum(x, dim=1),
    "amax": lambda m, x: m.amax(x, dim=(0, 1)),
    "all": lambda m, x: m.all(x > 0.5, dim=1),
    "any_keepdim": lambda m, x: m.any(x > 5, dim=0, keepdim=True),
    "cat": lambda m, x: m.cat([x, x], dim=1),
    "stack": lambda m, x: m.stack([x, x], dim=-1),
    "squeeze_dim": lambda m, x: m.squeeze(x[:, :1], dim=1),
    "squeeze_dim_kept": lambda m, x: m.squeeze(x, dim=1),  # size 3: unchanged
    "unsqueeze": lambda m, x: m.unsqueeze(x, dim=1),
    "flip": lambda m, x: m.flip(x, dims=(0, 2)),
    "transpose": lambda m, x: m.transpose(x, 0, 2),
    "norm": lambda m, x: m.norm(x),
    "norm_dim": lambda m, x: m.norm(x, p=1, dim=1, keepdim=True),
    "norm_inf": lambda m, x: m.norm(x, p=math.inf, dim=2),
    "triu": lambda m, x: m.triu(x, diagonal=1),
    "tril": lambda m, x: m.tril(x, diagonal=-1),
    "repeat_interleave": lambda m, x: m.repeat_interleave(x, 2, dim=1),
    "masked_fill": lambda m, x: m.masked_fill(x, x > 3, -1.0),
    "masked_fill_wider": lambda m, x: m.masked_fill(x[0, 0], x[0] > 1, 0.5),
    "gather": lambda m, x: m.gather(x, 2, m.tensor([[[0, 3], [1, 1], [2, 0]]] * 2)),
    "scatter": lambda m, x: m.scatter(x, 1, m.tensor([[[2, 0, 1, 0]]] * 2), x[:, :1] * 10),
    "scatter_add": lambda m, x: m.scatter_add(x, 0, m.tensor([[[1, 0, 1, 0]]]), x[:1]),
    "clone": lambda m, x: m.clone(x),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_function_matches_torch(name):
    same(CALLS[name](fx, fx.tensor(X)), CALLS[name](torch, torch.tensor(X)), name)


METHODS = {
    "max": lambda x: x.max(dim=1),
    "sort_unpacks": lambda x: tuple(x.sort(dim=-1)),
    "topk": lambda x: x.topk(2),
    "sum": lambda x: x.sum(dim=1, keepdim=True),
    "mean": lambda x: x.mean(dim=(1, 2)),
    "size": lambda x: x.size(),
    "size_dim": lambda x: x.size(-1),
    "dim": lambda x: x.dim(),
    "numel": lambda x: x.numel(),
    "element_size": lambda x: x.element_size(),
    "transpose_two": lambda x: x.transpose(1, 2),
    "permute": lambda x: x.permute(2, 0, 1),
    "view": lambda x: x.view(6, 4),
    "view_infer": lambda x: x.contiguous().view(-1, 2),
    "repeat": lambda x: x.repeat(2, 1, 3),
    "repeat_more_dims": lambda x: x[0].repeat(2, 1, 1),
    "expand": lambda x: x[:, :1].expand(-1, 5, -1),
    "masked_fill": lambda x: x.masked_fill(x < 2, 0.0),
    "gather": lambda x: x.gather(1, x.argsort(dim=1)),
    "norm": lambda x: x.norm(dim=-1),
    "long": lambda x: x.long(),
    "int": lambda x: x.int(),
    "double": lambda x: x.double(),
    "half": lambda x: x.half(),
    "bool": lambda x: x.bool(),
    "type_as": lambda x: x.type_as(x.long()),
    "to_dtype": lambda x: x.to(torch.int64 if isinstance(x, torch.Tensor) else fx.int64),
    "to_device": lambda x: x.to("cpu"),
    "to_tensor": lambda x: x.long().to(x),
    "new_zeros": lambda x: x.new_zeros(2, 3),
    "new_ones": lambda x: x.new_ones((1, 2)),
    "new_full": lambda x: x.new_full((2,), 7.0),
    "clone": lambda x: x.clone(),
    "cpu": lambda x: x.cpu(),
    "item": lambda x: x[0, 1, 2].item(),
    "unsqueeze": lambda x: x.unsqueeze(-1),
    "squeeze": lambda x: x[:1].squeeze(0),
    "split": lambda x: tuple(x.split(2, dim=2)),
    "split_sizes": lambda x: tuple(x.split([1, 2], dim=1)),
    "chunk": lambda x: tuple(x.chunk(2, dim=-1)),
    "argmax": lambda x: x.argmax(dim=-1),
    "median": lambda x: x.median(dim=1),
    "amin": lambda x: x.amin(dim=0),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_method_matches_torch(name):
    got, want = METHODS[name](fx.tensor(X)), METHODS[name](torch.tensor(X))
    if isinstance(want, tuple) and not hasattr(want, "values"):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w, name)
    else:
        same(got, want, name)


def test_mode_matches_torch_values_indices_and_gradient():
    x = INTS.astype(np.float64)
    tx = torch.tensor(x, requires_grad=True)
    fxx = fx.tensor(x, requires_grad=True)
    t_out, f_out = torch.mode(tx, dim=1), fx.mode(fxx, dim=1)
    same(f_out, t_out, "mode")
    t_out.values.sum().backward()
    fx.sum(f_out.values).backward()
    np.testing.assert_array_equal(fxx.grad.numpy(), tx.grad.numpy())


def test_max_dim_gradient_goes_to_the_index_as_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    tx, fxx = torch.tensor(x, requires_grad=True), fx.tensor(x, requires_grad=True)
    torch.max(tx, dim=1).values.sum().backward()
    fx.sum(fx.max(fxx, dim=1).values).backward()
    np.testing.assert_array_equal(fxx.grad.numpy(), tx.grad.numpy())


def test_axis_keeps_numpy_meaning():
    x = fx.tensor(X)
    np.testing.assert_array_equal(fx.max(x, axis=1).numpy(), X.max(axis=1))
    np.testing.assert_array_equal(x.sort(axis=1).numpy(), np.sort(X, axis=1))
    np.testing.assert_allclose(fx.var(x, axis=1).numpy(), X.var(axis=1), rtol=1e-6)
    np.testing.assert_allclose(fx.median(x, axis=2).numpy(), np.median(X, axis=2))
    # without dim=, NumPy's median (the mean of the middle two); torch.median(x): the lower
    assert fx.median(fx.tensor([1.0, 2.0, 3.0, 4.0])).item() == 2.5
    assert x.transpose((2, 0, 1)).shape == np.transpose(X, (2, 0, 1)).shape  # a permutation
    assert [p.shape for p in fx.split(x, 2, axis=2)] == [(2, 3, 2)] * 2  # 2 sections (NumPy)
    assert x.size == X.size and x.size() == (2, 3, 4)  # the count, and callable


def test_in_place_methods_match_torch():
    for lib in (fx, torch):
        t = lib.zeros((3, 4))
        t.index_put_((lib.tensor([0, 2]), lib.tensor([1, 3])), lib.tensor([5.0, 6.0]))
        t.index_put_(
            (lib.tensor([0, 0]), lib.tensor([1, 1])), lib.tensor([1.0, 1.0]), accumulate=True
        )
        t.masked_fill_(t == 0, -1.0)
        u = lib.ones(2)
        u.fill_(3.0)
        v = lib.ones(2)
        v.zero_()
        if lib is fx:
            f = (t.numpy(), u.numpy(), v.numpy())
        else:
            w = (t.numpy(), u.numpy(), v.numpy())
    for a, b in zip(f, w):
        np.testing.assert_array_equal(a, b)


def test_index_put_out_of_place_matches_torch():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    idx, vals = ([0, 2], [3, 1]), [9.0, 8.0]
    got = fx.tensor(x).index_put(tuple(map(fx.tensor, idx)), fx.tensor(vals))
    want = torch.tensor(x).index_put(tuple(map(torch.tensor, idx)), torch.tensor(vals))
    same(got, want)


def test_nonzero_and_bincount_match_torch():
    x = np.array([[0, 1, 0], [2, 0, 3]])
    # the method is PyTorch's (rows); the function NumPy's and the array API's (a tuple)
    same(fx.tensor(x).nonzero(), torch.tensor(x).nonzero())
    same(fx.nonzero(fx.tensor(x), as_tuple=False), torch.nonzero(torch.tensor(x)))
    same(fx.argwhere(fx.tensor(x)), torch.nonzero(torch.tensor(x)))
    for g, w, n in zip(
        fx.nonzero(fx.tensor(x)), torch.nonzero(torch.tensor(x), as_tuple=True), np.nonzero(x)
    ):
        same(g, w)
        np.testing.assert_array_equal(g.numpy(), n)
    same(fx.zeros(3).nonzero(), torch.zeros(3).nonzero())
    same(fx.tensor(5.0).nonzero(), torch.tensor(5.0).nonzero())  # 0-d: (1, 0)
    with pytest.raises(ShapeError, match="0-d"):
        fx.nonzero(fx.tensor(5.0))  # the array API: no axes to index
    v = np.array([1, 4, 1, 0, 4, 4])
    same(fx.bincount(fx.tensor(v)), torch.bincount(torch.tensor(v)))
    same(fx.bincount(fx.tensor(v), minlength=7), torch.bincount(torch.tensor(v), minlength=7))
    w = np.linspace(0, 1, 6)
    same(fx.bincount(fx.tensor(v), fx.tensor(w)), torch.bincount(torch.tensor(v), torch.tensor(w)))
    with pytest.raises(FluxionError, match="bincount.*non-negative"):
        fx.bincount(fx.tensor([1, -1]))


def test_names_match_torch():
    assert fx.device("cpu").type == torch.device("cpu").type == "cpu"
    assert fx.cuda.is_available() is False and fx.cuda.device_count() == 0
    device = fx.device("cuda" if fx.cuda.is_available() else "cpu")
    assert fx.tensor(X).to(device).device == fx.device("cpu:0")
    for name in ("long", "int", "float", "double", "half", "bool"):
        assert str(getattr(fx, name)) == str(getattr(torch, name)).removeprefix("torch.")
    size = fx.tensor(X).size()
    assert isinstance(size, tuple) and size == torch.tensor(X).size() and size.numel() == 24
    assert type(fx.tensor(X).shape) is tuple
    count = fx.tensor(X).size  # NumPy's count, callable: copies and pickles as a plain int
    assert copy.deepcopy(count) == 24 and type(pickle.loads(pickle.dumps(count))) is int
    assert fx.get_default_dtype() == fx.float32
    fx.set_default_dtype(fx.float32)
    with pytest.raises(FluxionError, match="set_default_dtype.*float32"):
        fx.set_default_dtype(fx.float64)
    for to_gpu in (
        lambda: fx.ones(2).to("cuda"),
        lambda: fx.ones(2).cuda(),
        fx.nn.Linear(2, 2).cuda,
    ):
        with pytest.raises(FluxionError, match="cpu only"):
            to_gpu()
    with fx.no_grad():
        assert not fx.is_grad_enabled()
    assert fx.arange(3, device="cpu").tolist() == [0, 1, 2]
    assert (
        fx.empty_like(fx.ones((2, 3)), device="cpu").shape
        == torch.empty_like(torch.ones(2, 3)).shape
    )


def test_generator_and_random_draws():
    g1, g2 = fx.Generator().manual_seed(5), fx.Generator().manual_seed(5)
    assert g1.initial_seed() == 5
    assert fx.Generator().initial_seed() == torch.Generator().initial_seed()
    p1, p2 = fx.randperm(10, generator=g1), fx.randperm(10, generator=g2)
    assert p1.tolist() == p2.tolist() and sorted(p1.tolist()) == list(range(10))
    assert fx.randperm(10, generator=g1).tolist() != p1.tolist()  # the generator moved on
    w = fx.tensor([0.0, 1.0, 0.0, 3.0])
    draws = fx.multinomial(w, 2, generator=g1)
    assert sorted(draws.tolist()) == [1, 3]  # without replacement: both non-zero weights
    many = fx.multinomial(fx.tensor([[1.0, 3.0], [1.0, 0.0]]), 4000, replacement=True, generator=g1)
    assert many.shape == (2, 4000) and many.dtype == fx.int64
    share = many.numpy()[0].mean()  # P(index 1) = 0.75; 4000 draws: sd 0.007
    assert abs(share - 0.75) < 0.035 and (many.numpy()[1] == 0).all()
    with pytest.raises(FluxionError, match="multinomial.*2 non-zero"):
        fx.multinomial(w, 3)


def test_model_parameters_is_an_iterator_as_torch():
    model = fx.nn.Linear(3, 2)
    first = next(model.parameters())
    assert first is model.weight
    assert len(list(model.parameters())) == len(list(torch.nn.Linear(3, 2).parameters())) == 2
    opt = fx.optim.SGD(model.parameters(), lr=0.1)  # a generator is consumed once, as in torch
    assert len(opt.param_groups[0]["params"]) == 2
    assert (
        model.to(fx.device("cpu")) is model
        and model.to("cpu", fx.float64).weight.dtype == fx.float64
    )


def test_both_names_at_once_are_refused():
    x = fx.tensor(X)
    for call in (
        lambda: fx.sum(x, axis=0, dim=1),
        lambda: fx.max(x, keepdims=True, keepdim=True, dim=1),
        lambda: fx.var(x, ddof=0, correction=1),
        lambda: fx.cat([x, x], axis=1, dim=1),
        lambda: fx.triu(x, 1, diagonal=1),
    ):
        with pytest.raises(FluxionError, match="not both|one of"):
            call()
