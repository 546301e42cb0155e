"""The two anchor workloads (A "seed" classifier, B "GPT"): sizes, data, initial parameters,
and the model + loss written once per framework (fluxion, PyTorch, JAX).

Everything here reproduces the anchor benchmarks' definitions exactly (same shapes, same
data generators and seeds, same random draws in the same order for the initial
parameters), so that fluxion's losses can be set beside PyTorch's and JAX's to 4-5 digits.
Linear weights live in the ``x @ W`` layout, shape (in_features, out_features); PyTorch's
``nn.Linear`` gets the transpose.

* A: token embedding (vocab 20, d 32) + fixed sinusoidal positions; two post-norm encoder
  layers as ``torch.nn.TransformerEncoderLayer`` defaults (4 heads, ReLU FFN 64, dropout 0);
  mean pool over the 8 positions; linear head to 3 classes; cross-entropy. 150 samples,
  full batch, AdamW lr 1e-3, 60 steps.
* B: decoder-only causal GPT: vocab 65, seq 128, batch 32, d 256, 4 heads, 4 pre-LN
  layers, MLP 4x with exact (erf) GELU, learned positions, untied head without bias, mean
  token cross-entropy. One fixed batch; AdamW lr 3e-4; 3 warm-up + 20 timed steps.
"""

from __future__ import annotations

import math

import numpy as np

A = dict(vocab=20, seq=8, classes=3, n=150, d=32, heads=4, layers=2, ff=64, lr=1e-3, steps=60)
B = dict(
    vocab=65, seq=128, batch=32, d=256, heads=4, layers=4, ff=1024, lr=3e-4, warmup=3, steps=20
)
CONFIG = {"A": A, "B": B}
# AdamW everywhere: PyTorch's defaults, weight decay given explicitly.
BETAS, EPS, WEIGHT_DECAY = (0.9, 0.999), 1e-8, 0.01
LN_EPS = 1e-5


def total_steps(workload: str) -> int:
    return A["steps"] if workload == "A" else B["warmup"] + B["steps"]


def untimed_steps(workload: str) -> int:
    """Steps left out of the step statistics: the first call (A), the 3 warm-up steps (B)."""
    return 1 if workload == "A" else B["warmup"]


# ----------------------------------------------------------------------------- data


