"""fluxion.nnx against Flax NNX (the oracle): the same modules, Flax's initial weights copied
in by path, trained with the same optax optimizer under jit; losses, parameters and BatchNorm
running statistics agree step by step. Layers one by one on the same inputs; the state API
(split/merge/state/update), random streams and train/eval against Flax's behaviour."""

from __future__ import annotations

import flax.nnx as fnnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxion as fx
import fluxion.optax as fxo
from fluxion import nnx

RNG = np.random.default_rng(0)


def pure(module, *filters):
    """A Flax module's values (those of any of the filters) as nested dicts of NumPy arrays."""
    return jax.tree.map(np.asarray, fnnx.to_pure_dict(fnnx.state(module, filters)))


def copy_into(model, flax_module):
    """Flax's Params and BatchStats written into fluxion's model, by the same paths."""
    tree = pure(flax_module, fnnx.Param, fnnx.BatchStat)
    nnx.update(model, fx.tree_map(fx.tensor, tree))


def assert_state_close(model, flax_module, rtol=2e-5, atol=2e-6):
    want = pure(flax_module, fnnx.Param, fnnx.BatchStat)
    got = nnx.state(model, (nnx.Param, nnx.BatchStat))
    flat_w = jax.tree_util.tree_flatten_with_path(want)[0]
    assert len(flat_w) == len(nnx.State(got).flat_state())
    for path, w in flat_w:
        g = got
        for k in path:
            g = g[k.key]
        np.testing.assert_allclose(g.numpy(), w, rtol=rtol, atol=atol, err_msg=str(path))


def mlp_with_batchnorm(lib, din=3, dmid=16, dout=2, seed=0, use_bias=False):
    # no bias before the BatchNorm: its gradient is rounding noise (the normalization
    # removes it), which Adam scales up to steps of size lr, differently in each library
    class Model(lib.Module):
        def __init__(self, rngs):
            self.linear = lib.Linear(din, dmid, use_bias=use_bias, rngs=rngs)
            self.bn = lib.BatchNorm(dmid, rngs=rngs)
            self.linear_out = lib.Linear(dmid, dout, rngs=rngs)

        def __call__(self, x):
            return self.linear_out(lib.relu(self.bn(self.linear(x))))

    return Model(lib.Rngs(seed))


def train(lib, tx_lib, model, steps, x, y):
    optimizer = lib.Optimizer(
        model, tx_lib.chain(tx_lib.clip_by_global_norm(1.0), tx_lib.adamw(1e-2)), wrt=lib.Param
    )

    @lib.jit
    def step(model, optimizer, x, y):
        loss, grads = lib.value_and_grad(lambda m: ((m(x) - y) ** 2).mean())(model)
        optimizer.update(model, grads)
        return loss

    history = []
    for _ in range(steps):
        loss = step(model, optimizer, x, y)
        history.append(
            (float(loss), np.asarray(model.bn.mean.value), np.asarray(model.bn.var.value))
        )
    return history, optimizer


def test_batchnorm_training_matches_flax():
    x = RNG.normal(size=(12, 3)).astype(np.float32)
    y = RNG.normal(size=(12, 2)).astype(np.float32)
    ours, theirs = mlp_with_batchnorm(nnx), mlp_with_batchnorm(fnnx)
    copy_into(ours, theirs)
    got, opt = train(nnx, fxo, ours, 6, fx.tensor(x), fx.tensor(y))
    want, _ = train(fnnx, optax, theirs, 6, jnp.asarray(x), jnp.asarray(y))
    for step, ((gl, gm, gv), (wl, wm, wv)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(gl, wl, rtol=1e-5, err_msg=f"loss at step {step}")
        np.testing.assert_allclose(gm, wm, rtol=1e-5, atol=1e-6, err_msg=f"mean at step {step}")
        np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-6, err_msg=f"var at step {step}")
    assert got[-1][0] < got[0][0] and not np.allclose(got[-1][1], 0)
    assert_state_close(ours, theirs)
    assert int(opt.step.value) == 6
    # eval: the running statistics normalize, in both
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(
        ours(fx.tensor(x)).numpy(), theirs(jnp.asarray(x)), rtol=2e-5, atol=2e-6
    )
    assert ours.bn.use_running_average and not ours.train().bn.use_running_average


def test_seed_style_update_grads_and_eager_steps_match_jit():
    x, y = fx.tensor(RNG.normal(size=(8, 3)).astype(np.float32)), fx.zeros((8, 2))
    eager, compiled = mlp_with_batchnorm(nnx), mlp_with_batchnorm(nnx)
    opt_e = nnx.Optimizer(eager, fxo.adam(1e-2))
    opt_c = nnx.Optimizer(compiled, fxo.adam(1e-2))

    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: ((m(x) - y) ** 2).mean())(model)
        optimizer.update(grads)  # the seed's form: the optimizer keeps its model
        return loss

    jitted = nnx.jit(step)
    for _ in range(4):
        le, lc = step(eager, opt_e), jitted(compiled, opt_c)
        np.testing.assert_allclose(float(le), float(lc), rtol=1e-6)
    for (p, a), (_, b) in zip(
        nnx.State(nnx.state(eager)).flat_state(), nnx.State(nnx.state(compiled)).flat_state()
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(p))


