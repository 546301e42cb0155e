# Seed 003, Part III: the "difference" classification task, the tutorial's train() loop
# (TensorDataset, DataLoader, Adam with weight decay, CrossEntropyLoss, clip_grad_norm_,
# a compiled train step, accuracy with argmax(dim=1)) and its SimpleTransformer with
# self-attention, MLPs, learned positions, layer norm, skip connections. The tokenizer is
# the tutorial's TensorFlow one in spirit: characters to ids (TF is not imported here).
# Run by tests/test_seed_003.py, which sets SHUFFLE and MAKE_MODEL before train() runs.
import math
import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader, TensorDataset

torch.set_default_dtype(torch.float32)
torch.set_float32_matmul_precision("high")
seed = 2024
np.random.seed(seed)
random.seed(seed)


def sample_difference_dataset(dataset_size, lengths, k):
    data_all = []
    for length in lengths:
        length_n = np.random.randint(1, length - 1, size=(dataset_size,))
        length_m = length - 1 - length_n
        integer_n = [random.randint(1, k ** int(n) - 1) for n in length_n]
        integer_m = [random.randint(1, k ** int(m) - 1) for m in length_m]
        diff_sign = [int(x > y) for x, y in zip(integer_n, integer_m)]
        expressions = [f"{str(a)[::-1]}-{str(b)[::-1]}" for a, b in zip(integer_n, integer_m)]
        data_all.extend(zip(expressions, diff_sign))
    data_all = sorted(set(data_all))
    random.shuffle(data_all)
    return data_all


MAX_TRAIN_LENGTH, MAX_TEST_LENGTH = 6, 8
train_ds = sample_difference_dataset(20, list(range(3, MAX_TRAIN_LENGTH + 1)), 10)
test_ds = sample_difference_dataset(10, list(range(MAX_TRAIN_LENGTH + 1, MAX_TEST_LENGTH + 1)), 10)
vocab = {c: i + 1 for i, c in enumerate("0123456789-")}
vocab_size, max_len, pad_value = 12, MAX_TEST_LENGTH + 1, 0


def preprocess_function(text, label):
    tokens = [vocab[c] for c in text]
    tokens = tokens + [pad_value] * (max_len - len(tokens))
    return torch.tensor(tokens), torch.tensor([label])


x_train, y_train = zip(*(preprocess_function(t, y) for t, y in train_ds))
x_test, y_test = zip(*(preprocess_function(t, y) for t, y in test_ds))
x_train, y_train = torch.stack(x_train), torch.cat(y_train)
x_test, y_test = torch.stack(x_test), torch.cat(y_test)
print("x_train.shape: ", x_train.shape, "y_train.shape: ", y_train.shape)


class TrainState:
    def __init__(self, model: nn.Module, optimizer: Optimizer, step: int = 0, **kwargs: Any):
        self.model, self.optimizer, self.step, self.metadata = model, optimizer, step, kwargs


def train(Model, epochs=2, batch_size=32, lr=3e-3, wd=1e-5, **kwargs):
    model = MAKE_MODEL(Model, **kwargs)  # noqa: F821  (set by the test: the same weights)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    state = TrainState(model=model, optimizer=optimizer)

    def loss_fn(params, x, y):
        model.load_state_dict(params)
        logits = model(x)
        return nn.CrossEntropyLoss()(logits, y)

    def train_step(state, x, y):
        state.model.train()
        loss = loss_fn(state.model.state_dict(), x, y)
        state.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), max_norm=1.0)
        state.optimizer.step()
        return state, loss.item()

    def report(state, x, y):
        x, y = x.to(device), y.to(device)
        state.model.eval()
        with torch.no_grad():
            logits = state.model(x)
            predictions = torch.argmax(logits, dim=1)
            acc = torch.sum(predictions == y).item()
        return acc

    train_step_jit = torch.compile(train_step)
    train_loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=batch_size,
        shuffle=SHUFFLE,  # noqa: F821
    )

    test_accuracy = 0
    with torch.no_grad():
        for i in range(0, len(x_test), batch_size):
            test_accuracy += report(state, x_test[i : i + batch_size], y_test[i : i + batch_size])
    print(f"before training: test accuracy {test_accuracy / len(x_test):.6f}")
    for epoch in range(epochs):
        model.train()
        for x_batch, y_batch in train_loader:
            state, loss = train_step_jit(state, x_batch.to(device), y_batch.to(device))
            print(f"loss {loss:.6f}")
        train_accuracy = 0
        for i in range(0, len(x_train), batch_size):
            train_accuracy += report(
                state, x_train[i : i + batch_size], y_train[i : i + batch_size]
            )
        print(f"Epoch: {epoch + 1} train accuracy {train_accuracy / len(x_train):.6f}")
    return model


class SelfAttention(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x):
        query, key, value = self.query(x), self.key(x), self.value(x)
        attention_scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(self.embed_dim)
        attention_weights = nn.functional.softmax(attention_scores, dim=-1)
        return torch.matmul(attention_weights, value)


class TransformerEncoderBlock(nn.Module):
    def __init__(self, embed_dim, mlp_dim):
        super().__init__()
        self.self_attention = SelfAttention(embed_dim)
        self.layer_norm1 = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, embed_dim)
        )
        self.layer_norm2 = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.self_attention(x)
        x = self.layer_norm1(x)
        y = self.mlp(x)
        x = x + y
        return self.layer_norm2(x)


class SimpleTransformer(nn.Module):
    def __init__(
        self, *, vocab_size, max_seq_length, num_layers, mlp_dim=64, embed_dim=16, num_classes=2
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.pos_embedding = nn.Embedding(max_seq_length, embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.transformer_blocks = nn.ModuleList(
            [TransformerEncoderBlock(embed_dim, mlp_dim) for _ in range(num_layers)]
        )

    def forward(self, x):
        x = self.embedding(x)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + self.pos_embedding(positions) / math.sqrt(self.embed_dim)
        for block in self.transformer_blocks:
            x = block(x)
        cls_token = x[:, -1, :]
        return self.classifier(cls_token)


KWARGS = dict(embed_dim=16, mlp_dim=64, vocab_size=vocab_size, max_seq_length=max_len, num_layers=2)
