"""Every bad argument of the public API is named (issue 20, part 6).

A table of public functions and constructors, each with one call that works (``VALID``).
From each signature, every parameter whose name says what it holds (a size, a shape, an
axis, a probability, a learning rate, betas, a temperature, a seed, a path, a dtype...)
gets the bad values of that kind; hand-written cases add what names alone cannot say
(structural mismatches, bad tensors, paths that exist but cannot be used).

Each bad call must raise a fluxion error (``FluxionError``) that is also the built-in a
Python user would catch (TypeError for a wrong type, ValueError for a wrong value,
IndexError for an axis out of range, MemoryError for an allocation larger than the
machine, OSError for an unusable path), and whose message names the function, the
argument and the value given.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import FluxionError

NAN, INF = math.nan, math.inf
HUGE = 2**40  # elements: terabytes in any dtype, more than any machine holds


class New:
    """A valid argument made afresh for each call (models, optimizers, tensors that a call
    may change)."""

    def __init__(self, make):
        self.make = make


def ones(*shape, dtype="float32"):
    return fx.asarray(np.ones(shape, dtype))


def ints(*values):
    return fx.asarray(np.array(values, np.int64))


def param():
    return fx.nn.Parameter(fx.ones((2, 3)))


def trained_param():
    p = fx.nn.Parameter(fx.ones(3))
    p.grad = fx.ones(3)
    return p


def tiny_gpt():
    fx.manual_seed(0)
    return fx.models.GPT(vocab_size=10, d_model=8, num_heads=2, num_layers=1, max_len=16)


def tiny_seq2seq():
    fx.manual_seed(0)
    return fx.models.Seq2Seq(10, 10, d_model=8, num_heads=2, num_layers=1, max_len=16)


GPT = tiny_gpt()
SEQ2SEQ = tiny_seq2seq()
KEY = fx.random.key(0)

# ----------------------------------------------------------------------------- bad values

# kind -> [(bad value, the built-in the error must subclass)]
SIZE = [(-1, ValueError), (2.5, TypeError), ("4", TypeError), (None, TypeError)]
FINITE = [(NAN, ValueError), (INF, ValueError), ("1", TypeError), (None, TypeError)]
DTYPE = [("float128", TypeError), ("timedelta64", TypeError), (5, TypeError), (object, TypeError)]
BAD = {
    "size": SIZE,
    "count": SIZE + [(0, ValueError)],
    "shape": [
        (-1, ValueError),
        ((2, -3), ValueError),
        ((2.5, 3), TypeError),
        (None, TypeError),
        ("ab", TypeError),
    ],
    "axis": [(7, IndexError), (-8, IndexError), (1.5, TypeError), ("0", TypeError)],
    "int": [(1.5, TypeError), ("1", TypeError)],
    "probability": [
        (-0.1, ValueError),
        (1.5, ValueError),
        (NAN, ValueError),
        ("0.5", TypeError),
        (None, TypeError),
    ],
    "rate": [
        (-1.0, ValueError),
        (NAN, ValueError),
        (INF, ValueError),
        ("0.1", TypeError),
        (None, TypeError),
    ],  # fmt: skip
    "nonnegative": [(-1.0, ValueError), (NAN, ValueError), ("0.1", TypeError), (None, TypeError)],
    "norm_type": [
        (0.0, ValueError),
        (-2.0, ValueError),
        (NAN, ValueError),
        ("2", TypeError),
        (None, TypeError),
    ],  # fmt: skip
    "finite": FINITE,
    "betas": [
        ((0.9,), ValueError),
        ((1.0, 0.999), ValueError),
        ((0.9, -0.1), ValueError),
        ((NAN, 0.999), ValueError),
        (0.9, TypeError),
        (("a", 0.9), TypeError),
    ],
    "top_k": [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("3", TypeError)],
    "top_p": [(0.0, ValueError), (1.5, ValueError), (NAN, ValueError), ("0.9", TypeError)],
    "seed": [(1.5, TypeError), ("abc", TypeError), (None, TypeError), (2**64, ValueError)],
    "path": [(None, TypeError), (999, TypeError), (["a"], TypeError)],  # 999: no open file
    "dtype": DTYPE,
    "float_dtype": DTYPE + [("int32", TypeError)],
    "choice": [("bogus", ValueError), (3, ValueError)],
    "token": [(10**6, ValueError), (1.5, TypeError), ("1", TypeError)],
    "key": [(None, TypeError), (5, TypeError), (ones(2), TypeError)],
}
# what an argument of each kind may not ask for: more memory than the machine has
HUGE_BAD = {"size": (HUGE, MemoryError), "count": (HUGE, MemoryError),
            "shape": ((HUGE, 4), MemoryError)}  # fmt: skip

# parameter name -> kind, for every target (a target may override or drop one)
NAME_KINDS = {
    **dict.fromkeys(
        ["shape", "size", "reps", "normalized_shape"],
        "shape",
    ),
    **dict.fromkeys(
        [
            "num",
            "n",
            "m",
            "max_len",
            "in_features",
            "out_features",
            "num_embeddings",
            "embedding_dim",
            "embed_dim",
            "d_model",
            "dim_feedforward",
            "kdim",
            "vdim",
            "max_new_tokens",
            "num_layers",
            "num_encoder_layers",
            "num_decoder_layers",
            "repeats",
            "max_bytes",
            "warmup_steps",
            "decay_steps",
            "transition_steps",
            "num_channels",
            "num_classes",
        ],
        "size",
    ),  # fmt: skip
    **dict.fromkeys(
        [
            "num_heads",
            "nhead",
            "num_features",
            "num_groups",
            "chunks",
            "vocab_size",
            "beam_size",
            "batch_size",
            "seq_len",
            "step_size",
            "k",
            "src_vocab",
            "tgt_vocab",
            "vocab",
            "dim",
        ],
        "count",
    ),  # fmt: skip
    **dict.fromkeys(
        ["axis", "axis1", "axis2", "start_dim", "end_dim", "source", "destination"], "axis"
    ),
    **dict.fromkeys(
        ["p", "dropout", "dropout_p", "test_fraction", "val_fraction", "label_smoothing"],
        "probability",
    ),
    **dict.fromkeys(
        [
            "lr",
            "momentum",
            "dampening",
            "weight_decay",
            "eps",
            "layer_norm_eps",
            "temperature",
            "std",
            "gamma",
        ],
        "rate",
    ),  # fmt: skip
    **dict.fromkeys(["max_norm", "clip_value"], "nonnegative"),
    **dict.fromkeys(
        [
            "mean",
            "a",
            "b",
            "low",
            "high",
            "minval",
            "maxval",
            "gain",
            "start",
            "stop",
            "init_value",
            "end_value",
            "peak_value",
            "final_value",
            "base",
            "beta",
            "threshold",
            "scale",
            "length_penalty",
            "ddof",
            "correction",
            "step",
        ],
        "finite",
    ),  # fmt: skip
    **dict.fromkeys(
        ["reduction", "approximate", "mode", "nonlinearity", "pos", "pooling", "activation"],
        "choice",
    ),
    **dict.fromkeys(["eos_id", "bos_id", "pad_id", "padding_idx"], "token"),
    "ignore_index": "int",
    "norm_type": "norm_type",
    "betas": "betas",
    "top_k": "top_k",
    "top_p": "top_p",
    "seed": "seed",
    "path": "path",
    "text_file": "path",
    "dtype": "dtype",
    "key": "key",
}


class Target:
    """A public callable, one call of it that works, and how its parameters are read.

    ``name``: its public path under ``fx``; ``valid``: argument name -> a value that works
    (a ``New`` for one made per call; a ``*shape`` parameter takes a tuple); ``kinds``:
    overrides of ``NAME_KINDS`` (None: not generated); ``huge``: sizes and shapes allocate
    (True, or the names of those that do), so a huge one must raise MemoryError; ``op``: the
    name the message must give.
    """

    def __init__(self, name, valid, kinds=None, huge=False, op=None, run=None):
        self.name, self.valid, self.kinds, self.huge = name, valid, kinds or {}, huge
        obj = fx
        for part in name.split("."):
            obj = getattr(obj, part)
        self.fn = obj
        self.op = op or name.split(".")[-1]
        self.run = run or (lambda result: result)

    def parameters(self):
        return inspect.signature(self.fn).parameters

    def call(self, **changed):
        args, star = [], ()
        kwargs = {}
        for name, p in self.parameters().items():
            if name not in self.valid and name not in changed:
                continue
            if name == "axis" and "dim" in changed:
                continue  # dim is PyTorch's name for the axis: a call gives one of them
            value = changed[name] if name in changed else self.valid[name]
            value = value.make() if isinstance(value, New) else value
            if p.kind is p.VAR_POSITIONAL:
                star = value if name not in changed else (value,)
            elif p.kind is p.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[name] = value
        return self.run(self.fn(*args, *star, **kwargs))

    def kind(self, name):
        if name in self.kinds:
            return self.kinds[name]
        if name == "dim" and "axis" in self.parameters():
            return "axis"  # an op's dim is its axis (PyTorch's name), not a layer's width
        return NAME_KINDS.get(name)


X = New(lambda: ones(2, 3))
OPT = {"params": New(lambda: [trained_param()])}
TARGETS = [
    # ------------------------------------------------------------------ creation
    *[Target(f, {"shape": (2, 3)}, {"dtype": None}, huge=True) for f in ("zeros", "ones", "empty")],
    Target("zeros", {"shape": (2,), "dtype": "float32"}, {"shape": None}),
    Target("full", {"shape": (2, 3), "fill_value": 1.0}, huge=True),
    Target("zeros_like", {"x": X, "dtype": None}),
    Target("full_like", {"x": X, "fill_value": 0.0, "dtype": None}),
    Target("arange", {"start": 0, "stop": 5, "step": 1}, {"stop": "finite", "dtype": None}),
    Target("arange", {"start": 3}, {"stop": None, "step": None, "dtype": None}),
    Target("linspace", {"start": 0.0, "stop": 1.0, "num": 5}, huge=True),
    Target("eye", {"n": 3, "m": 4, "k": 0}, {"k": "int"}, huge=True),
    Target("tril", {"x": X, "k": 0}, {"k": "int"}),
    Target("triu", {"x": X, "k": 0}, {"k": "int"}),
    Target("tensor", {"data": [1.0, 2.0], "dtype": None}),
    Target("asarray", {"data": [1.0, 2.0], "dtype": None}),
    Target("astype", {"x": X, "dtype": "float64"}),
    # ------------------------------------------------------------------ random
    Target("manual_seed", {"seed": 0}),
    Target("random.key", {"seed": 0}),
    Target("random.split", {"key": KEY, "num": 2}, huge=True),
    Target("random.bits", {"key": KEY, "shape": (2,)}, huge=True),
    Target("random.uniform", {"key": KEY, "shape": (2,), "minval": 0.0, "maxval": 1.0},
           {"dtype": "float_dtype"}, huge=True),  # fmt: skip
    Target("random.normal", {"key": KEY, "shape": (2,)}, {"dtype": "float_dtype"}, huge=True),
    Target("random.randint", {"key": KEY, "shape": (2,), "minval": 0, "maxval": 5},
           {"minval": "int", "maxval": "int"}, huge=True),  # fmt: skip
    Target("random.bernoulli", {"key": KEY, "p": 0.5, "shape": (2,)}, huge=True),
    Target("random.categorical", {"key": KEY, "logits": X, "axis": -1}),
    Target("randn", {"shape": (2, 3)}, {"dtype": "float_dtype"}, huge=True),
    Target("rand", {"shape": (2, 3)}, {"dtype": "float_dtype"}, huge=True),
    Target("randint", {"low": 0, "high": 5, "size": (2,)}, {"low": "int", "high": "int"},
           huge=True),  # fmt: skip
    Target("normal", {"mean": 0.0, "std": 1.0, "size": (2,)}, {"dtype": "float_dtype"}, huge=True),
    Target("uniform", {"low": 0.0, "high": 1.0, "size": (2,)}, {"dtype": "float_dtype"},
           huge=True),  # fmt: skip
    # ------------------------------------------------------------------ shapes and axes
    Target("reshape", {"x": X, "shape": (3, 2)}, {"shape": None}),
    Target("broadcast_to", {"x": X, "shape": (4, 2, 3)}),
    Target("expand_dims", {"x": X, "axis": 0}),
    Target("squeeze", {"x": New(lambda: ones(1, 3)), "axis": 0}),
    Target("flatten", {"x": X, "start_dim": 0, "end_dim": -1}),
    Target("transpose", {"x": X, "axes": (1, 0)}, {"axes": "axis"}),
    Target("moveaxis", {"x": X, "source": 0, "destination": 1}),
    Target("swapaxes", {"x": X, "axis1": 0, "axis2": 1}),
    Target("concatenate", {"tensors": New(lambda: [ones(2, 3), ones(2, 3)]), "axis": 0}),
    Target("stack", {"tensors": New(lambda: [ones(2, 3), ones(2, 3)]), "axis": 0}),
    Target("split", {"x": X, "indices_or_sections": 2, "axis": 0}),
    Target("chunk", {"x": X, "chunks": 2, "axis": 0}),
    Target("flip", {"x": X, "axis": 0}),
    Target("tile", {"x": X, "reps": (2, 1)}, huge=True),
    Target("repeat", {"x": X, "repeats": 2, "axis": 0}, huge=True),
    Target("pad", {"x": X, "pad_width": 1, "mode": "constant"}),
    Target("autocast", {"dtype": "bfloat16"}),  # dtype: any bad spelling
    # ------------------------------------------------------------------ reductions, indexing
    *[Target(f, {"x": X, "axis": 0}) for f in
      ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "all", "any", "logsumexp",
       "cumsum", "softmax", "log_softmax", "sort", "argsort")],  # fmt: skip
    Target("var", {"x": X, "axis": 0, "ddof": 0}),
    Target("std", {"x": X, "axis": 0, "ddof": 1}),
    Target("top_k", {"x": X, "k": 2, "axis": -1}, {"k": "size"}),
    Target("one_hot", {"indices": ints(0, 2), "num_classes": 3}, huge=True),
    Target("take", {"x": X, "indices": ints(0, 1), "axis": 1}),
    Target("take_along_axis", {"x": X, "indices": New(lambda: fx.zeros((2, 1), dtype="int64")),
                               "axis": 1}),  # fmt: skip
    Target("gather", {"x": X, "dim": 1, "index": New(lambda: fx.zeros((2, 1), dtype="int64"))},
           {"dim": "axis"}),  # fmt: skip
    Target("gelu", {"x": X, "approximate": "none"}),
    Target("tensordot", {"x": X, "y": New(lambda: ones(3, 2)), "axes": 1}, {"axes": "int"}),
    Target("fori_loop", {"lower": 0, "upper": 3, "body_fun": lambda i, c: c + 1.0,
                         "init_val": New(lambda: ones(2))}, {"lower": "int", "upper": "int"}),
    Target("scan", {"f": lambda c, x: (c + x, c), "init": New(lambda: ones(2)),
                    "xs": New(lambda: ones(3, 2)), "length": 3}, {"length": "size"}),
    # ------------------------------------------------------------------ nn layers
    Target("nn.Linear", {"in_features": 3, "out_features": 2}, {"dtype": "float_dtype"}, huge=True),
    Target("nn.Embedding", {"num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0},
           {"dtype": "float_dtype", "padding_idx": "int", "max_norm": None, "norm_type": None},
           huge=True),  # fmt: skip  (norm_type only serves max_norm, which is not supported)
    Target("nn.LayerNorm", {"normalized_shape": 4, "eps": 1e-5}, {"dtype": "float_dtype"},
           huge=True),  # fmt: skip
    Target("nn.RMSNorm", {"normalized_shape": 4, "eps": 1e-6}, {"dtype": "float_dtype"},
           huge=True),  # fmt: skip
    *[Target(f"nn.{c}", {"num_features": 3, "eps": 1e-5, "momentum": 0.1},
             {"dtype": "float_dtype", "momentum": "probability"}, huge=True)
      for c in ("BatchNorm1d", "BatchNorm2d")],  # fmt: skip
    Target("nn.GroupNorm", {"num_groups": 2, "num_channels": 4, "eps": 1e-5},
           {"dtype": "float_dtype"}),  # fmt: skip
    Target("nn.Dropout", {"p": 0.5}),
    Target("nn.GELU", {"approximate": "none"}),
    Target("nn.Softmax", {"dim": -1}, {"dim": "int"}),
    Target("nn.LogSoftmax", {"dim": -1}, {"dim": "int"}),
    Target("nn.MultiheadAttention", {"embed_dim": 8, "num_heads": 2, "dropout": 0.0},
           {"dtype": "float_dtype", "d_model": None, "nhead": None},
           huge={"embed_dim", "kdim", "vdim"}),  # fmt: skip
    Target("nn.SinusoidalPositionalEncoding", {"d_model": 8, "max_len": 16},
           {"dtype": "float_dtype"}, huge=True),  # fmt: skip
    Target("nn.LearnedPositionalEmbedding", {"max_len": 16, "d_model": 8, "std": 0.02},
           {"dtype": "float_dtype"}, huge=True),  # fmt: skip
    Target("nn.RotaryEmbedding", {"dim": 8, "base": 10000.0}),
    *[Target(f"nn.{c}", {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "dropout": 0.0,
                         "layer_norm_eps": 1e-5, "activation": "relu"},
             {"dtype": "float_dtype", "num_heads": None})
      for c in ("TransformerEncoderLayer", "TransformerDecoderLayer")],  # fmt: skip
    Target("nn.TransformerEncoder",
           {"encoder_layer": New(lambda: fx.nn.TransformerEncoderLayer(8, 2, 16)),
            "num_layers": 2}),  # fmt: skip
    Target("nn.Transformer", {"d_model": 8, "nhead": 2, "num_encoder_layers": 1,
                              "num_decoder_layers": 1, "dim_feedforward": 16, "dropout": 0.0},
           {"dtype": "float_dtype", "num_heads": None}),  # fmt: skip
    # ------------------------------------------------------------------ nn.functional
    Target("nn.functional.dropout", {"input": X, "p": 0.5, "key": KEY}),
    Target("nn.functional.layer_norm", {"input": X, "normalized_shape": 3, "eps": 1e-5}),
    Target("nn.functional.rms_norm", {"input": X, "normalized_shape": 3, "eps": 1e-6}),
    Target("nn.functional.batch_norm", {"input": X, "running_mean": None, "running_var": None,
                                        "training": True, "momentum": 0.1, "eps": 1e-5},
           {"momentum": "probability"}),  # fmt: skip
    Target("nn.functional.group_norm", {"input": New(lambda: ones(2, 4, 3)), "num_groups": 2,
                                        "eps": 1e-5}),  # fmt: skip
    Target("nn.functional.softmax", {"input": X}, {"dim": "axis"}),
    Target("nn.functional.log_softmax", {"input": X}, {"dim": "axis"}),
    Target("nn.functional.one_hot", {"tensor": ints(0, 2), "num_classes": 3},
           {"num_classes": "int"}),  # fmt: skip
    Target("nn.functional.cross_entropy", {"input": X, "target": ints(0, 2),
                                           "reduction": "mean", "label_smoothing": 0.1}),
    Target("nn.functional.nll_loss", {"input": X, "target": ints(0, 2), "reduction": "mean"}),
    Target("nn.functional.mse_loss", {"input": X, "target": X, "reduction": "mean"}),
    Target("nn.functional.l1_loss", {"input": X, "target": X, "reduction": "sum"}),
    Target("nn.functional.binary_cross_entropy",
           {"input": New(lambda: fx.full((2, 3), 0.5)), "target": X, "reduction": "mean"}),
    Target("nn.functional.softplus", {"input": X, "beta": 1.0, "threshold": 20.0}),
    Target("nn.functional.scaled_dot_product_attention",
           {"query": New(lambda: ones(2, 4, 8)), "key": New(lambda: ones(2, 4, 8)),
            "value": New(lambda: ones(2, 4, 8)), "dropout_p": 0.0, "scale": 0.5},
           {"key": None}),  # fmt: skip
    Target("nn.functional.gelu", {"input": X, "approximate": "tanh"}),
    Target("nn.functional.pad", {"input": X, "pad": (1, 1), "mode": "constant"}),
    # ------------------------------------------------------------------ nn.init
    Target("nn.init.uniform_", {"tensor": New(param), "a": -1.0, "b": 1.0}),
    Target("nn.init.normal_", {"tensor": New(param), "mean": 0.0, "std": 1.0}),
    Target("nn.init.trunc_normal_", {"tensor": New(param), "mean": 0.0, "std": 1.0, "a": -2.0,
                                     "b": 2.0}),  # fmt: skip
    Target("nn.init.xavier_uniform_", {"tensor": New(param), "gain": 1.0}),
    Target("nn.init.xavier_normal_", {"tensor": New(param), "gain": 1.0}),
    *[Target(f"nn.init.{f}", {"tensor": New(param), "a": 0.0, "mode": "fan_in",
                              "nonlinearity": "relu"})
      for f in ("kaiming_uniform_", "kaiming_normal_")],  # fmt: skip
    Target("nn.init.calculate_gain", {"nonlinearity": "relu"}),
    # ------------------------------------------------------------------ optim
    Target("optim.SGD", {**OPT, "lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                         "weight_decay": 0.0}),  # fmt: skip
    *[Target(f"optim.{c}", {**OPT, "lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
                            "weight_decay": 0.0})
      for c in ("Adam", "AdamW")],  # fmt: skip
    Target("optim.sgd_init", {"params": New(lambda: {"w": ones(3)}), "momentum": 0.9}),
    Target("optim.sgd_update",
           {"params": New(lambda: {"w": ones(3)}), "grads": New(lambda: {"w": ones(3)}),
            "state": New(lambda: fx.optim.sgd_init({"w": ones(3)}, momentum=0.9)),
            "lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0}),  # fmt: skip
    *[Target(f"optim.{f}",
             {"params": New(lambda: {"w": ones(3)}), "grads": New(lambda: {"w": ones(3)}),
              "state": New(lambda: fx.optim.adam_init({"w": ones(3)})), "lr": 0.1,
              "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0})
      for f in ("adam_update", "adamw_update")],  # fmt: skip
    Target("optim.clip_by_global_norm", {"tree": New(lambda: {"w": ones(3)}), "max_norm": 1.0,
                                         "norm_type": 2.0}),  # fmt: skip
    Target("optim.global_norm", {"tree": New(lambda: {"w": ones(3)}), "norm_type": 2.0}),
    Target("optim.clip_grad_norm_", {"parameters": New(lambda: [trained_param()]),
                                     "max_norm": 1.0, "norm_type": 2.0}),  # fmt: skip
    Target("optim.clip_grad_value_", {"parameters": New(lambda: [trained_param()]),
                                      "clip_value": 1.0}),  # fmt: skip
    Target("optim.schedules.constant", {"value": 0.1}, {"value": "rate"}),
    Target("optim.schedules.step_decay", {"init_value": 0.1, "step_size": 2, "gamma": 0.5},
           {"init_value": "rate"}),  # fmt: skip
    Target("optim.schedules.exponential", {"init_value": 0.1, "gamma": 0.9},
           {"init_value": "rate"}),  # fmt: skip
    Target("optim.schedules.linear", {"init_value": 0.1, "end_value": 0.0,
                                      "transition_steps": 10},
           {"init_value": "rate", "end_value": "rate"}),  # fmt: skip
    Target("optim.schedules.linear_warmup", {"peak_value": 0.1, "warmup_steps": 10},
           {"peak_value": "rate", "init_value": "rate"}),  # fmt: skip
    Target("optim.schedules.cosine", {"init_value": 0.1, "decay_steps": 10},
           {"init_value": "rate", "final_value": "rate"}),  # fmt: skip
    Target("optim.schedules.warmup_cosine", {"peak_value": 0.1, "warmup_steps": 2,
                                             "decay_steps": 10},
           {"peak_value": "rate", "init_value": "rate", "final_value": "rate"}),  # fmt: skip
    # ------------------------------------------------------------------ data
    Target("data.BPETokenizer", {"vocab_size": 300}),
    Target("data.LMDataset", {"ids": np.arange(100), "seq_len": 4, "val_fraction": 0.1}),
    Target("data.batches", {"arrays": np.arange(10), "batch_size": 2, "rng": 0},
           {"rng": "seed"}, run=next),  # fmt: skip
    Target("data.sum_mod_dataset", {"n": 4, "seq_len": 3, "vocab": 5, "k": 3, "seed": 0}),
    Target("data.AdditionTask", {"seed": 0, "test_fraction": 0.1}),
    Target("data.DifferenceTask", {"base": 10, "seed": 0, "test_fraction": 0.1},
           {"base": "count"}),  # fmt: skip
    Target("data.char_corpus", {"max_bytes": 100}),
    Target("data.load_tokenizer", {"path": "unused"}, {"path": "path"}),
    # ------------------------------------------------------------------ models and decoding
    Target("models.GPT", {"vocab_size": 10, "d_model": 8, "num_heads": 2, "num_layers": 1,
                          "max_len": 16, "pos": "learned", "dropout": 0.0},
           huge={"vocab_size", "d_model", "max_len", "dim_feedforward"}),
    Target("models.EncoderClassifier", {"vocab_size": 10, "num_classes": 2, "d_model": 8,
                                        "num_heads": 2, "num_layers": 1, "max_len": 16,
                                        "pooling": "mean"}),  # fmt: skip
    Target("models.Seq2Seq", {"src_vocab": 10, "tgt_vocab": 10, "d_model": 8, "num_heads": 2,
                              "num_layers": 1, "max_len": 16, "pad_id": 0}),  # fmt: skip
    Target("models.Attention", {"d_model": 8, "num_heads": 2, "dropout": 0.0}),
    Target("models.filter_logits", {"logits": X, "top_k": 2, "top_p": 0.9}),
    Target("models.sample_logits", {"logits": X, "key": KEY, "temperature": 1.0, "top_k": 2,
                                    "top_p": 0.9}),  # fmt: skip
    Target("models.generate", {"model": GPT, "prompt_ids": ints(1, 2), "max_new_tokens": 2,
                               "key": KEY, "temperature": 1.0, "top_k": 3, "top_p": 0.9,
                               "eos_id": 2}),  # fmt: skip
    Target("models.greedy_compiled", {"model": GPT, "prompt_ids": ints(1, 2),
                                      "max_new_tokens": 2}),  # fmt: skip
    Target("models.beam_search", {"model": GPT, "prompt_ids": ints(1, 2), "beam_size": 2,
                                  "max_new_tokens": 2, "eos_id": 2, "length_penalty": 0.5}),
    Target("models.best_of_n", {"model": GPT, "prompt_ids": ints(1, 2), "n": 2,
                                "max_new_tokens": 2, "key": KEY, "temperature": 1.0,
                                "eos_id": 2}),  # fmt: skip
    Target("models.sequence_logprob", {"model": GPT, "ids": New(lambda: ints(1, 2, 3)[None]),
                                       "start": 1}, {"start": "count"}),  # fmt: skip
    Target("models.seq2seq_greedy", {"model": SEQ2SEQ, "src": ints(1, 2), "max_len": 2,
                                     "bos_id": 1, "eos_id": 2}),  # fmt: skip
    Target("models.seq2seq_beam_search", {"model": SEQ2SEQ, "src": ints(1, 2), "beam_size": 2,
                                          "max_len": 2, "bos_id": 1, "eos_id": 2}),
    Target("models.shift_right", {"tgt": New(lambda: ints(1, 2)[None]), "bos_id": 1},
           {"bos_id": "int"}),  # fmt: skip
    # ------------------------------------------------------------------ checkpoints
    Target("save", {"obj": {"w": ones(2)}, "path": "unused"}, {"path": "path"}),
    Target("load", {"path": "unused"}, {"path": "path"}),
]  # fmt: skip

# targets whose valid call cannot run as listed (it names a file made per test)
NEEDS_FILE = {"save", "load", "data.load_tokenizer"}


def _generated():
    cases = []
    for t in TARGETS:
        for name, p in t.parameters().items():
            kind = t.kind(name)
            if kind is None:
                continue
            bad = list(BAD[kind])
            if kind in HUGE_BAD and (t.huge is True or name in (t.huge or ())):
                bad.append(HUGE_BAD[kind])
            for value, builtin in bad:
                if value is None and (p.default is None or "None" in str(p.annotation)):
                    continue  # the signature accepts None
                cases.append((f"{t.name}-{t.op}({name}={value!r})", t, name, value, builtin))
    return cases


GENERATED = _generated()


def _check_error(e: BaseException, builtin, words) -> None:
    assert isinstance(e, FluxionError), f"escaped as {type(e).__name__}: {e}"
    assert isinstance(e, builtin), f"{type(e).__name__} is not a {builtin.__name__}: {e}"
    message = str(e)
    missing = [w for w in words if w not in message]
    assert not missing, f"message {message!r} lacks {missing}"


def _words(op, name, value, builtin) -> list[str]:
    """What the message must hold: the function, the argument and the value (for a tensor
    too large, the shape and its bytes: which argument made it may be one of several)."""
    if builtin is MemoryError:
        return [op, repr(value) if isinstance(value, tuple) else str(value), "bytes"]
    return [op, name, *_value_words(value)]


def _value_words(value) -> list[str]:
    if isinstance(value, fx.Tensor):
        return [str(value.dtype)]
    if isinstance(value, type):
        return [value.__name__]
    return [repr(value)]


@pytest.mark.parametrize(
    "case, target, name, value, builtin", GENERATED, ids=[c[0] for c in GENERATED]
)
def test_generated_bad_argument(case, target, name, value, builtin, tmp_path):
    changed = {name: value}
    if target.name in NEEDS_FILE and name != "path":
        changed["path"] = str(tmp_path / "x")
    try:
        target.call(**changed)
    except Exception as e:
        _check_error(e, builtin, _words(target.op, name, value, builtin))
    else:
        pytest.fail(f"{case}: accepted silently")


@pytest.mark.parametrize("target", [t for t in TARGETS if t.name not in NEEDS_FILE],
                         ids=lambda t: t.name)  # fmt: skip
def test_valid_call_works(target):
    """The baseline of each row works: the errors above come from the bad value alone."""
    target.call()


# ----------------------------------------------------------------------------- by hand


def _dir(tmp_path):
    return str(tmp_path)


def _missing_folder(tmp_path):
    return str(tmp_path / "no" / "such" / "folder" / "x.safetensors")


HAND = [
    # (id, call(tmp_path), built-in, words the message must hold)
    ("save-into-missing-folder", lambda t: fx.save({"w": ones(2)}, _missing_folder(t)),
     OSError, ["save", "path", "no/such/folder"]),
    ("save-onto-a-folder", lambda t: fx.save({"w": ones(2)}, _dir(t)), OSError,
     ["save", "path", "directory"]),
    ("load-missing", lambda t: fx.load(str(t / "absent.safetensors")), OSError,
     ["load", "absent.safetensors"]),
    ("load-a-folder", lambda t: fx.load(_dir(t)), ValueError, ["load", "directory"]),
    ("load-tokenizer-missing", lambda t: fx.data.load_tokenizer(str(t / "absent.json")),
     ValueError, ["absent.json"]),
    ("char-corpus-missing", lambda t: fx.data.char_corpus(str(t / "absent.txt")), ValueError,
     ["char_corpus", "text_file", "absent.txt"]),
    # ranges that relate two arguments
    ("randint-empty-range", lambda t: fx.randint(5, 5, (2,)), ValueError, ["randint", "5"]),
    ("uniform-low-above-high", lambda t: fx.uniform(2.0, 1.0, (2,)), ValueError,
     ["uniform", "low", "high", "2.0", "1.0"]),
    ("random-uniform-min-above-max",
     lambda t: fx.random.uniform(KEY, (2,), minval=2.0, maxval=1.0), ValueError,
     ["uniform", "minval", "maxval"]),
    ("init-uniform-a-above-b", lambda t: fx.nn.init.uniform_(param(), 2.0, 1.0), ValueError,
     ["uniform_", "a", "b"]),
    ("trunc-normal-a-above-b", lambda t: fx.nn.init.trunc_normal_(param(), a=2.0, b=1.0),
     ValueError, ["trunc_normal_", "a", "b"]),
    ("mha-heads-divide", lambda t: fx.nn.MultiheadAttention(10, 3), ValueError,
     ["MultiheadAttention", "embed_dim", "10", "num_heads", "3"]),
    ("attention-heads-divide", lambda t: fx.models.Attention(10, 3), ValueError,
     ["Attention", "d_model", "10", "num_heads", "3"]),
    ("gpt-heads-divide", lambda t: fx.models.GPT(10, d_model=10, num_heads=3), ValueError,
     ["d_model", "10", "num_heads", "3"]),
    ("groupnorm-groups-divide", lambda t: fx.nn.GroupNorm(3, 4), ValueError,
     ["GroupNorm", "num_groups", "3", "num_channels", "4"]),
    ("rotary-odd-dim", lambda t: fx.nn.RotaryEmbedding(7), ValueError, ["RotaryEmbedding", "dim", "7"]),
    ("warmup-longer-than-decay",
     lambda t: fx.optim.schedules.warmup_cosine(0.1, warmup_steps=10, decay_steps=5), ValueError,
     ["warmup_cosine", "decay_steps", "warmup_steps"]),
    ("join-decreasing", lambda t: fx.optim.schedules.join(
        [fx.optim.schedules.constant(1.0)] * 3, [5, 2]), ValueError, ["join", "boundaries"]),
    ("join-float-boundary", lambda t: fx.optim.schedules.join(
        [fx.optim.schedules.constant(1.0)] * 2, [2.5]), TypeError, ["join", "boundaries", "2.5"]),
    ("nesterov-without-momentum", lambda t: fx.optim.SGD([trained_param()], nesterov=True),
     ValueError, ["SGD", "nesterov", "momentum"]),
    ("sgd-lr-negative-tensor", lambda t: fx.optim.SGD([trained_param()], lr=fx.tensor(-1.0)),
     ValueError, ["SGD", "lr", "-1"]),
    ("sgd-params-number", lambda t: fx.optim.SGD(5), TypeError, ["SGD", "params", "int"]),
    ("sgd-params-empty", lambda t: fx.optim.SGD([]), ValueError, ["SGD", "params", "empty"]),
    ("sgd-params-strings", lambda t: fx.optim.SGD(["w"]), TypeError, ["SGD", "params", "str"]),
    ("adam-group-lr-nan",
     lambda t: fx.optim.Adam([{"params": [trained_param()], "lr": NAN}]), ValueError,
     ["Adam", "lr", "nan"]),
    ("optimizer-lr-setter", lambda t: setattr(fx.optim.SGD([trained_param()]), "lr", INF),
     ValueError, ["SGD", "lr", "inf"]),
    ("schedule-negative-lr", lambda t: fx.optim.SGD([trained_param()], lr=lambda step: -0.1).lr,
     ValueError, ["SGD", "lr", "schedule", "-0.1"]),
    ("schedule-nan-lr-functional", lambda t: fx.optim.sgd_update(
        {"w": ones(2)}, {"w": ones(2)}, fx.optim.sgd_init({"w": ones(2)}), lr=lambda s: NAN),
     ValueError, ["sgd_update", "lr", "schedule", "nan"]),
    ("lrscheduler-count",
     lambda t: fx.optim.LRScheduler(fx.optim.SGD([trained_param()]), [lambda s: 0.1] * 2),
     ValueError, ["LRScheduler", "2"]),
    ("lrscheduler-not-callable",
     lambda t: fx.optim.LRScheduler(fx.optim.SGD([trained_param()]), 0.1), TypeError,
     ["LRScheduler", "schedule", "0.1"]),
    # tensors where numbers are checked too
    ("bernoulli-p-tensor-above-1", lambda t: fx.random.bernoulli(KEY, fx.tensor([0.5, 1.5])),
     ValueError, ["bernoulli", "p", "1.5"]),
    ("bernoulli-p-tensor-nan", lambda t: fx.random.bernoulli(KEY, fx.tensor([NAN])),
     ValueError, ["bernoulli", "p", "nan"]),
    ("sample-temperature-tensor-nan",
     lambda t: fx.models.sample_logits(ones(1, 3), KEY, temperature=fx.tensor(NAN)), ValueError,
     ["sample_logits", "temperature", "nan"]),
    ("dropout-p-tensor", lambda t: fx.nn.functional.dropout(ones(3), p=fx.tensor(2.0)),
     ValueError, ["dropout", "p", "2.0"]),
    # structure of sequence arguments
    ("zeros-nested-shape", lambda t: fx.zeros(((2, 3), 4)), TypeError, ["zeros", "shape"]),
    ("reshape-two-minus-ones", lambda t: fx.reshape(ones(2, 3), (-1, -1)), ValueError,
     ["reshape", "(-1, -1)"]),
    ("reshape-negative", lambda t: fx.reshape(ones(2, 3), (-2, -3)), ValueError,
     ["reshape", "-2"]),
    ("reshape-float", lambda t: fx.reshape(ones(2, 3), (2.0, 3)), TypeError,
     ["reshape", "shape", "2.0"]),
    ("transpose-repeated", lambda t: fx.transpose(ones(2, 3), (0, 0)), ValueError,
     ["transpose", "axes", "(0, 0)"]),
    ("transpose-too-few", lambda t: fx.transpose(ones(2, 3, 4), (0, 1)), ValueError,
     ["transpose", "axes", "(0, 1)"]),
    ("pad-negative-width", lambda t: fx.pad(ones(2, 3), -1), ValueError, ["pad", "pad_width", "-1"]),
    ("pad-float-width", lambda t: fx.pad(ones(2, 3), 1.5), TypeError, ["pad", "pad_width", "1.5"]),
    ("pad-huge", lambda t: fx.pad(ones(2, 3), HUGE), MemoryError, ["pad", "bytes"]),
    ("F-pad-float", lambda t: fx.nn.functional.pad(ones(2, 3), (1.5, 1)), TypeError,
     ["pad", "1.5"]),
    ("split-zero-sections", lambda t: fx.split(ones(4), 0), ValueError, ["split", "0"]),
    ("split-float-cuts", lambda t: fx.split(ones(4), [1.5]), TypeError,
     ["split", "indices_or_sections", "1.5"]),
    ("tile-float-reps", lambda t: fx.tile(ones(2), (1.5,)), TypeError, ["tile", "reps", "1.5"]),
    ("slice-negative-size", lambda t: fx.slice_tensor(ones(4), (0,), (-1,)), IndexError,
     ["slice_tensor", "-1"]),
    ("slice-float-start", lambda t: fx.slice_tensor(ones(4), (0.5,), (1,)), TypeError,
     ["slice_tensor", "start", "0.5"]),
    ("top-k-too-many", lambda t: fx.top_k(ones(3), 4), ValueError, ["top_k", "k", "4"]),
    ("one-hot-num-classes-negative", lambda t: fx.one_hot(ints(0), -1), ValueError,
     ["one_hot", "num_classes", "-1"]),
    ("arange-huge", lambda t: fx.arange(HUGE), MemoryError, ["arange", str(HUGE), "bytes"]),
    ("eye-huge-square", lambda t: fx.eye(2**24), MemoryError, ["eye", "bytes"]),
    ("zeros-huge-product", lambda t: fx.zeros((2**16, 2**16, 2**16)), MemoryError,
     ["zeros", "(65536, 65536, 65536)", "bytes"]),
    ("zeros-overflowing-product", lambda t: fx.zeros((2**40, 2**40)), MemoryError,
     ["zeros", "bytes"]),
    ("broadcast-to-huge-is-a-view", lambda t: fx.broadcast_to(ones(1), (HUGE, 4)), None, []),
    ("linear-huge-product", lambda t: fx.nn.Linear(2**20, 2**20), MemoryError,
     ["Linear", "(1048576, 1048576)", "bytes"]),
    ("embedding-max-norm", lambda t: fx.nn.Embedding(10, 4, max_norm=1.0), ValueError,
     ["Embedding", "max_norm", "1.0"]),
    ("embedding-padding-out-of-range", lambda t: fx.nn.Embedding(10, 4, padding_idx=10),
     ValueError, ["Embedding", "padding_idx", "10"]),
    ("linear-int-dtype", lambda t: fx.nn.Linear(2, 3, dtype="int32"), TypeError,
     ["Linear", "dtype", "int32"]),
    ("linear-bad-device", lambda t: fx.nn.Linear(2, 3, device="cuda"), ValueError,
     ["device", "cuda"]),
    ("uniform-int-dtype", lambda t: fx.random.uniform(KEY, (2,), dtype="int32"), TypeError,
     ["uniform", "dtype", "int32"]),
    ("manual-seed-numpy-float", lambda t: fx.manual_seed(np.float64(1.0)), TypeError,
     ["manual_seed", "seed", "1.0"]),
    ("key-negative-seed-too-low", lambda t: fx.random.key(-(2**63) - 1), ValueError,
     ["key", "seed"]),
    ("data-seed-too-large", lambda t: fx.data.sum_mod_dataset(seed=2**32), ValueError,
     ["sum_mod_dataset", "seed", str(2**32)]),
    ("addition-lengths-float", lambda t: fx.data.AdditionTask(train_lengths=[3.5]), TypeError,
     ["AdditionTask", "train_lengths", "3.5"]),
    ("addition-lengths-none", lambda t: fx.data.AdditionTask(test_lengths=None), TypeError,
     ["AdditionTask", "test_lengths", "None"]),
    ("difference-lengths-strings", lambda t: fx.data.DifferenceTask(train_lengths="abc"),
     TypeError, ["DifferenceTask", "train_lengths", "abc"]),
    ("lmdataset-vocab-size-float", lambda t: fx.data.LMDataset(np.arange(100), 4, vocab_size=2.5),
     TypeError, ["LMDataset", "vocab_size", "2.5"]),
    ("lmdataset-batch-size", lambda t: fx.data.LMDataset(np.arange(100), 4).batch("train", -1, 0),
     ValueError, ["batch", "batch_size", "-1"]),
    ("char-tokenizer-specials", lambda t: fx.data.CharTokenizer(specials=5), TypeError,
     ["CharTokenizer", "specials", "5"]),
    ("char-tokenizer-chars", lambda t: fx.data.CharTokenizer(chars=5), TypeError,
     ["CharTokenizer", "chars", "5"]),
    ("generate-prompt-float", lambda t: fx.models.generate(GPT, ones(1, 2), 2), TypeError,
     ["generate", "prompt_ids", "float32"]),
    ("generate-prompt-token-out-of-vocab", lambda t: fx.models.generate(GPT, ints(1, 99), 2),
     IndexError, ["generate", "prompt_ids", "99"]),
    ("generate-too-long", lambda t: fx.models.generate(GPT, ints(1, 2), 100), ValueError,
     ["generate", "max_len", "16"]),
    ("generate-key-float", lambda t: fx.models.generate(GPT, ints(1, 2), 2, key=ones(2)),
     TypeError, ["generate", "key", "float32"]),
    ("sequence-logprob-start-past-end",
     lambda t: fx.models.sequence_logprob(GPT, ints(1, 2, 3)[None], 9), ValueError,
     ["sequence_logprob", "start", "9"]),
    ("seq2seq-bos-out-of-vocab",
     lambda t: fx.models.seq2seq_greedy(SEQ2SEQ, ints(1, 2), 2, bos_id=10), ValueError,
     ["seq2seq_greedy", "bos_id", "10"]),
    ("cross-entropy-ignore-index-float",
     lambda t: fx.nn.functional.cross_entropy(ones(2, 3), ints(0, 1), ignore_index=0.5),
     TypeError, ["cross_entropy", "ignore_index", "0.5"]),
    ("sdpa-scale-nan", lambda t: fx.nn.functional.scaled_dot_product_attention(
        ones(1, 2, 4), ones(1, 2, 4), ones(1, 2, 4), scale=NAN), ValueError,
     ["scaled_dot_product_attention", "scale", "nan"]),
    ("encoder-layer-num-heads-float", lambda t: fx.nn.TransformerEncoderLayer(8, num_heads=2.0),
     TypeError, ["TransformerEncoderLayer", "2.0"]),
    ("encoder-negative-layers", lambda t: fx.nn.TransformerEncoder(
        fx.nn.TransformerEncoderLayer(8, 2, 16), -1), ValueError,
     ["TransformerEncoder", "num_layers", "-1"]),
    ("einsum-subscripts-not-str", lambda t: fx.einsum(5, ones(2)), TypeError,
     ["einsum", "subscripts", "5"]),
    ("tensordot-axes-negative", lambda t: fx.tensordot(ones(2, 3), ones(3, 2), axes=-1),
     ValueError, ["tensordot", "axes=-1"]),
    ("module-list-not-modules", lambda t: fx.nn.ModuleList([1, 2]), TypeError,
     ["ModuleList", "int"]),
    ("sequential-not-modules", lambda t: fx.nn.Sequential("relu"), TypeError,
     ["Sequential", "str"]),
]  # fmt: skip


@pytest.mark.parametrize("case, call, builtin, words", HAND, ids=[h[0] for h in HAND])
def test_hand_written_bad_argument(case, call, builtin, words, tmp_path):
    if builtin is None:  # a view asks for no memory: it must not be refused as one
        call(tmp_path)
        return
    try:
        call(tmp_path)
    except Exception as e:
        _check_error(e, builtin, words)
    else:
        pytest.fail(f"{case}: accepted silently")


def test_enough_bad_inputs():
    assert len(GENERATED) + len([h for h in HAND if h[2] is not None]) >= 300