@pytest.mark.parametrize(
    "make, shape, dtype",
    [
        (lambda lib, r: lib.Linear(5, 4, rngs=r), (3, 5), np.float32),
        (lambda lib, r: lib.Linear(5, 4, use_bias=False, rngs=r), (2, 3, 5), np.float32),
        (lambda lib, r: lib.LayerNorm(5, rngs=r), (3, 5), np.float32),
        (lambda lib, r: lib.BatchNorm(5, rngs=r), (6, 5), np.float32),
        (
            lambda lib, r: lib.BatchNorm(5, momentum=0.9, epsilon=1e-3, rngs=r),
            (2, 4, 5),
            np.float32,
        ),
        (lambda lib, r: lib.Embed(7, 4, rngs=r), (2, 3), np.int32),
        (
            lambda lib, r: lib.MultiHeadAttention(
                4, 8, qkv_features=16, out_features=6, decode=False, rngs=r
            ),
            (1, 3, 8),
            np.float32,
        ),
    ],
)
def test_layer_matches_flax(make, shape, dtype):
    ours, theirs = make(nnx, nnx.Rngs(0)), make(fnnx, fnnx.Rngs(0))
    assert jax.tree.map(np.shape, pure(theirs, fnnx.Param)) == fx.tree_map(
        lambda t: t.shape, nnx.state(ours, nnx.Param)
    )  # Flax's names and layouts
    copy_into(ours, theirs)
    x = (
        RNG.integers(0, 7, size=shape).astype(dtype)
        if dtype == np.int32
        else RNG.normal(size=shape).astype(dtype)
    )
    np.testing.assert_allclose(
        ours(fx.tensor(x)).numpy(), theirs(jnp.asarray(x)), rtol=2e-5, atol=2e-6
    )
    assert_state_close(ours, theirs)  # BatchNorm's statistics after one call


def test_attention_mask_matches_flax():
    ours, theirs = (
        nnx.MultiHeadAttention(2, 8, decode=False, rngs=nnx.Rngs(0)),
        fnnx.MultiHeadAttention(2, 8, decode=False, rngs=fnnx.Rngs(0)),
    )
    copy_into(ours, theirs)
    x = RNG.normal(size=(2, 4, 8)).astype(np.float32)
    mask = np.tril(np.ones((4, 4), bool))[None, None]
    np.testing.assert_allclose(
        ours(fx.tensor(x), mask=fx.tensor(mask)).numpy(),
        theirs(jnp.asarray(x), mask=jnp.asarray(mask)),
        rtol=2e-5,
        atol=2e-6,
    )


def test_initializers_have_flaxs_scale():
    kernel = nnx.Linear(256, 128, rngs=nnx.Rngs(0)).kernel.value.numpy()
    assert kernel.shape == (256, 128)
    np.testing.assert_allclose(kernel.std(), 1 / 16, rtol=0.03)  # lecun normal: 1/sqrt(fan_in)
    assert np.abs(kernel).max() <= 2 / 16 / 0.87962566103423978 + 1e-6  # truncated at 2 sigma
    emb = nnx.Embed(512, 64, rngs=nnx.Rngs(1)).embedding.value.numpy()
    np.testing.assert_allclose(emb.std(), 1 / 8, rtol=0.03)
    assert not np.array_equal(
        kernel[:4, :4], nnx.Linear(256, 128, rngs=nnx.Rngs(1)).kernel.value.numpy()[:4, :4]
    )
    np.testing.assert_array_equal(
        kernel, nnx.Linear(256, 128, rngs=nnx.Rngs(0)).kernel.value.numpy()
    )


def test_dropout_draws_fresh_masks_under_jit_and_is_off_in_eval():
    drop = nnx.Dropout(0.25, rngs=nnx.Rngs(dropout=3))
    x = fx.ones((400, 50))
    f = nnx.jit(lambda d, x: d(x))
    a, b = f(drop, x).numpy(), f(drop, x).numpy()
    assert not np.array_equal(a, b) and int(drop.rngs.count.value) == 2
    for m in (a, b):
        np.testing.assert_allclose((m == 0).mean(), 0.25, atol=0.01)
        assert set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    assert np.array_equal(nnx.Dropout(0.25, deterministic=True)(x).numpy(), x.numpy())


def test_rngs_streams_fall_back_to_default_as_flax():
    ours, theirs = nnx.Rngs(0, dropout=1), fnnx.Rngs(0, dropout=1)
    ours.params(), ours.params(), ours.dropout()
    theirs.params(), theirs.params(), theirs.dropout()
    assert int(ours.default.count.value) == int(theirs.default.count[...]) == 2
    assert int(ours.dropout.count.value) == int(theirs.dropout.count[...]) == 1


