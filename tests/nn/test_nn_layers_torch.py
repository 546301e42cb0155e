"""Every layer against torch.nn: same weights (copied by name), same forward, same
gradients through backward() and fx.grad; float64 to 1e-10, float32 to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nn_testing import compare, rand, twin

import fluxion as fx

nn = fx.nn
DTYPES = [np.float64, np.float32]


@pytest.fixture(autouse=True)
def _seed():
    fx.manual_seed(0)
    torch.manual_seed(0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, bias):
    f, t = twin(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), dtype)
    rng = np.random.default_rng(1)
    compare(f, t, [rand(rng, (2, 4, 5), dtype)], dtype)
    compare(f, t, [rand(rng, (5,), dtype)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_and_padding_idx(dtype):
    f, t = twin(nn.Embedding(7, 4, padding_idx=2), torch.nn.Embedding(7, 4, padding_idx=2), dtype)
    assert np.all(nn.Embedding(7, 4, padding_idx=2).weight.numpy()[2] == 0)
    idx = np.array([[0, 2, 6], [2, 2, 1]])
    compare(f, t, [(fx.tensor(idx), torch.from_numpy(idx))], dtype)
    assert np.all(f.weight.grad.numpy()[2] == 0)  # the padding row gets no gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"elementwise_affine": False},
        {"bias": False, "eps": 1e-3},
    ],
)
def test_layer_norm(dtype, kwargs):
    f, t = twin(nn.LayerNorm(6, **kwargs), torch.nn.LayerNorm(6, **kwargs), dtype)
    if f.weight is not None:  # non-trivial affine parameters
        with torch.no_grad():
            for p in t.parameters():
                p.add_(torch.randn_like(p))
        f.load_state_dict(t.state_dict())
    compare(f, t, [rand(np.random.default_rng(2), (3, 4, 6), dtype)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_over_two_dims(dtype):
    f, t = twin(nn.LayerNorm((4, 6)), torch.nn.LayerNorm((4, 6)), dtype)
    compare(f, t, [rand(np.random.default_rng(3), (2, 4, 6), dtype)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-2])
def test_rms_norm(dtype, eps):
    f, t = twin(nn.RMSNorm(6, eps=eps), torch.nn.RMSNorm(6, eps=eps), dtype)
    with torch.no_grad():
        t.weight.add_(torch.randn_like(t.weight))
    f.load_state_dict(t.state_dict())
    compare(f, t, [rand(np.random.default_rng(4), (3, 6), dtype)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.ReLU(),
        lambda m: m.GELU(),
        lambda m: m.GELU(approximate="tanh"),
        lambda m: m.SiLU(),
        lambda m: m.Tanh(),
        lambda m: m.Sigmoid(),
        lambda m: m.Softmax(dim=1),
        lambda m: m.Softmax(dim=-1),
        lambda m: m.LogSoftmax(dim=1),
        lambda m: m.Identity(),
    ],
)
def test_activations(dtype, make):
    f, t = twin(make(nn), make(torch.nn), dtype)
    compare(f, t, [rand(np.random.default_rng(5), (3, 5, 4), dtype) * 3], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential(dtype):
    def make(m):
        return m.Sequential(m.Linear(4, 8), m.GELU(), m.LayerNorm(8), m.Linear(8, 2))

    f, t = twin(make(nn), make(torch.nn), dtype)
    assert list(f.state_dict()) == list(t.state_dict())
    compare(f, t, [rand(np.random.default_rng(6), (5, 4), dtype)], dtype)


def test_dropout_is_identity_in_eval_and_scales_in_train():
    x = fx.ones((2000,))
    drop = nn.Dropout(0.25)
    y = drop(x).numpy()
    assert set(np.unique(y).tolist()) <= {0.0, float(np.float32(1.0 / 0.75))}
    assert abs((y == 0).mean() - 0.25) < 0.05
    assert np.all(drop.eval()(x).numpy() == 1.0)
    key = fx.random.key(3)
    a, b = nn.Dropout(0.5)(x, key=key), nn.Dropout(0.5)(x, key=key)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the gradient is the mask, scaled
    xg = fx.tensor(np.ones(50, np.float32), requires_grad=True)
    out = nn.Dropout(0.5)(xg, key=key)
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), out.numpy())
    assert nn.Dropout(0.0)(x) is x and np.all(nn.Dropout(1.0)(x).numpy() == 0)
    keys = fx.random.split(fx.random.key(0), 4)  # independent masks under vmap
    rows = fx.vmap(lambda x, k: nn.Dropout(0.5)(x, key=k))(fx.ones((4, 64)), keys).numpy()
    assert len({r.tobytes() for r in rows}) == 4
    fx.manual_seed(7)
    first = nn.Dropout(0.5)(x).numpy()
    fx.manual_seed(7)
    np.testing.assert_array_equal(nn.Dropout(0.5)(x).numpy(), first)


# ----------------------------------------------------------------------------- attention


def _mha_pair(dtype, embed=8, heads=2, **kwargs):
    fx_kwargs = {k: v for k, v in kwargs.items()}
    f, t = twin(
        nn.MultiheadAttention(embed, heads, **fx_kwargs),
        torch.nn.MultiheadAttention(embed, heads, **kwargs),
        dtype,
    )
    with torch.no_grad():  # make the (zero-initialized) biases non-trivial
        for name, p in t.named_parameters():
            if "bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    f.load_state_dict(t.state_dict())
    return f, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_self_attention(dtype, batch_first):
    f, t = _mha_pair(dtype, batch_first=batch_first)
    rng = np.random.default_rng(7)
    x = rand(rng, (3, 5, 8), dtype)
    self_attn = lambda m, x: m(x, x, x)
    compare(f, t, [x], dtype, call_fx=self_attn, call_torch=self_attn)
    # the averaged attention weights (need_weights=True is the default)
    fw = f(fx.tensor(x), fx.tensor(x), fx.tensor(x))[1]
    tx = torch.from_numpy(x)
    tw = t(tx, tx, tx)[1]
    np.testing.assert_allclose(fw.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    fw = f(fx.tensor(x), fx.tensor(x), fx.tensor(x), average_attn_weights=False)[1]
    tw = t(tx, tx, tx, average_attn_weights=False)[1]
    np.testing.assert_allclose(fw.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert f(fx.tensor(x), need_weights=False)[1] is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_unbatched_and_separate_qkv(dtype):
    f, t = _mha_pair(dtype)
    rng = np.random.default_rng(8)
    q, k, v = rand(rng, (4, 8), dtype), rand(rng, (6, 8), dtype), rand(rng, (6, 8), dtype)
    compare(f, t, [q, k, v], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_cross_attention_with_kdim_vdim(dtype):
    f, t = _mha_pair(dtype, embed=8, heads=4, kdim=5, vdim=3, batch_first=True)
    names = [n for n, _ in f.named_parameters()]
    assert names == [n for n, _ in t.named_parameters()]
    assert "q_proj_weight" in names and "in_proj_weight" not in names
    rng = np.random.default_rng(9)
    q, k, v = rand(rng, (2, 4, 8), dtype), rand(rng, (2, 7, 5), dtype), rand(rng, (2, 7, 3), dtype)
    compare(f, t, [q, k, v], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_cross_attention_shared_key_value(dtype):
    f, t = _mha_pair(dtype, batch_first=True)
    rng = np.random.default_rng(10)
    q, mem = rand(rng, (2, 3, 8), dtype), rand(rng, (2, 6, 8), dtype)
    cross = lambda m, q, mem: m(q, mem, mem)
    compare(f, t, [q, mem], dtype, call_fx=cross, call_torch=cross)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_masks(dtype):
    f, t = _mha_pair(dtype, batch_first=True, embed=8, heads=2)
    rng = np.random.default_rng(11)
    N, L, S = 2, 4, 5
    q, kv = rand(rng, (N, L, 8), dtype), rand(rng, (N, S, 8), dtype)
    bool_mask = rng.random((L, S)) < 0.3
    bool_mask[:, 0] = False  # every query keeps one key
    float_mask = rand(rng, (N * 2, L, S), dtype)
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    kpm_float = np.where(kpm, -1e9, 0.0).astype(dtype)
    cases = [
        {"attn_mask": bool_mask},
        {"attn_mask": float_mask},
        {"key_padding_mask": kpm},
        {"attn_mask": bool_mask, "key_padding_mask": kpm},
        {"attn_mask": float_mask, "key_padding_mask": kpm_float},
    ]
    for masks in cases:
        fx_masks = {k: fx.tensor(v) for k, v in masks.items()}
        t_masks = {k: torch.from_numpy(v) for k, v in masks.items()}
        compare(
            f,
            t,
            [q, kv],
            dtype,
            call_fx=lambda m, q, kv: m(q, kv, kv, **fx_masks),
            call_torch=lambda m, q, kv: m(q, kv, kv, **t_masks),
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_is_causal(dtype):
    f, t = _mha_pair(dtype, batch_first=True)
    x = rand(np.random.default_rng(12), (2, 5, 8), dtype)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    compare(
        f,
        t,
        [x],
        dtype,
        call_fx=lambda m, x: m(x, x, x, is_causal=True),  # fluxion builds the mask itself
        call_torch=lambda m, x: m(x, x, x, attn_mask=causal, is_causal=True),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_without_bias_and_seed_spelling(dtype):
    f, t = _mha_pair(dtype, bias=False, batch_first=True)
    self_attn = lambda m, x: m(x, x, x)
    x = rand(np.random.default_rng(13), (2, 3, 8), dtype)
    compare(f, t, [x], dtype, call_fx=self_attn, call_torch=self_attn)
    layer = nn.MultiHeadAttention(8, num_heads=2)  # Nabla spelling: batch-first
    assert layer.batch_first and isinstance(layer, nn.MultiheadAttention)
    assert [n for n, _ in layer.named_parameters()] == [
        "in_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ]


# ----------------------------------------------------------------------------- transformer


def _transformer_twins(kind, dtype, torch_kwargs, fx_kwargs=None):
    fx_kwargs = dict(torch_kwargs) if fx_kwargs is None else fx_kwargs
    f = getattr(nn, kind)(**fx_kwargs)
    t = getattr(torch.nn, kind)(**torch_kwargs)
    f, t = twin(f, t, dtype)
    with torch.no_grad():
        for name, p in t.named_parameters():
            if "bias" in name or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    f.load_state_dict(t.state_dict())
    assert list(f.state_dict()) == list(t.state_dict())
    t.train()  # PyTorch's eval fast path differs in rounding; dropout is 0 anyway
    return f, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "opts",
    [
        {"activation": "relu", "norm_first": False, "batch_first": True},
        {"activation": "gelu", "norm_first": True, "batch_first": False},
        {"activation": torch.tanh, "norm_first": False, "batch_first": True},
    ],
)
def test_transformer_encoder_layer(dtype, opts):
    kwargs = {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "dropout": 0.0, **opts}
    fx_kwargs = dict(kwargs)
    if opts["activation"] is torch.tanh:
        fx_kwargs["activation"] = fx.tanh
    f, t = _transformer_twins("TransformerEncoderLayer", dtype, kwargs, fx_kwargs)
    rng = np.random.default_rng(14)
    x = rand(rng, (2, 5, 8) if opts["batch_first"] else (5, 2, 8), dtype)  # N=2, L=5
    compare(f, t, [x], dtype)
    kpm = np.zeros((2, 5), bool)
    kpm[1, -1] = True
    bool_mask = np.triu(np.ones((5, 5), bool), 1)  # True: not allowed (MultiheadAttention's rule)
    compare(
        f,
        t,
        [x],
        dtype,
        call_fx=lambda m, x: m(
            x, src_mask=fx.tensor(bool_mask), src_key_padding_mask=fx.tensor(kpm)
        ),
        call_torch=lambda m, x: m(
            x, src_mask=torch.from_numpy(bool_mask), src_key_padding_mask=torch.from_numpy(kpm)
        ),
    )
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5).numpy().astype(dtype)
    compare(
        f,
        t,
        [x],
        dtype,
        call_fx=lambda m, x: m(x, is_causal=True),
        call_torch=lambda m, x: m(x, src_mask=torch.from_numpy(mask), is_causal=True),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_decoder_layer(dtype, norm_first):
    kwargs = {
        "d_model": 8,
        "nhead": 2,
        "dim_feedforward": 16,
        "dropout": 0.0,
        "batch_first": True,
        "norm_first": norm_first,
        "activation": "gelu",
    }
    f, t = _transformer_twins("TransformerDecoderLayer", dtype, kwargs)
    rng = np.random.default_rng(15)
    tgt, mem = rand(rng, (2, 4, 8), dtype), rand(rng, (2, 6, 8), dtype)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy().astype(dtype)
    mkpm = np.zeros((2, 6), bool)
    mkpm[0, 4:] = True
    compare(
        f,
        t,
        [tgt, mem],
        dtype,
        call_fx=lambda m, a, b: m(
            a, b, tgt_mask=fx.tensor(mask), memory_key_padding_mask=fx.tensor(mkpm)
        ),
        call_torch=lambda m, a, b: m(
            a, b, tgt_mask=torch.from_numpy(mask), memory_key_padding_mask=torch.from_numpy(mkpm)
        ),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_encoder_and_decoder_stacks(dtype):
    def build(m, layer_cls, stack_cls, **extra):
        layer = getattr(m, layer_cls)(
            d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True
        )
        return getattr(m, stack_cls)(layer, num_layers=2, norm=m.LayerNorm(8), **extra)

    f = build(nn, "TransformerEncoderLayer", "TransformerEncoder")
    t = build(torch.nn, "TransformerEncoderLayer", "TransformerEncoder", enable_nested_tensor=False)
    f, t = twin(f, t, dtype)
    assert list(f.state_dict()) == list(t.state_dict())
    assert f.layers[0].linear1.weight is not f.layers[1].linear1.weight  # deep copies
    rng = np.random.default_rng(16)
    x = rand(rng, (2, 5, 8), dtype)
    compare(f, t, [x], dtype)

    f = build(nn, "TransformerDecoderLayer", "TransformerDecoder")
    t = build(torch.nn, "TransformerDecoderLayer", "TransformerDecoder")
    f, t = twin(f, t, dtype)
    compare(f, t, [rand(rng, (2, 3, 8), dtype), rand(rng, (2, 5, 8), dtype)], dtype)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
def test_full_transformer(dtype, batch_first):
    kwargs = {
        "d_model": 8,
        "nhead": 2,
        "num_encoder_layers": 1,
        "num_decoder_layers": 2,
        "dim_feedforward": 16,
        "dropout": 0.0,
        "batch_first": batch_first,
    }
    f, t = _transformer_twins("Transformer", dtype, kwargs)
    rng = np.random.default_rng(17)
    shape = (lambda n, s: (n, s, 8)) if batch_first else (lambda n, s: (s, n, 8))
    src, tgt = rand(rng, shape(2, 6), dtype), rand(rng, shape(2, 4), dtype)
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=fx.float64)
    np.testing.assert_array_equal(
        mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    )
    mask_np = mask.numpy().astype(dtype)
    compare(
        f,
        t,
        [src, tgt],
        dtype,
        call_fx=lambda m, s, d: m(s, d, tgt_mask=fx.tensor(mask_np)),
        call_torch=lambda m, s, d: m(s, d, tgt_mask=torch.from_numpy(mask_np)),
    )


def test_transformer_init_is_xavier_for_matrices():
    fx.manual_seed(1)
    model = nn.Transformer(
        d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32
    )
    w = model.encoder.layers[0].linear1.weight.numpy()  # (32, 16): bound sqrt(6 / 48)
    assert np.abs(w).max() <= np.sqrt(6 / 48) and np.abs(w).max() > 0.8 * np.sqrt(6 / 48)
    assert np.all(model.encoder.norm.weight.numpy() == 1)


def test_seed_spelling_is_batch_first():
    layer = nn.TransformerEncoderLayer(d_model=8, num_heads=2, dim_feedforward=16, dropout=0.0)
    assert layer.batch_first and layer.self_attn.batch_first
    assert not nn.TransformerEncoderLayer(8, 2).batch_first  # PyTorch spelling, PyTorch default
    # batch-first means examples do not see each other
    x = fx.randn(3, 4, 8)
    out_all = layer(x).numpy()
    out_one = layer(x[1:2]).numpy()
    np.testing.assert_allclose(out_all[1:2], out_one, rtol=1e-5, atol=1e-6)
