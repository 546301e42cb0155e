"""Training step of the curriculum tasks' models: fluxion (compiled and eager) vs PyTorch eager.

The three tasks of ``fluxion train`` with their CLI defaults (``make_config(task)``):
``difference`` (``EncoderClassifier``), ``addition`` (``Seq2Seq``, teacher forcing) and
``gpt`` (``GPT`` on the default character corpus). One step is what the CLI's loop runs
per batch (``fluxion/tasks/loop.py``), timed without drawing the batch:

* ``fluxion compiled``: ``CompiledRunner.step``, the default: one ``fx.jit`` of
  ``value_and_grad(task.loss, has_aux=True)`` + ``clip_by_global_norm`` + ``adamw_update``;
  its first call traces and compiles (reported apart, as ``first call``).
* ``fluxion eager``: ``EagerRunner.step`` (``--eager``): ``zero_grad``, ``task.loss``,
  ``loss.backward()``, ``clip_grad_norm_``, ``AdamW.step()``.
* ``torch eager``: the same model written here as a ``torch.nn.Module`` (same layers,
  pre-norm blocks, RoPE or learned positions, exact GELU, padding and causal masks, loss
  and accuracy), loaded with fluxion's initial parameters by their dotted names;
  ``torch.optim.AdamW`` with the loop's lr, betas, eps and weight decay, and
  ``torch.nn.utils.clip_grad_norm_``; ``torch.set_num_threads(2)``.

All three start from the same parameters and see the same batches
(``task.train_batch(step_rng(seed, t))``) and learning rates (the task's schedule). Before
timing, ``--check-steps`` steps of each are compared: the losses must agree to ``--rtol``
relative (the script exits with status 1 otherwise). Every step returns the loss and the
accuracy as Python floats, as the loop's steps do. Timing: ``common.time_interleaved`` per
task (samples of at least ``--min-sample-ms``, the three modes in rotating order, each
sample after a ``--settle-ms`` pause and one untimed step; the median is reported).

    python bench/tasks.py                         # the three tasks, ~1.5 min
    python bench/tasks.py --tasks gpt --repeat 15
    python bench/tasks.py --tasks difference,addition --json
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import inspect
import sys
import time

import numpy as np

import fluxion as fx
from fluxion.models.layers import ROPE_BASE
from fluxion.tasks import loop
from fluxion.tasks.base import make_config, make_task, step_rng

try:
    import torch
    import torch.nn.functional as TF
    from torch import nn
except ImportError:  # the comparison is the point of this script
    sys.exit("bench/tasks.py needs PyTorch: pip install -e '.[bench]'")

TASKS = ("difference", "addition", "gpt")
POOL = 16  # distinct batches a candidate cycles through while timed


# ----------------------------------------------------------------------------- torch twins
# Module and parameter names follow fluxion's (``fluxion/models``), so a twin loads the
# fluxion model's ``state_dict()`` as it is.


def rope_tables(T: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, D) of ``fluxion.models.layers.rope``: pairs (i, i + D/2), float64
    angles, cast to float32."""
    inv_freq = ROPE_BASE ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    angles = np.arange(T, dtype=np.float64)[:, None] * inv_freq
    angles = np.concatenate([angles, angles], axis=-1)
    cos, sin = (torch.from_numpy(f(angles).astype(np.float32)) for f in (np.cos, np.sin))
    return cos, sin


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Attention(nn.Module):
    """``fluxion.models.layers.Attention``: packed in-projection, SDPA, out_proj."""

    def __init__(self, d_model: int, num_heads: int, rope: bool = False):
        super().__init__()
        self.d_model, self.num_heads, self.rope = d_model, num_heads, rope
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, t):
        B, L, _ = t.shape
        return t.reshape(B, L, self.num_heads, -1).transpose(1, 2)

    def forward(self, x, memory=None, mask=None, tables=None):
        w, b, E = self.in_proj_weight, self.in_proj_bias, self.d_model
        if memory is None:
            q, k, v = TF.linear(x, w, b).chunk(3, dim=-1)
        else:
            q = TF.linear(x, w[:E], b[:E])
            k, v = TF.linear(memory, w[E:], b[E:]).chunk(2, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if self.rope and memory is None:
            q, k = rope(q, *tables), rope(k, *tables)
        out = TF.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        B, _, L, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, L, E))


