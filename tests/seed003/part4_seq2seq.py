# Seed 003, Part IV: the encoder-decoder on the addition task: teacher forcing (shift_right
# with F.pad), cross-attention, causal masks (tril, masked_fill), a loss of one-hot targets,
# the tutorial's run_training (Adam, state_dict round trips) and run_evaluation, with
# greedy autoregressive decoding through index_put. The tokenizer is the tutorial's
# TensorFlow one in spirit (characters to ids). torch.for_loop, which the tutorial calls,
# does not exist in PyTorch: the decoding loop here is a Python loop.
# Run by tests/test_seed_003.py, which sets MAKE_MODEL.
import math
import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


class AdditionTask:
    def sample_batch(self, batch_size: int, length: int):
        length_n = np.random.randint(1, length - 1, size=(batch_size,))
        length_m = length - 1 - length_n
        integer_n = [random.randint(1, 10 ** int(n) - 1) for n in length_n]
        integer_m = [random.randint(1, 10 ** int(m) - 1) for m in length_m]
        integer_sum = list(map(sum, zip(integer_n, integer_m)))
        expressions = [f"{str(a)[::-1]}+{str(b)[::-1]}" for a, b in zip(integer_n, integer_m)]
        expressions = [a + "0" * (length - len(a)) for a in expressions]
        results = [str(r) + "#" + "0" * (length - len(str(r))) for r in integer_sum]
        return {"input": expressions, "output": results}

    vocab_size = 12


TOKENS = {c: i + 1 for i, c in enumerate("0123456789+#")}


def preprocess_data(batch):
    tokens_input = (
        torch.tensor([[TOKENS[c] for c in s] for s in batch["input"]], dtype=torch.long) - 1
    )
    tokens_output = (
        torch.tensor([[TOKENS[c] for c in s] for s in batch["output"]], dtype=torch.long) - 1
    )
    tokens_input = torch.nn.utils.rnn.pad_sequence(tokens_input, batch_first=True)
    tokens_output = torch.nn.utils.rnn.pad_sequence(tokens_output, batch_first=True)
    return dict(input=tokens_input, output=tokens_output)


def _pointwise_loss_fn(output, target):
    target_one_hot = F.one_hot(target, num_classes=output.shape[-1])
    return -torch.sum(target_one_hot * F.log_softmax(output, dim=-1), dim=-1)


def loss_fn(output, target):
    return torch.mean(torch.sum(_pointwise_loss_fn(output, target), dim=-1))


def accuracy_fn(output, target):
    return torch.mean((torch.argmax(output, dim=-1) == target).float())


def shift_right(x, vocab_size):
    if x.ndim == 1:
        x = x.unsqueeze(1)
    return F.pad(x[:, :-1], (1, 0), mode="constant", value=vocab_size)


class SelfAttention(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, x):
        query, key, value = self.query(x), self.key(x), self.value(x)
        scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(self.embed_dim)
        return torch.matmul(nn.functional.softmax(scores, dim=-1), value)


class MaskedSelfAttention(SelfAttention):
    def forward(self, x, mask):
        query, key, value = self.query(x), self.key(x), self.value(x)
        scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(self.embed_dim)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.matmul(nn.functional.softmax(scores, dim=-1), value)


class CrossAttention(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)

    def forward(self, inputs_q, inputs_kv):
        query, key, value = self.query(inputs_q), self.key(inputs_kv), self.value(inputs_kv)
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.embed_dim)
        weights = nn.functional.softmax(scores, dim=-1)
        return torch.matmul(weights, value)


def mlp(embed_dim, mlp_dim):
    return nn.Sequential(nn.Linear(embed_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, embed_dim))


class TransformerEncoderBlock(nn.Module):
    def __init__(self, embed_dim, mlp_dim):
        super().__init__()
        self.self_attention = SelfAttention(embed_dim)
        self.layer_norm1 = nn.LayerNorm(embed_dim)
        self.mlp = mlp(embed_dim, mlp_dim)
        self.layer_norm2 = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.layer_norm1(self.self_attention(x))
        return self.layer_norm2(x + self.mlp(x))