def test_split_merge_state_update_round_trip():
    model = mlp_with_batchnorm(nnx)
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    assert set(params) == {"linear", "bn", "linear_out"} and set(stats) == {"bn"}
    assert set(stats["bn"]) == {"mean", "var"} and set(params["bn"]) == {"scale", "bias"}
    twin = nnx.merge(graphdef, params, stats)
    x = fx.tensor(RNG.normal(size=(4, 3)).astype(np.float32))
    model.eval(), twin.eval()
    np.testing.assert_array_equal(twin(x).numpy(), model(x).numpy())
    doubled = fx.tree_map(lambda t: t * 2, params)
    nnx.update(model, doubled)
    np.testing.assert_array_equal(
        model.linear.kernel.value.numpy(), 2 * twin.linear.kernel.value.numpy()
    )
    with pytest.raises(fx.errors.InvalidArgumentError, match="no filter takes .*bn.mean"):
        nnx.split(model, nnx.Param)
    _, only_params, rest = nnx.split(model, nnx.Param, ...)
    assert set(rest["bn"]) == {"mean", "var"}
    p_state, s_state = nnx.state(model, nnx.Param, nnx.BatchStat)
    assert set(s_state) == {"bn"} and set(p_state["bn"]) == {"scale", "bias"}
    with pytest.raises(fx.errors.InvalidArgumentError, match="no variable"):
        nnx.update(model, {"nope": fx.ones(1)})


def test_grad_returns_the_param_state_and_keeps_statistics():
    x = fx.tensor(RNG.normal(size=(6, 3)).astype(np.float32))
    model = mlp_with_batchnorm(nnx, use_bias=True)
    grads = nnx.grad(lambda m: m(x).sum())(model)
    assert set(grads["bn"]) == {"scale", "bias"}  # BatchStats are not differentiated
    assert grads["linear"]["kernel"].shape == (3, 16)
    # the forward under grad updated the running mean, as in eager
    np.testing.assert_allclose(
        model.bn.mean.value.numpy(),
        0.01
        * (x.numpy() @ model.linear.kernel.value.numpy() + model.linear.bias.value.numpy()).mean(0),
        rtol=1e-4,
        atol=1e-7,
    )


def test_variable_access_as_flax():
    p = nnx.Param(fx.ones((2, 3)))
    assert p.shape == (2, 3) and p[...].shape == (2, 3) and (p + 1).sum().item() == 12
    p[...] = fx.zeros((2, 3))
    p.set_value(p.get_value() * 2)
    assert isinstance(p.value, fx.nn.Parameter) and p.value.sum().item() == 0
    with pytest.raises(fx.errors.InvalidArgumentError, match=r"\.at\[index\]"):
        p[0] = fx.ones(3)


def test_vmap_of_a_module_call():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    xs = fx.tensor(RNG.normal(size=(5, 3)).astype(np.float32))
    out = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, xs)
    np.testing.assert_allclose(out.numpy(), model(xs).numpy(), rtol=1e-6)


def test_lists_of_layers_and_clone():
    class Stack(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(3)])

        def __call__(self, x):
            for layer in self.layers:
                x = nnx.gelu(layer(x))
            return x

    model = Stack(nnx.Rngs(0))
    assert set(nnx.state(model, nnx.Param)["layers"]) == {0, 1, 2}
    twin = nnx.clone(model)
    x = fx.tensor(RNG.normal(size=(2, 4)).astype(np.float32))
    np.testing.assert_array_equal(twin(x).numpy(), model(x).numpy())
    twin.layers[0].kernel.value = twin.layers[0].kernel.value * 0
    assert not np.array_equal(twin(x).numpy(), model(x).numpy())
    grads = nnx.grad(lambda m: m(x).sum())(model)
    assert grads["layers"][2]["kernel"].shape == (4, 4)


@pytest.mark.parametrize(
    "name",
    [
        "relu",
        "gelu",
        "silu",
        "swish",
        "sigmoid",
        "tanh",
        "softplus",
        "softmax",
        "log_softmax",
        "log_sigmoid",
    ],
)
def test_activation_matches_flax(name):
    x = RNG.normal(size=(3, 4)).astype(np.float32) * 3
    np.testing.assert_allclose(
        getattr(nnx, name)(fx.tensor(x)).numpy(),
        getattr(fnnx, name)(jnp.asarray(x)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_optimizer_hyperparameters_are_variables_as_in_flax():
    x = RNG.normal(size=(8, 3)).astype(np.float32)
    theirs, ours = mlp_with_batchnorm(fnnx), mlp_with_batchnorm(nnx)
    copy_into(ours, theirs)
    for lib, tx_lib, model, as_array in (
        (nnx, fxo, ours, fx.tensor),
        (fnnx, optax, theirs, jnp.asarray),
    ):
        opt = lib.Optimizer(
            model, tx_lib.inject_hyperparams(tx_lib.sgd)(learning_rate=0.1), wrt=lib.Param
        )
        opt.opt_state.hyperparams["learning_rate"].value = as_array(np.float32(0.5))
        opt.update(model, lib.grad(lambda m: (m(as_array(x)) ** 2).mean())(model))
    np.testing.assert_allclose(
        ours.linear.kernel.value.numpy(), theirs.linear.kernel.value, rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(
        ours.linear.kernel.value.numpy(), mlp_with_batchnorm(fnnx).linear.kernel.value
    )