def data(workload: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` as int64 arrays.

    A: the seed notebook's task, legacy global seed 42: tokens (150, 8) in [0, 20), label =
    sum % 3. B: one fixed batch from ``default_rng(1234)``: 32 sequences of 129 tokens,
    inputs the first 128, targets the last 128.
    """
    if workload == "A":
        np.random.seed(42)
        tokens = np.random.randint(0, A["vocab"], (A["n"], A["seq"])).astype(np.int64)
        return tokens, (tokens.sum(axis=1) % A["classes"]).astype(np.int64)
    seq = np.random.default_rng(1234).integers(0, B["vocab"], (B["batch"], B["seq"] + 1))
    return seq[:, :-1].astype(np.int64), seq[:, 1:].astype(np.int64)


def positions_A() -> np.ndarray:
    """The fixed sinusoidal positional encoding of A, (seq, d) float32."""
    T, d = A["seq"], A["d"]
    pos = np.arange(T, dtype=np.float32)[:, None]
    freq = np.exp(np.arange(0, d, 2, dtype=np.float32) * -(np.log(10000.0) / d))
    pe = np.zeros((T, d), np.float32)
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)
    return pe


# ----------------------------------------------------------------------------- initial parameters


def init(workload: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The initial parameters, float32, ``x @ W`` layout, drawn from ``default_rng(seed)``.

    A follows PyTorch's default initializers (embedding N(0, 1); attention in-projection
    xavier-uniform, zero biases; other linears uniform(+-1/sqrt(fan_in)); LayerNorm 1/0).
    B is GPT-2 style: N(0, 0.02) weights, zero biases, LayerNorm 1/0. The draws happen in
    a fixed order (the insertion order of the dict), which the peers share.
    """
    rng = np.random.default_rng(seed)

    def uniform(shape, bound):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n):
        return np.ones(n, np.float32)

    def zeros(n):
        return np.zeros(n, np.float32)

    p: dict[str, np.ndarray] = {}
    if workload == "A":
        d, ff = A["d"], A["ff"]
        p["emb"] = rng.standard_normal((A["vocab"], d)).astype(np.float32)
        for i in range(A["layers"]):
            p[f"l{i}.qkv_w"] = uniform((d, 3 * d), math.sqrt(6.0 / (d + 3 * d)))
            p[f"l{i}.qkv_b"] = zeros(3 * d)
            p[f"l{i}.out_w"] = uniform((d, d), d**-0.5)
            p[f"l{i}.out_b"] = zeros(d)
            p[f"l{i}.ff1_w"] = uniform((d, ff), d**-0.5)
            p[f"l{i}.ff1_b"] = uniform((ff,), d**-0.5)
            p[f"l{i}.ff2_w"] = uniform((ff, d), ff**-0.5)
            p[f"l{i}.ff2_b"] = uniform((d,), ff**-0.5)
            for norm in ("ln1", "ln2"):
                p[f"l{i}.{norm}_w"], p[f"l{i}.{norm}_b"] = ones(d), zeros(d)
        p["head_w"] = uniform((d, A["classes"]), d**-0.5)
        p["head_b"] = uniform((A["classes"],), d**-0.5)
        return p
    d, ff = B["d"], B["ff"]
    p["wte"], p["wpe"] = normal(B["vocab"], d), normal(B["seq"], d)
    for i in range(B["layers"]):
        p[f"l{i}.ln1_w"], p[f"l{i}.ln1_b"] = ones(d), zeros(d)
        p[f"l{i}.qkv_w"], p[f"l{i}.qkv_b"] = normal(d, 3 * d), zeros(3 * d)
        p[f"l{i}.proj_w"], p[f"l{i}.proj_b"] = normal(d, d), zeros(d)
        p[f"l{i}.ln2_w"], p[f"l{i}.ln2_b"] = ones(d), zeros(d)
        p[f"l{i}.fc_w"], p[f"l{i}.fc_b"] = normal(d, ff), zeros(ff)
        p[f"l{i}.fc2_w"], p[f"l{i}.fc2_b"] = normal(ff, d), zeros(d)
    p["lnf_w"], p["lnf_b"] = ones(d), zeros(d)
    p["head_w"] = normal(d, B["vocab"])
    return p


# ----------------------------------------------------------------------------- FLOP counts


def matmul_flops(workload: str) -> dict[str, float]:
    """Matmul FLOPs of one training step, counted analytically.

    Forward: 2*M*N*K per matmul; backward: twice the forward (the gradients of both
    operands). Elementwise work, reductions and the optimizer are not counted.
    """
    cfg = CONFIG[workload]
    d, ff, H = cfg["d"], cfg["ff"], cfg["heads"]
    if workload == "A":
        batch, T, out = A["n"], A["seq"], A["classes"]
    else:
        batch, T, out = B["batch"], B["seq"], B["vocab"]
    tokens, hd = batch * T, d // H
    per_layer = (
        2 * tokens * d * 3 * d  # q, k, v projection
        + 2 * 2 * batch * H * T * T * hd  # scores q k^T and weights @ v
        + 2 * tokens * d * d  # output projection
        + 2 * 2 * tokens * d * ff  # the two feed-forward matmuls
    )
    head_rows = batch if workload == "A" else tokens  # A classifies the mean-pooled vector
    forward = cfg["layers"] * per_layer + 2 * head_rows * d * out
    return {"forward": float(forward), "step": 3.0 * forward}


# ----------------------------------------------------------------------------- fluxion


def fluxion_loss(workload: str):
    """``loss(params, inputs, targets)`` for fluxion, ``params`` a dict of tensors (or
    Parameters): the one model definition every fluxion mode runs."""
    import fluxion as fx
    import fluxion.nn.functional as F

    def heads(t, n, H):  # (n, T, d) -> (n, H, T, d / H)
        return fx.transpose(fx.reshape(t, (n, t.shape[1], H, t.shape[2] // H)), (0, 2, 1, 3))

    def merge(t):  # (n, H, T, hd) -> (n, T, H * hd)
        n, H, T, hd = t.shape
        return fx.reshape(fx.transpose(t, (0, 2, 1, 3)), (n, T, H * hd))

    def attention(x, p, i, proj, causal):
        n, _, d = x.shape
        H = CONFIG[workload]["heads"]
        q, k, v = fx.split(x @ p[f"l{i}.qkv_w"] + p[f"l{i}.qkv_b"], 3, axis=-1)
        y = F.scaled_dot_product_attention(
            heads(q, n, H), heads(k, n, H), heads(v, n, H), is_causal=causal
        )
        return merge(y) @ p[f"l{i}.{proj}_w"] + p[f"l{i}.{proj}_b"]

    def norm(x, p, name):
        return F.layer_norm(x, (x.shape[-1],), p[f"{name}_w"], p[f"{name}_b"], eps=LN_EPS)

    if workload == "A":
        pe = fx.tensor(positions_A())

        def loss_a(p, tokens, labels):
            x = F.embedding(tokens, p["emb"]) + pe
            for i in range(A["layers"]):  # post-norm: x = LN(x + f(x))
                x = norm(x + attention(x, p, i, "out", False), p, f"l{i}.ln1")
                h = fx.relu(x @ p[f"l{i}.ff1_w"] + p[f"l{i}.ff1_b"])
                x = norm(x + (h @ p[f"l{i}.ff2_w"] + p[f"l{i}.ff2_b"]), p, f"l{i}.ln2")
            logits = fx.mean(x, axis=1) @ p["head_w"] + p["head_b"]
            return F.cross_entropy(logits, labels)

        return loss_a

    def loss_b(p, idx, targets):
        x = F.embedding(idx, p["wte"]) + p["wpe"][: idx.shape[1]]
        for i in range(B["layers"]):  # pre-norm: x = x + f(LN(x))
            x = x + attention(norm(x, p, f"l{i}.ln1"), p, i, "proj", True)
            h = F.gelu(norm(x, p, f"l{i}.ln2") @ p[f"l{i}.fc_w"] + p[f"l{i}.fc_b"])
            x = x + (h @ p[f"l{i}.fc2_w"] + p[f"l{i}.fc2_b"])
        logits = norm(x, p, "lnf") @ p["head_w"]
        return F.cross_entropy(fx.reshape(logits, (-1, B["vocab"])), fx.reshape(targets, (-1,)))

    return loss_b


# ----------------------------------------------------------------------------- PyTorch


def torch_model(workload: str, torch, sdpa: bool = False):
    """``(model, loss_fn)``: an ``nn.Module`` as a PyTorch user writes it, loaded with the
    same initial parameters (transposed to PyTorch's (out, in) layout)."""
    nn, F = torch.nn, torch.nn.functional
    p = {k: torch.from_numpy(v.copy()) for k, v in init(workload).items()}

    def load(module_param, value):
        with torch.no_grad():
            module_param.copy_(value)

    def load_linear(linear, w, b=None):
        load(linear.weight, w.T)
        if b is not None:
            load(linear.bias, b)

    if workload == "A":
        d = A["d"]

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(A["vocab"], d)
                self.register_buffer("pe", torch.from_numpy(positions_A()))
                self.layers = nn.ModuleList(
                    nn.TransformerEncoderLayer(
                        d, A["heads"], A["ff"], dropout=0.0, batch_first=True
                    )
                    for _ in range(A["layers"])
                )
                self.head = nn.Linear(d, A["classes"])

            def forward(self, tokens):
                x = self.emb(tokens) + self.pe[: tokens.shape[1]]
                for layer in self.layers:
                    x = layer(x)
                return self.head(x.mean(dim=1))

        model = Classifier()
        load(model.emb.weight, p["emb"])
        for i, layer in enumerate(model.layers):
            load(layer.self_attn.in_proj_weight, p[f"l{i}.qkv_w"].T)
            load(layer.self_attn.in_proj_bias, p[f"l{i}.qkv_b"])
            load_linear(layer.self_attn.out_proj, p[f"l{i}.out_w"], p[f"l{i}.out_b"])
            load_linear(layer.linear1, p[f"l{i}.ff1_w"], p[f"l{i}.ff1_b"])
            load_linear(layer.linear2, p[f"l{i}.ff2_w"], p[f"l{i}.ff2_b"])
            for norm, mod in (("ln1", layer.norm1), ("ln2", layer.norm2)):
                load(mod.weight, p[f"l{i}.{norm}_w"])
                load(mod.bias, p[f"l{i}.{norm}_b"])
        load_linear(model.head, p["head_w"], p["head_b"])

        def loss_a(tokens, labels):
            return F.cross_entropy(model(tokens), labels)

        return model, loss_a

    d, H, T = B["d"], B["heads"], B["seq"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.fc2 = nn.Linear(d, B["ff"]), nn.Linear(B["ff"], d)
            self.register_buffer("causal", torch.tril(torch.ones(T, T, dtype=torch.bool)))

        def attention(self, x):
            n, t, _ = x.shape
            q, k, v = (z.view(n, t, H, d // H).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
            if sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // H)
                scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
                y = F.softmax(scores, dim=-1) @ v
            return self.proj(y.transpose(1, 2).reshape(n, t, d))

        def forward(self, x):
            x = x + self.attention(self.ln1(x))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(B["vocab"], d), nn.Embedding(T, d)
            self.blocks = nn.ModuleList(Block() for _ in range(B["layers"]))
            self.lnf = nn.LayerNorm(d)
            self.head = nn.Linear(d, B["vocab"], bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.lnf(x))

    model = GPT()
    load(model.wte.weight, p["wte"])
    load(model.wpe.weight, p["wpe"])
    for i, block in enumerate(model.blocks):
        for name in ("ln1", "ln2"):
            load(getattr(block, name).weight, p[f"l{i}.{name}_w"])
            load(getattr(block, name).bias, p[f"l{i}.{name}_b"])
        for name in ("qkv", "proj", "fc", "fc2"):
            load_linear(getattr(block, name), p[f"l{i}.{name}_w"], p[f"l{i}.{name}_b"])
    load(model.lnf.weight, p["lnf_w"])
    load(model.lnf.bias, p["lnf_b"])
    load_linear(model.head, p["head_w"])

    def loss_b(idx, targets):
        return F.cross_entropy(model(idx).reshape(-1, B["vocab"]), targets.reshape(-1))

    return model, loss_b


# ----------------------------------------------------------------------------- JAX


def jax_loss(workload: str, jax):
    """``loss(params, inputs, targets)`` in JAX over the same parameter dict."""
    jnp = jax.numpy

    def norm(x, p, name):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + LN_EPS) * p[f"{name}_w"] + p[f"{name}_b"]

    def attention(x, p, i, proj, causal):
        n, t, d = x.shape
        H = CONFIG[workload]["heads"]
        qkv = x @ p[f"l{i}.qkv_w"] + p[f"l{i}.qkv_b"]
        q, k, v = (
            z.reshape(n, t, H, d // H).transpose(0, 2, 1, 3) for z in jnp.split(qkv, 3, axis=-1)
        )
        scores = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(d // H)
        if causal:
            scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
        y = jax.nn.softmax(scores, axis=-1) @ v
        return y.transpose(0, 2, 1, 3).reshape(n, t, d) @ p[f"l{i}.{proj}_w"] + p[f"l{i}.{proj}_b"]

    def xent(logits, targets):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=-1))

    if workload == "A":
        pe = jnp.asarray(positions_A())

        def loss_a(p, tokens, labels):
            x = p["emb"][tokens] + pe
            for i in range(A["layers"]):
                x = norm(x + attention(x, p, i, "out", False), p, f"l{i}.ln1")
                h = jax.nn.relu(x @ p[f"l{i}.ff1_w"] + p[f"l{i}.ff1_b"])
                x = norm(x + h @ p[f"l{i}.ff2_w"] + p[f"l{i}.ff2_b"], p, f"l{i}.ln2")
            return xent(jnp.mean(x, axis=1) @ p["head_w"] + p["head_b"], labels)

        return loss_a

    def loss_b(p, idx, targets):
        x = p["wte"][idx] + p["wpe"][: idx.shape[1]]
        for i in range(B["layers"]):
            x = x + attention(norm(x, p, f"l{i}.ln1"), p, i, "proj", True)
            h = jax.nn.gelu(norm(x, p, f"l{i}.ln2") @ p[f"l{i}.fc_w"] + p[f"l{i}.fc_b"], False)
            x = x + h @ p[f"l{i}.fc2_w"] + p[f"l{i}.fc2_b"]
        logits = norm(x, p, "lnf") @ p["head_w"]
        return xent(logits.reshape(-1, B["vocab"]), targets.reshape(-1))

    return loss_b


def jax_adamw(jax, lr: float):
    """``(init, update)``: AdamW with PyTorch's equations (decoupled decay before the step)."""
    jnp = jax.numpy
    (b1, b2) = BETAS

    def adamw_init(params):
        def zeros():  # distinct buffers: the jitted step donates the state
            return {k: jnp.zeros_like(v) for k, v in params.items()}

        return (jnp.zeros((), jnp.int32), zeros(), zeros())

    def adamw_update(params, grads, state):
        step, m, v = state
        t = (step + 1).astype(jnp.float32)
        bc1, bc2_sqrt = 1 - b1**t, jnp.sqrt(1 - b2**t)
        new_p, new_m, new_v = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            p = p * (1 - lr * WEIGHT_DECAY)
            new_m[k] = m[k] + (1 - b1) * (g - m[k])
            new_v[k] = v[k] * b2 + (1 - b2) * g * g
            new_p[k] = p - (lr / bc1) * new_m[k] / (jnp.sqrt(new_v[k]) / bc2_sqrt + EPS)
        return new_p, (step + 1, new_m, new_v)

    return adamw_init, adamw_update