class MLP(nn.Module):
    def __init__(self, d_model: int, ff: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_model, ff), nn.Linear(ff, d_model)

    def forward(self, x):
        return self.fc2(TF.gelu(self.fc1(x)))  # exact (erf) GELU, as fluxion's


class Block(nn.Module):
    """Pre-norm: ``x + attn(ln1(x))``, [``x + cross_attn(ln_cross(x), memory)``],
    ``x + mlp(ln2(x))``."""

    def __init__(self, d_model, num_heads, ff, cross=False, rope=False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, num_heads, rope=rope)
        if cross:
            self.ln_cross = nn.LayerNorm(d_model)
            self.cross_attn = Attention(d_model, num_heads)
        self.cross = cross
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, ff)

    def forward(self, x, mask=None, tables=None, memory=None, memory_mask=None):
        x = x + self.attn(self.ln1(x), mask=mask, tables=tables)
        if self.cross:
            x = x + self.cross_attn(self.ln_cross(x), memory, mask=memory_mask)
        return x + self.mlp(self.ln2(x))


class Positions(nn.Module):
    """A learned (``weight``) or sinusoidal (``pe`` buffer) table; RoPE has none."""

    def __init__(self, kind: str, max_len: int, d_model: int):
        super().__init__()
        if kind == "learned":
            self.weight = nn.Parameter(torch.empty(max_len, d_model))
        else:
            self.register_buffer("pe", torch.empty(max_len, d_model))

    def forward(self, x):
        rows = self.weight if hasattr(self, "weight") else self.pe
        return x + rows[: x.shape[1]]


class Twin(nn.Module):
    """What the three twins share: the position table, or RoPE's cos/sin per length."""

    def setup(self, pos: str, max_len: int, d_model: int, num_heads: int):
        self.pos_kind, self.head_dim = pos, d_model // num_heads
        self._tables = {}
        return None if pos == "rope" else Positions(pos, max_len, d_model)

    def tables(self, T: int):
        if self.pos_kind != "rope":
            return None
        if T not in self._tables:  # constants: a torch user would cache them too
            self._tables[T] = rope_tables(T, self.head_dim)
        return self._tables[T]

    @staticmethod
    def embed(tok, table, tokens):
        x = tok(tokens)
        return x if table is None else table(x)


def padding_mask(tokens, pad_id):
    B, T = tokens.shape
    return (tokens != pad_id).reshape(B, 1, 1, T)


def causal_mask(T: int):
    return torch.ones(T, T, dtype=torch.bool).tril()


class EncoderClassifier(Twin):
    """``fluxion.models.EncoderClassifier`` with ``pooling="mean"``."""

    def __init__(self, m):
        super().__init__()
        d, ff = m.d_model, m.blocks[0].mlp.fc1.weight.shape[0]
        heads = m.blocks[0].attn.num_heads
        self.pad_id = m.pad_id
        self.tok = nn.Embedding(m.vocab_size, d)
        self.pos = self.setup(m.pos_kind, m.max_len, d, heads)
        rope = m.pos_kind == "rope"
        self.blocks = nn.ModuleList(Block(d, heads, ff, rope=rope) for _ in m.blocks)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, m.num_classes)

    def forward(self, tokens):
        T = tokens.shape[1]
        mask, tables = padding_mask(tokens, self.pad_id), self.tables(T)
        x = self.embed(self.tok, self.pos, tokens)
        for block in self.blocks:
            x = block(x, mask=mask, tables=tables)
        x = self.ln_f(x)
        w = (tokens != self.pad_id).to(x.dtype).unsqueeze(-1)
        pooled = (x * w).sum(dim=1) / torch.clamp(w.sum(dim=1), min=1.0)
        return self.head(pooled)