class MaskedTransformerDecoderBlock(nn.Module):
    def __init__(self, embed_dim, mlp_dim):
        super().__init__()
        self.self_attention = MaskedSelfAttention(embed_dim)
        self.cross_attention = CrossAttention(embed_dim)
        self.layer_norm1 = nn.LayerNorm(embed_dim)
        self.mlp = mlp(embed_dim, mlp_dim)
        self.layer_norm2 = nn.LayerNorm(embed_dim)

    def forward(self, enc_emb, dec_emb, mask):
        x = self.layer_norm1(self.self_attention(dec_emb, mask))
        y = self.layer_norm1(self.cross_attention(x, enc_emb))
        return self.layer_norm2(self.mlp(y))


class Embedded(nn.Module):
    def __init__(self, vocab_size, max_seq_length, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.pos_embedding = nn.Embedding(max_seq_length, embed_dim)

    def forward(self, x):
        x = self.embedding(x)
        positions = torch.arange(x.shape[1], device=x.device)
        return x + self.pos_embedding(positions) / math.sqrt(self.embed_dim)


class MaskedTransformer(nn.Module):
    def __init__(self, num_layers, max_seq_length, vocab_size, embed_dim=16, mlp_dim=32):
        super().__init__()
        self.vocab_size = vocab_size
        self.enc_embed = Embedded(vocab_size, max_seq_length, embed_dim)
        self.dec_embed = Embedded(vocab_size + 1, max_seq_length, embed_dim)
        self.encoder = nn.ModuleList(
            [TransformerEncoderBlock(embed_dim, mlp_dim) for _ in range(num_layers)]
        )
        self.decoder = nn.ModuleList(
            [MaskedTransformerDecoderBlock(embed_dim, mlp_dim) for _ in range(num_layers)]
        )
        self.linear_output = nn.Linear(embed_dim, vocab_size)

    def forward(self, inputs, targets, sample):
        encoded = self.enc_embed(inputs)
        for block in self.encoder:
            encoded = block(encoded)
        x = self.dec_embed(shift_right(targets, self.vocab_size))
        batch_size, output_sequence_length, embedding_size = x.shape
        causal_mask = torch.tril(
            torch.ones((output_sequence_length, output_sequence_length), dtype=torch.bool)
        )
        causal_mask = causal_mask.to(encoded.device)
        for block in self.decoder:
            x = block(encoded, x, causal_mask)
        return self.linear_output(x)


def sinusoid_position_encoding(sequence_length, hidden_size, max_timescale=1e4, min_timescale=2.0):
    freqs = np.arange(0, hidden_size, min_timescale)
    inv_freq = max_timescale ** (-freqs / hidden_size)
    pos_seq = np.arange(sequence_length, 0, -1.0)
    sinusoid_inp = np.einsum("i,j->ij", pos_seq, inv_freq)
    return np.concatenate([np.sin(sinusoid_inp), np.cos(sinusoid_inp)], axis=-1)


class FullTransformer(MaskedTransformer):
    """The tutorial's last model, as written: sinusoidal encodings computed (into an unused
    h, as there) and a causal mask of shape (batch, 1, L, L), which broadcasts the decoder's
    activations to (batch, batch, L, E) -- PyTorch's broadcasting, followed."""

    def forward(self, inputs, targets, sample):
        encoded = self.enc_embed.embedding(inputs)
        batch_size, sequence_length, embedding_size = encoded.shape
        pos_encodings = sinusoid_position_encoding(sequence_length, embedding_size)
        pos_encodings = torch.Tensor(pos_encodings).to(encoded.device)
        h = encoded + pos_encodings  # noqa: F841  (unused, as in the tutorial)
        for block in self.encoder:
            encoded = block(encoded)
        x = self.dec_embed.embedding(shift_right(targets, self.vocab_size))
        batch_size, output_sequence_length, embedding_size = x.shape
        causal_mask = torch.tril(
            torch.ones(
                (batch_size, 1, output_sequence_length, output_sequence_length), dtype=torch.bool
            )
        )
        for block in self.decoder:
            x = block(encoded, x, causal_mask.to(encoded.device))
        return self.linear_output(x)


class AutoregressiveTransformer(nn.Module):
    def __init__(self, num_layers, max_seq_length, vocab_size, base=MaskedTransformer):
        super().__init__()
        self.model = base(num_layers, max_seq_length, vocab_size)

    def forward(self, inputs, targets, sample):
        if not sample:
            return self.model(inputs, targets, sample)
        predictions = torch.zeros(targets.shape + (self.model.vocab_size,))
        for idx in range(targets.shape[1]):
            logits = self.model(inputs, torch.argmax(predictions, dim=-1), sample)
            rows = torch.arange(targets.shape[0])
            predictions = predictions.index_put(
                indices=(rows, torch.full((targets.shape[0],), idx, dtype=torch.long)),
                values=logits[:, idx],
            )
        return predictions


def _update_parameters(params, batch, model, optimizer, opt_state):
    optimizer.zero_grad()
    model.load_state_dict(params)
    model.train()
    outputs = model(inputs=batch["input"], targets=batch["output"], sample=False)
    loss = loss_fn(outputs, batch["output"])
    accuracy = accuracy_fn(outputs, batch["output"])
    loss.backward()
    optimizer.step()
    return model.state_dict(), optimizer.state_dict(), (loss.item(), accuracy.item())


def run_training(
    *,
    task: Any,
    model,
    max_sequence_length,
    train_steps,
    seed=0,
    log_frequency=1,
    batch_size=16,
    learning_rate=1e-3,
):
    random.seed(seed)
    np.random.seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = optim.Adam(model.parameters(), lr=learning_rate)
    params, opt_state = model.state_dict(), optimizer.state_dict()
    for step in range(train_steps + 1):
        length = random.choice(list(range(3, max_sequence_length + 1)))
        train_batch = preprocess_data(task.sample_batch(length=length, batch_size=batch_size))
        train_batch["input"] = train_batch["input"].to(device)
        train_batch["output"] = train_batch["output"].to(device)
        params, opt_state, (train_loss, train_accuracy) = _update_parameters(
            params=params, batch=train_batch, model=model, optimizer=optimizer, opt_state=opt_state
        )
        if log_frequency > 0 and step % log_frequency == 0:
            print(
                {
                    "step": step,
                    "train_loss": float(train_loss),
                    "train_accuracy": float(train_accuracy),
                }
            )
    return params


def run_evaluation(
    *, model, params, task, max_test_length, sub_batch_size=8, seed=1, is_autoregressive=False
):
    random.seed(seed)
    np.random.seed(seed)
    model.load_state_dict(params)
    model.eval()
    for length in range(3, max_test_length + 1):
        batch = preprocess_data(task.sample_batch(sub_batch_size, length))
        with torch.no_grad():
            outputs = model(
                inputs=batch["input"], targets=batch["output"], sample=is_autoregressive
            )
            accuracy = float(accuracy_fn(outputs, batch["output"]).cpu().numpy())
        print({"length": length, "accuracy": accuracy})


toy = torch.tensor(
    [[[1.0, 2.0, 3.0, 0.5], [0.1, 0.5, 1.5, 2.0], [2.5, 1.0, 0.2, 0.1]]], dtype=torch.float32
)
print("pointwise loss", _pointwise_loss_fn(toy, torch.Tensor([[0, 3, 2]]).long()))
print("padded", F.pad(torch.argmax(toy, dim=-1)[:, :-1], (1, 0), mode="constant", value=4))
print("causal mask", torch.tril(torch.ones((3, 3), dtype=torch.bool)))
