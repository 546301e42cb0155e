"""The seed notebook's TransformerClassifier, written as there (``import fluxion as nb``):
it has the notebook's parameter count, trains PyTorch-style (backward() and a manual
SGD step on p.data) and gives the same gradients JAX-style (value_and_grad)."""

from __future__ import annotations

import numpy as np

import fluxion as nb


def make_positional_encoding(max_len: int, d_model: int) -> np.ndarray:
    pe = np.zeros((max_len, d_model), dtype=np.float32)
    position = np.arange(0, max_len, dtype=np.float32)[:, np.newaxis]
    div_term = np.exp(np.arange(0, d_model, 2, dtype=np.float32) * -(np.log(10000.0) / d_model))
    pe[:, 0::2] = np.sin(position * div_term)
    pe[:, 1::2] = np.cos(position * div_term)
    return pe


class TransformerClassifier(nb.nn.Module):
    def __init__(
        self,
        vocab_size,
        d_model,
        num_heads,
        num_layers,
        num_classes,
        max_len=128,
        dim_feedforward=128,
    ):
        super().__init__()
        self.d_model = d_model
        self.embedding = nb.nn.Embedding(vocab_size, d_model)
        pe_np = make_positional_encoding(max_len, d_model)
        self.pe = nb.Tensor.from_dlpack(pe_np)  # fixed, not learned
        self.layers = []
        for i in range(num_layers):
            layer = nb.nn.TransformerEncoderLayer(
                d_model=d_model, num_heads=num_heads, dim_feedforward=dim_feedforward, dropout=0.0
            )
            setattr(self, f"encoder_{i}", layer)
            self.layers.append(layer)
        self.classifier = nb.nn.Linear(d_model, num_classes)

    def forward(self, token_ids):
        x = self.embedding(token_ids)
        seq_len = token_ids.shape[-1]
        pe = nb.slice_tensor(self.pe, start=(0, 0), size=(seq_len, self.d_model))
        x = x + pe
        for layer in self.layers:
            x = layer(x)
        return self.classifier(nb.mean(x, axis=-2))


def _data(n_samples=64, vocab_size=20, seq_len=8, num_classes=3):
    rng = np.random.default_rng(42)
    token_ids_np = rng.integers(0, vocab_size, (n_samples, seq_len)).astype(np.int64)
    labels_np = (token_ids_np.sum(axis=1) % num_classes).astype(np.int64)
    onehot = np.zeros((n_samples, num_classes), dtype=np.float32)
    onehot[np.arange(n_samples), labels_np] = 1.0
    return nb.Tensor.from_dlpack(token_ids_np), nb.Tensor.from_dlpack(onehot), labels_np


def _model():
    nb.manual_seed(0)
    return TransformerClassifier(
        vocab_size=20,
        d_model=32,
        num_heads=4,
        num_layers=2,
        num_classes=3,
        max_len=8,
        dim_feedforward=64,
    )


def loss_fn(model, tokens, targets):
    return nb.nn.functional.cross_entropy_loss(model(tokens), targets)


def test_parameter_count_and_names_match_the_notebook():
    model = _model()
    assert sum(p.numel() for p in model.parameters()) == 17827  # the notebook's count
    names = list(model.state_dict())
    assert names[0] == "pe" and "encoder_1.self_attn.in_proj_weight" in names
    assert not any(n.startswith("layers.") for n in names)  # the list only aliases encoder_i
    assert nb.nn.module.trainable_mask(model).count(False) == 1  # pe is a buffer


def test_trains_pytorch_style():
    model = _model()
    tokens, labels, labels_np = _data()
    losses = []
    for _ in range(30):
        model.train()
        model.zero_grad()
        loss = nb.nn.functional.cross_entropy_loss(model(tokens), labels)
        loss.backward()
        with nb.no_grad():
            for p in model.parameters():
                p.data = p.data - 0.05 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    model.eval()
    pred = nb.argmax(model(tokens), axis=-1)
    accuracy = nb.mean(
        nb.cast(nb.equal(pred, nb.Tensor.from_dlpack(labels_np)), nb.DType.float32)
    ).item()
    assert 0.0 <= accuracy <= 1.0


def test_functional_gradients_equal_backward():
    model = _model()
    tokens, labels, _ = _data()
    model.eval()  # as the notebook does before adamw_init
    model.zero_grad()
    loss = loss_fn(model, tokens, labels)
    loss.backward()
    value, grads = nb.value_and_grad(loss_fn, argnums=0)(model, tokens, labels)
    assert type(grads) is TransformerClassifier
    assert abs(value.item() - loss.item()) < 1e-6
    assert nb.tree_structure(grads) == nb.tree_structure(model.train())
    for (name, p), (gname, g) in zip(model.named_parameters(), grads.named_parameters()):
        assert name == gname
        np.testing.assert_allclose(g.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
    # a functional SGD step over the whole tree, buffers left alone by trainable_mask
    mask = nb.nn.module.trainable_mask(model)
    leaves, tree = nb.tree_flatten(model)
    new = [p - 0.05 * g if m else p for p, g, m in zip(leaves, nb.tree_leaves(grads), mask)]
    stepped = nb.tree_unflatten(tree, new)
    assert stepped.pe is model.pe
    assert loss_fn(stepped, tokens, labels).item() < loss.item()