class Seq2Seq(Twin):
    """``fluxion.models.Seq2Seq``: pre-norm encoder and decoder, final LayerNorms."""

    def __init__(self, m):
        super().__init__()
        d, ff = m.d_model, m.encoder[0].mlp.fc1.weight.shape[0]
        heads = m.encoder[0].attn.num_heads
        self.pad_id = m.pad_id
        self.src_tok = nn.Embedding(m.src_vocab, d)
        self.tgt_tok = nn.Embedding(m.tgt_vocab, d)
        self.src_pos = self.setup(m.pos_kind, m.max_len, d, heads)
        self.tgt_pos = None if self.src_pos is None else Positions(m.pos_kind, m.max_len, d)
        rope = m.pos_kind == "rope"
        self.encoder = nn.ModuleList(Block(d, heads, ff, rope=rope) for _ in m.encoder)
        self.enc_ln = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(Block(d, heads, ff, cross=True, rope=rope) for _ in m.decoder)
        self.dec_ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, m.tgt_vocab)

    def forward(self, src, tgt_in):
        x = self.embed(self.src_tok, self.src_pos, src)
        mem_mask = padding_mask(src, self.pad_id)
        tables = self.tables(src.shape[1])
        for block in self.encoder:
            x = block(x, mask=mem_mask, tables=tables)
        memory = self.enc_ln(x)
        T = tgt_in.shape[1]
        x = self.embed(self.tgt_tok, self.tgt_pos, tgt_in)
        mask, tables = causal_mask(T), self.tables(T)
        for block in self.decoder:
            x = block(x, mask=mask, tables=tables, memory=memory, memory_mask=mem_mask)
        return self.head(self.dec_ln(x))


class GPT(Twin):
    """``fluxion.models.GPT``: causal pre-norm blocks, final LayerNorm, head without bias."""

    def __init__(self, m):
        super().__init__()
        d, ff = m.d_model, m.blocks[0].mlp.fc1.weight.shape[0]
        self.tok = nn.Embedding(m.vocab_size, d)
        self.pos = self.setup(m.pos_kind, m.max_len, d, m.num_heads)
        rope = m.pos_kind == "rope"
        self.blocks = nn.ModuleList(Block(d, m.num_heads, ff, rope=rope) for _ in m.blocks)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, m.vocab_size, bias=False)

    def forward(self, tokens):
        T = tokens.shape[1]
        mask, tables = causal_mask(T), self.tables(T)
        x = self.embed(self.tok, self.pos, tokens)
        for block in self.blocks:
            x = block(x, mask=mask, tables=tables)
        return self.head(self.ln_f(x))


def accuracy(logits, targets, mask=None):
    """``fluxion.tasks.base.accuracy``."""
    hit = (logits.argmax(dim=-1) == targets).to(logits.dtype)
    if mask is None:
        return hit.mean()
    m = mask.to(logits.dtype)
    return (hit * m).sum() / torch.clamp(m.sum(), min=1.0)


def torch_twin(task, fx_model):
    """``(torch model with fx_model's parameters, loss(model, *batch) -> (loss, acc))``,
    the loss written as the task's ``loss`` is."""
    if task.config.dropout:
        raise SystemExit(f"{task.name}: the torch twins have no dropout; the defaults have none")
    if task.name == "difference":
        model = EncoderClassifier(fx_model)

        def loss(model, tokens, labels):
            logits = model(tokens)
            return TF.cross_entropy(logits, labels), accuracy(logits, labels)

    elif task.name == "addition":
        model = Seq2Seq(fx_model)
        bos, pad = task.tokenizer.bos_id, task.tokenizer.pad_id

        def loss(model, src, tgt):
            tgt_in = torch.cat([torch.full_like(tgt[:, :1], bos), tgt[:, :-1]], dim=-1)
            logits = model(src, tgt_in)
            V = logits.shape[-1]
            value = TF.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=pad)
            return value, accuracy(logits, tgt, mask=tgt != pad)

    else:
        model = GPT(fx_model)

        def loss(model, x, y):
            logits = model(x)
            V = logits.shape[-1]
            return TF.cross_entropy(logits.reshape(-1, V), y.reshape(-1)), accuracy(logits, y)

    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in fx_model.state_dict().items()}
    model.load_state_dict(state, strict=True)  # every name matches, both ways
    return model.train(), loss


class TorchRunner:
    """``EagerRunner`` in PyTorch: zero_grad, loss, backward, clip, ``AdamW.step()``."""

    style = "torch eager"

    def __init__(self, model, loss_fn, config):
        defaults = inspect.signature(fx.optim.adamw_update).parameters  # the loop's betas, eps
        self.model, self.loss_fn, self.clip = model, loss_fn, config.clip
        self.params = list(model.parameters())
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=config.lr,
            betas=defaults["betas"].default,
            eps=defaults["eps"].default,
            weight_decay=config.weight_decay,
        )

    def step(self, batch, lr: float) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, acc = self.loss_fn(self.model, *batch)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        return loss.item(), acc.item()


