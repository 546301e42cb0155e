"""Module: registration, traversal, modes, state dicts, and the Module as a pytree
(flatten/unflatten, fx.grad, fx.vmap, tree_map) with aliasing and static config."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.nn.module import ModuleAttributeError, trainable_mask

nn = fx.nn


class Block(nn.Module):
    """Config (ints, a string, a function), a parameter, a buffer and submodules."""

    inits = 0

    def __init__(self, d=4, act="relu"):
        super().__init__()
        Block.inits += 1
        self.d, self.act_name = d, act
        self.act = fx.relu if act == "relu" else fx.tanh
        self.fc = nn.Linear(d, d)
        self.scale = nn.Parameter(fx.ones(d))
        self.register_buffer("running", fx.zeros(d))
        self.heads = [nn.Linear(d, 1), nn.Linear(d, 2)]  # a plain list of modules
        self.table = {"a": nn.Linear(d, 3)}

    def forward(self, x):
        h = self.act(self.fc(x)) * self.scale + self.running
        return self.heads[0](h).sum() + self.heads[1](h).sum() + self.table["a"](h).sum()


def test_registration_and_names():
    b = Block()
    names = [n for n, _ in b.named_parameters()]
    assert names == [
        "scale",
        "fc.weight",
        "fc.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "heads.1.bias",
        "table.a.weight",
        "table.a.bias",
    ]
    assert [n for n, _ in b.named_buffers()] == ["running"]
    assert [n for n, _ in b.named_children()] == ["fc", "heads.0", "heads.1", "table.a"]
    assert len(b.modules()) == 5 and b.modules()[0] is b
    assert list(b.state_dict())[:3] == ["scale", "running", "fc.weight"]
    assert b.num_parameters() == 4 + 20 + 5 + 10 + 15
    assert b.get_submodule("fc") is b.fc


def test_buffers_plain_tensors_and_none_slots():
    m = nn.Module()
    m.pe = fx.zeros(3)  # a plain tensor without grad: a buffer (the seed's fixed encoding)
    m.w = fx.tensor([1.0, 2.0], requires_grad=True)  # a leaf that requires grad: a parameter
    m.register_buffer("tmp", fx.ones(2), persistent=False)
    m.bias = nn.Parameter(fx.zeros(2))
    m.bias = None  # PyTorch's way to drop a parameter; the slot stays empty
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert [n for n, _ in m.named_buffers()] == ["pe", "tmp"]
    assert list(m.state_dict()) == ["w", "pe"]  # non-persistent buffers are not saved
    with pytest.raises(ModuleAttributeError, match="cannot assign a plain tensor to parameter"):
        nn.Linear(2, 2).weight = fx.zeros((2, 2))
    with pytest.raises(InvalidArgumentError, match="already an attribute"):
        m.register_buffer("forward", fx.ones(1))


def test_seed_style_list_alias_is_not_registered_twice():
    class Seed(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = []
            for i in range(2):
                layer = nn.Linear(3, 3)
                setattr(self, f"encoder_{i}", layer)
                self.layers.append(layer)

    m = Seed()
    assert [n for n, _ in m.named_parameters()] == [
        "encoder_0.weight",
        "encoder_0.bias",
        "encoder_1.weight",
        "encoder_1.bias",
    ]
    assert list(m.state_dict()) == [n for n, _ in m.named_parameters()]
    leaves, tree = fx.tree_flatten(m)
    assert len(leaves) == 4
    m2 = fx.tree_unflatten(tree, [leaf * 2 for leaf in leaves])
    assert m2.layers[0] is m2.encoder_0 and m2.layers[1] is m2.encoder_1
    np.testing.assert_allclose(m2.encoder_1.weight.numpy(), 2 * m.encoder_1.weight.numpy())


def test_pytree_round_trip_keeps_class_config_and_skips_init():
    b = Block(d=3, act="tanh")
    b.eval()
    leaves, tree = fx.tree_flatten(b)
    assert len(leaves) == len(list(b.parameters())) + len(list(b.buffers()))
    before = Block.inits
    b2 = fx.tree_unflatten(tree, leaves)
    assert Block.inits == before  # no __init__ call
    assert type(b2) is Block and b2.d == 3 and b2.act is fx.tanh and not b2.training
    assert b2.fc is not b.fc and b2.fc.weight is b.fc.weight
    assert fx.tree_structure(b2) == tree
    x = fx.randn(2, 3)
    np.testing.assert_allclose(b2(x).numpy(), b(x).numpy())
    doubled = fx.tree_map(lambda t: t * 2, b)
    assert type(doubled) is Block and isinstance(doubled.table["a"], nn.Linear)
    np.testing.assert_allclose(doubled.table["a"].weight.numpy(), 2 * b.table["a"].weight.numpy())
    # a different config is a different structure
    assert fx.tree_structure(Block(d=3, act="relu")) != tree
    assert fx.tree_structure(nn.Dropout(0.1)) != fx.tree_structure(nn.Dropout(0.2))
    assert fx.tree_structure(Block(d=3, act="tanh")) == tree


def test_train_eval_does_not_change_the_structure():
    b = Block()
    train_tree = fx.tree_structure(b.train())
    eval_tree = fx.tree_structure(b.eval())
    assert train_tree == eval_tree and hash(train_tree) == hash(eval_tree)
    assert not b.fc.training and not b.heads[0].training
    assert fx.tree_unflatten(eval_tree, fx.tree_leaves(b)).training is False
    assert b.train().fc.training


def test_grad_returns_a_module_matching_backward():
    fx.manual_seed(0)
    b = Block()
    x = fx.randn(5, 4)
    b.running.data = fx.randn(4)
    b(x).backward()
    grads = fx.grad(lambda m, x: m(x))(b, x)
    assert type(grads) is Block
    for (n, p), (n2, g) in zip(b.named_parameters(), grads.named_parameters()):
        assert n == n2
        np.testing.assert_allclose(g.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)
    # buffers are leaves too (they get a gradient); trainable_mask tells them apart
    mask = trainable_mask(grads)
    assert len(mask) == len(fx.tree_leaves(grads)) and mask.count(False) == 1
    value, grads2 = fx.value_and_grad(lambda m: m(x))(b)
    np.testing.assert_allclose(value.numpy(), b(x).numpy())
    sgd = fx.tree_map(lambda p, g: p - 0.1 * g, b, grads2)
    assert type(sgd) is Block and sgd(x).item() != b(x).item()


def test_vmap_over_inputs_and_over_stacked_models():
    fx.manual_seed(1)
    lin = nn.Linear(3, 2)
    xs = fx.randn(4, 3)
    out = fx.vmap(lambda m, x: m(x), in_axes=(None, 0))(lin, xs)
    np.testing.assert_allclose(out.numpy(), lin(xs).numpy(), rtol=1e-6)
    # per-example gradients: vmap(grad) gives a Linear whose leaves have a batch axis
    per_example = fx.vmap(fx.grad(lambda m, x: m(x).sum()), in_axes=(None, 0))(lin, xs)
    assert type(per_example) is nn.Linear and per_example.weight.shape == (4, 2, 3)
    np.testing.assert_allclose(
        per_example.weight.numpy().sum(0),
        fx.grad(lambda m: m(xs).sum())(lin).weight.numpy(),
        rtol=1e-5,
    )
    # an ensemble: stacked parameters, one model per batch entry
    models = [nn.Linear(3, 2) for _ in range(3)]
    stacked = fx.tree_map(lambda *ts: fx.stack(ts), *models)
    outs = fx.vmap(lambda m, x: m(x), in_axes=(0, None))(stacked, xs)
    for i, m in enumerate(models):
        np.testing.assert_allclose(outs.numpy()[i], m(xs).numpy(), rtol=1e-5, atol=1e-6)


def test_vmap_of_a_transformer_layer_matches_the_batch():
    fx.manual_seed(2)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = fx.randn(3, 5, 8)
    out = fx.vmap(lambda m, x: m(x), in_axes=(None, 0))(layer, x)
    np.testing.assert_allclose(out.numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)


def test_trainable_mask_rules():
    lin = nn.Linear(2, 2)
    lin.bias.requires_grad_(False)  # frozen
    tree = {"model": lin, "extra": [fx.ones(2), fx.tensor([1, 2]), 0.5, 3]}
    leaves = fx.tree_leaves(tree)
    mask = trainable_mask(tree)
    assert len(mask) == len(leaves)
    assert mask == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]  # extra: f32, i64, float, int; then model


def test_shared_parameters_count_once_and_accumulate():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight  # tied across modules
    model = nn.Sequential(a, b)
    assert model.num_parameters() == 9 + 3 + 3
    assert len(list(model.parameters())) == 3
    x = fx.randn(2, 3)
    model(x).sum().backward()
    w = a.weight
    ta, tb = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    tb.weight = ta.weight
    with torch.no_grad():
        ta.weight.copy_(torch.from_numpy(w.numpy()))
        ta.bias.copy_(torch.from_numpy(a.bias.numpy()))
        tb.bias.copy_(torch.from_numpy(b.bias.numpy()))
    torch.nn.Sequential(ta, tb)(torch.from_numpy(x.numpy())).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), ta.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_modes_grads_dtype_and_freezing():
    m = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    assert m.eval() is m and not m[1].training
    x = fx.randn(2, 3)
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    w = m[0].weight
    m.to(fx.float64)
    assert (
        m[0].weight is w and w.dtype == fx.float64 and m(x.astype(fx.float64)).dtype == fx.float64
    )
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    assert m.num_parameters(trainable_only=True) == 0
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Linear", "Sequential"]


def test_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    layers.insert(0, nn.ReLU())
    assert len(layers) == 5 and isinstance(layers[0], nn.ReLU) and isinstance(layers[-1], nn.Linear)
    assert list(layers.state_dict())[:2] == ["1.weight", "1.bias"]
    del layers[0]
    assert list(layers.state_dict())[:2] == ["0.weight", "0.bias"] and len(layers[1:3]) == 2
    heads = nn.ModuleDict({"cls": nn.Linear(2, 3)})
    heads["reg"] = nn.Linear(2, 1)
    assert heads.keys() == ["cls", "reg"] and "reg" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["cls.weight", "cls.bias", "reg.weight", "reg.bias"]
    with pytest.raises(InvalidArgumentError, match="already an attribute"):
        heads["train"] = nn.Linear(2, 2)
    seq = nn.Sequential({"inp": nn.Linear(2, 4), "act": nn.Tanh(), "out": nn.Linear(4, 1)})
    assert list(seq.state_dict()) == ["inp.weight", "inp.bias", "out.weight", "out.bias"]
    assert seq(fx.ones((5, 2))).shape == (5, 1)
    leaves, tree = fx.tree_flatten(layers)
    assert type(fx.tree_unflatten(tree, leaves)) is nn.ModuleList


def test_repr_is_a_pytorch_like_tree():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.GELU(approximate="tanh")))
    assert text == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): GELU(approximate='tanh')\n"
        ")"
    )
    assert "Parameter containing" in repr(nn.Parameter(fx.zeros(1)))


def test_deepcopy_is_independent():
    b = Block()
    c = copy.deepcopy(b)
    assert c.fc.weight is not b.fc.weight and c.heads[0] is not b.heads[0]
    assert type(c.fc.weight) is nn.Parameter and c.fc.weight.requires_grad
    np.testing.assert_array_equal(c.fc.weight.numpy(), b.fc.weight.numpy())
    assert fx.tree_structure(c) == fx.tree_structure(b)


# ----------------------------------------------------------------------------- state dicts


def _gpt_like(m):
    class Model(m.Module):
        def __init__(self):
            super().__init__()
            self.tok = m.Embedding(11, 8)
            self.block = m.TransformerEncoderLayer(
                8, 2, 16, dropout=0.0, batch_first=True, norm_first=True
            )
            self.ln = m.LayerNorm(8)
            self.head = m.Linear(8, 11)

        def forward(self, idx):
            return self.head(self.ln(self.block(self.tok(idx))))

    return Model()


def test_state_dict_round_trips_with_pytorch():
    f, t = _gpt_like(nn), _gpt_like(torch.nn)
    assert list(f.state_dict()) == list(t.state_dict())
    assert {k: v.shape for k, v in f.state_dict().items()} == {
        k: tuple(v.shape) for k, v in t.state_dict().items()
    }
    idx = np.array([[1, 4, 9, 0], [3, 3, 2, 10]])
    # fluxion -> torch
    t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in f.state_dict().items()})
    t.train()
    np.testing.assert_allclose(
        f(fx.tensor(idx)).numpy(), t(torch.from_numpy(idx)).detach().numpy(), rtol=1e-4, atol=1e-5
    )
    # torch -> fluxion (a fresh model with other weights)
    fx.manual_seed(123)
    g = _gpt_like(nn)
    result = g.load_state_dict(t.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_allclose(
        g(fx.tensor(idx)).numpy(), f(fx.tensor(idx)).numpy(), rtol=1e-6, atol=1e-6
    )
    # fluxion -> fluxion via NumPy arrays; the parameter objects keep their identity
    h = _gpt_like(nn)
    w = h.head.weight
    h.load_state_dict({k: v.numpy() for k, v in f.state_dict().items()})
    assert h.head.weight is w
    np.testing.assert_array_equal(h.head.weight.numpy(), f.head.weight.numpy())


def test_state_dict_values_share_memory_and_detach():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert type(sd["weight"]) is fx.Tensor and not sd["weight"].requires_grad
    assert np.shares_memory(sd["weight"].numpy(), lin.weight.numpy())
    assert lin.state_dict(keep_vars=True)["weight"] is lin.weight


def test_load_state_dict_errors_load_nothing():
    lin = nn.Linear(3, 2)
    before = lin.weight.numpy().copy()
    good = {"weight": np.ones((2, 3), np.float32), "bias": np.ones(2, np.float32)}
    with pytest.raises(InvalidArgumentError, match=r"missing key\(s\): bias") as e:
        lin.load_state_dict({"weight": good["weight"]})
    assert "nothing was loaded" in str(e.value)
    with pytest.raises(InvalidArgumentError, match=r"unexpected key\(s\): extra"):
        lin.load_state_dict({**good, "extra": np.ones(1)})
    with pytest.raises(
        ShapeError,
        match=r"size mismatch for bias: the checkpoint has shape \(3,\), the model \(2,\)",
    ):
        lin.load_state_dict({**good, "bias": np.ones(3, np.float32)})
    with pytest.raises(ShapeError, match="size mismatch"):
        lin.load_state_dict({**good, "bias": np.ones(3, np.float32)}, strict=False)
    with pytest.raises(InvalidArgumentError, match="dtype mismatch"):
        lin.load_state_dict({**good, "bias": np.ones(2, np.int64)})
    np.testing.assert_array_equal(lin.weight.numpy(), before)
    result = lin.load_state_dict({"weight": good["weight"], "extra": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert np.all(lin.weight.numpy() == 1)


def test_training_flags_and_constructor_dtype():
    from fluxion.nn.module import training_flags

    m = nn.Sequential(nn.Linear(2, 2, dtype=fx.float64), nn.Dropout(0.1))
    assert (
        m[0].weight.dtype == fx.float64 and m(fx.ones((1, 2), dtype=fx.float64)).dtype == fx.float64
    )
    assert training_flags({"m": m}) == (True, True, True)
    m[1].eval()
    assert training_flags(m) == (True, True, False)


def test_grad_trees_keep_the_model_structure_even_with_shared_cotangents():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(fx.ones(3))
            self.b = nn.Parameter(fx.ones(3))

        def forward(self):
            return (self.a + self.b).sum()  # add's vjp hands both the same cotangent

    m = Two()
    grads = fx.grad(lambda m: m())(m)
    assert fx.tree_structure(grads) == fx.tree_structure(m)
    assert [n for n, _ in grads.named_parameters()] == ["a", "b"]
    # a tensor tied within one module: one parameter, two leaves
    m.b = m.a
    assert len(list(m.parameters())) == 1 and len(fx.tree_leaves(m)) == 2
    assert list(m.state_dict()) == ["a", "b"]  # PyTorch also saves both names
