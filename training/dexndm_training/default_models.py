"""`dexndm-train make-default-models --out DIR`: an UNTRAINED generalist and residual of the right shape.

They follow the ONNX contract and let the whole stack run end to end before a trained generalist
exists; they do not rotate anything (the residual starts at exactly zero). Each model gets a JSON of
its config beside it. The shipped models in src/dexndm_policy/models/ are trained: `--out` has no
default, so this never overwrites them by accident.
"""
from __future__ import annotations

import json
from pathlib import Path

from dexndm_policy import contract

MADE_BY = "dexndm-train make-default-models"


def make(out: str | Path, width: int = 64, blocks: int = 1, seed: int = 0) -> dict[str, float]:
    """Export both models into `out`; returns the parity error of each export."""
    import torch

    from dexndm_training import export
    from dexndm_training.networks import GeneralistPolicy, ResidualPolicy

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    errors = {}
    for kind, net in ((contract.KIND_GENERALIST, GeneralistPolicy(width, blocks)),
                      (contract.KIND_RESIDUAL, ResidualPolicy(width, blocks))):
        config = {"network": type(net).__name__, "width": width, "blocks": blocks, "seed": seed, "trained": False,
                  "made_by": MADE_BY}
        errors[kind] = export.export_policy(net, kind, out / f"{kind}.onnx", config, "none (untrained)")
        (out / f"{kind}.json").write_text(json.dumps({**config, "parity_error": errors[kind]}, indent=2) + "\n")
    return errors


def register(subparsers) -> None:
    """The `make-default-models` subcommand of dexndm-train."""
    p = subparsers.add_parser("make-default-models", help="export an untrained generalist + residual pair (contract "
                              "shape, zero residual) so the stack runs before training")
    p.add_argument("--out", required=True, type=Path, help="directory for generalist.onnx, residual.onnx and their JSON")
    p.add_argument("--width", type=int, default=64, help="hidden width of both networks")
    p.add_argument("--blocks", type=int, default=1, help="residual blocks of both networks")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the random weights")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    errors = make(args.out, args.width, args.blocks, args.seed)
    sizes = {k: (args.out / f"{k}.onnx").stat().st_size // 1024 for k in errors}
    print(" ".join(f"{k}_kb={sizes[k]} {k}_parity={errors[k]:.1e}" for k in errors))
    return 0