# ----------------------------------------------------------------------------- one task


def fresh_model(task):
    """The task's model as ``loop.train`` builds it: after ``fx.manual_seed(seed)``."""
    fx.manual_seed(task.config.seed)
    return task.build_model().train()


def setup(name: str) -> dict:
    """The task with its CLI defaults, the three runners from the same parameters, and
    the batches of steps 0..POOL-1 for each framework."""
    config = make_config(name)
    task = make_task(config)
    compiled_model = fresh_model(task)
    runners = {
        "fluxion compiled": loop.CompiledRunner(task, compiled_model, config),
        "fluxion eager": loop.EagerRunner(task, fresh_model(task), config),
        "torch eager": TorchRunner(*torch_twin(task, compiled_model), config),
    }
    arrays = [task.train_batch(step_rng(config.seed, t)) for t in range(POOL)]
    batches = {
        "fluxion": [tuple(fx.asarray(a) for a in b) for b in arrays],
        "torch": [tuple(torch.from_numpy(a) for a in b) for b in arrays],
    }
    schedule = loop.lr_schedule(config)
    n_params = sum(p.size for p in compiled_model.parameters())
    shapes = " ".join("x".join(map(str, a.shape)) for a in arrays[0])
    return dict(
        task=task,
        config=config,
        runners=runners,
        batches=batches,
        lrs=[float(schedule(t)) for t in range(config.steps)],
        params=n_params,
        shapes=shapes,
    )


def stepper(run: dict, mode: str):
    """A no-argument call that runs ``mode``'s next training step (batch and lr of step t)."""
    runner, config = run["runners"][mode], run["config"]
    batches = run["batches"]["torch" if mode.startswith("torch") else "fluxion"]
    lrs, t = run["lrs"], [0]

    def step():
        i = t[0]
        t[0] += 1
        return runner.step(batches[i % POOL], lrs[i % config.steps])

    return step


