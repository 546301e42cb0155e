"""The pytree cost of a whole model: ``fx.tree_flatten`` and ``fx.tree_unflatten`` of
workload A's and B's ``nn.Module`` (``workload_models.torch_model`` built by fluxion's
PyTorch face), and a ``fx.jit`` call that takes the model and returns one number (what a
compiled step spends on its model argument besides the generated code).

    python bench/flatten.py                 # both workloads, ~20 s
    python bench/flatten.py --workloads A --repeat 15
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import workload_models as wm

import fluxion as fx


def fluxion_model(workload: str) -> fx.nn.Module:
    """``workload_models.torch_model``'s module, written against fluxion's PyTorch face."""
    if not hasattr(fx.Tensor, "copy_"):  # the loader's one torch call fluxion lacks
        fx.Tensor.copy_ = lambda self, value: setattr(self, "data", value)
    return wm.torch_model(workload, fx)[0]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0], repeat=9)
    p.add_argument("--workloads", default="AB")
    args = p.parse_args()
    common.set_threads(args.threads)
    env = common.environment()
    rows = []
    for workload in args.workloads:
        model = fluxion_model(workload)
        leaves, tree = fx.tree_flatten(model)
        step = fx.jit(lambda m: m.head.weight[0, 0])
        samples = common.time_interleaved(
            {
                "tree_flatten": lambda: fx.tree_flatten(model),
                "tree_unflatten": lambda: fx.tree_unflatten(tree, leaves),
                "jit call": lambda: step(model),
            },
            repeat=args.repeat,
        )
        for name, s in samples.items():
            rows.append(
                {
                    "workload": workload,
                    "what": name,
                    "leaves": len(leaves),
                    "us": common.median(s) * 1e6,
                    "range": common.spread([x * 1e6 for x in s]),
                }
            )
    if args.json:
        for row in rows:
            common.emit_json({"bench": "flatten", **row})
    else:
        print(
            common.table(
                rows,
                [
                    ("workload", "workload", ""),
                    ("what", "what", ""),
                    ("leaves", "leaves", ""),
                    ("us", "us/call (median)", ".1f"),
                    ("range", "range (us)", ""),
                ],
            )
        )
    common.finish(env, args.json, "flatten")


if __name__ == "__main__":
    main()