def check(run: dict, steps: dict, n: int, rtol: float) -> dict:
    """Run ``n`` steps of every mode (the compiled one's first call timed: trace + compile +
    run); the losses of each step must agree with the compiled mode's to ``rtol``."""
    losses = {}
    for mode, step in steps.items():
        t0 = time.perf_counter()
        first = step()
        if mode == "fluxion compiled":
            run["first_call_ms"] = (time.perf_counter() - t0) * 1e3
        losses[mode] = [first[0]] + [step()[0] for _ in range(n - 1)]
    ref = np.asarray(losses["fluxion compiled"], np.float64)
    rel = {m: float(np.max(np.abs(np.asarray(v) - ref) / np.abs(ref))) for m, v in losses.items()}
    fx_params = run["runners"]["fluxion compiled"].model.state_dict()
    torch_params = run["runners"]["torch eager"].model.state_dict()
    param_diff = max(common.max_abs_diff(v, torch_params[k]) for k, v in fx_params.items())
    return {
        "losses": losses,
        "rel": rel,
        "param_diff": param_diff,
        "ok": all(np.isfinite(v).all() for v in losses.values()) and max(rel.values()) <= rtol,
    }


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0], repeat=11)
    p.add_argument(
        "--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)} (default all)"
    )
    p.add_argument(
        "--check-steps", type=int, default=5, help="steps compared before timing (default 5)"
    )
    p.add_argument(
        "--rtol", type=float, default=1e-4, help="tolerance of the losses (default 1e-4)"
    )
    p.add_argument(
        "--min-sample-ms", type=float, default=200.0, help="minimum length of one timed sample"
    )
    p.add_argument(
        "--settle-ms",
        type=float,
        default=100.0,
        help="pause before each sample, so the other framework's threads stop spinning",
    )
    args = p.parse_args(argv)
    names = args.tasks.split(",")
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        p.error(f"--tasks: unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    if args.check_steps < 1:
        p.error("--check-steps must be >= 1")
    common.set_threads(args.threads, torch)
    env = common.environment(torch)
    if args.json:
        common.emit_json({"bench": "tasks", "env": env})
    else:
        print(f"training step of the curriculum tasks (CLI defaults); {env}")

    rows, configs, failed = [], [], []
    for name in names:
        run = setup(name)
        c = run["config"]
        configs.append(
            {
                "task": name,
                "model": type(run["runners"]["fluxion compiled"].model).__name__,
                "d_model": c.d_model,
                "heads": c.heads,
                "layers": c.layers,
                "ff": c.dim_feedforward,
                "pos": c.pos,
                "batch": c.batch_size,
                "batch_shapes": run["shapes"],
                "vocab": run["task"].tokenizer.vocab_size,
                "params": run["params"],
                "lr": c.lr,
                "weight_decay": c.weight_decay,
                "clip": c.clip,
            }
        )
        steps = {mode: stepper(run, mode) for mode in run["runners"]}
        result = check(run, steps, args.check_steps, args.rtol)
        if not result["ok"]:
            failed.append(name)
        samples = common.time_interleaved(
            steps,
            repeat=args.repeat,
            warmup=1,
            min_sample_s=args.min_sample_ms / 1e3,
            settle_s=args.settle_ms / 1e3,
        )
        ms = {m: common.median(v) * 1e3 for m, v in samples.items()}
        stats = run["runners"]["fluxion compiled"].stats
        row = {
            "task": name,
            "compiled_ms": ms["fluxion compiled"],
            "eager_ms": ms["fluxion eager"],
            "torch_ms": ms["torch eager"],
            "torch_over_compiled": ms["torch eager"] / ms["fluxion compiled"],
            "torch_over_eager": ms["torch eager"] / ms["fluxion eager"],
            "first_call_ms": run["first_call_ms"],
            "compile_ms": stats.compile_time_ms,
            "jit_misses": stats.misses,
            "spread_ms": {m: common.spread([s * 1e3 for s in v]) for m, v in samples.items()},
            "check": result,
        }
        rows.append(row)
        if args.json:
            common.emit_json({"bench": "tasks", **configs[-1], **row})
            continue
        print(f"\n{name}: {configs[-1]}")
        print(f"  losses of steps 1..{args.check_steps} (from the same parameters and batches):")
        for mode, losses in result["losses"].items():
            rel = "" if mode == "fluxion compiled" else f"  max rel diff {result['rel'][mode]:.1e}"
            print(f"    {mode:17s} " + " ".join(f"{v:.6f}" for v in losses) + rel)
        print(
            f"    max |param diff| fluxion compiled vs torch after {args.check_steps} steps: "
            f"{result['param_diff']:.1e}; {'ok' if result['ok'] else 'FAIL'} (rtol {args.rtol:g})"
        )
        print(
            f"  ms/step (median of {args.repeat}): "
            + ", ".join(f"{m} {ms[m]:.2f} [{row['spread_ms'][m]}]" for m in ms)
            + f"; first compiled call {row['first_call_ms']:.0f} ms",
            flush=True,
        )

    if not args.json:
        print(
            f"\ntraining step, ms (median of {args.repeat} samples; x = torch / fluxion, >1: fluxion faster)"
        )
        print(
            common.table(
                rows,
                [
                    ("task", "task", ""),
                    ("compiled_ms", "fx compiled", ".2f"),
                    ("eager_ms", "fx eager", ".2f"),
                    ("torch_ms", "torch eager", ".2f"),
                    ("torch_over_compiled", "x compiled", ".2f"),
                    ("torch_over_eager", "x eager", ".2f"),
                    ("first_call_ms", "1st call ms", ".0f"),
                    ("compile_ms", "compile ms", ".0f"),
                ],
            )
        )
        print()
        print(
            common.table(
                configs,
                [
                    ("task", "task", ""),
                    ("params", "params", ","),
                    ("d_model", "d_model", ""),
                    ("heads", "heads", ""),
                    ("layers", "layers", ""),
                    ("ff", "ff", ""),
                    ("pos", "pos", ""),
                    ("batch_shapes", "batch (inputs, targets)", ""),
                    ("vocab", "vocab", ""),
                    ("lr", "lr", "g"),
                ],
            )
        )
    common.finish(env, args.json, "tasks")
    share = env.get("others_cpu_share")
    if not args.json and share is not None and share < 0.05:  # else finish() printed a note
        print(f"\nother processes used {share:.1%} of the machine's CPU time during this run")
    if failed:
        print(
            f"\nFAILED: losses disagree beyond --rtol {args.rtol:g}: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
