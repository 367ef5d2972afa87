"""Write the default models: UNTRAINED generalist and residual of the right shape, from the project's export code.

    python -m dexndm_policy.make_default_models [--out DIR] [--width 64] [--blocks 1] [--seed 0]

They follow the ONNX contract and let the whole stack run end to end before a trained generalist
exists; they do not rotate anything (the residual starts at exactly zero). Training replaces
generalist.onnx (and residual.onnx) with trained ones. Needs the `training/` package (torch).
Each model gets a JSON of its config beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dexndm_policy import contract

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "models"


def make(out: Path, width: int = 64, blocks: int = 1, seed: int = 0) -> dict[str, float]:
    """Export both models into `out`; returns the parity error of each."""
    import torch

    from dexndm_training import export
    from dexndm_training.networks import GeneralistPolicy, ResidualPolicy

    torch.manual_seed(seed)
    errors = {}
    for kind, net in ((contract.KIND_GENERALIST, GeneralistPolicy(width, blocks)),
                      (contract.KIND_RESIDUAL, ResidualPolicy(width, blocks))):
        config = {"network": type(net).__name__, "width": width, "blocks": blocks, "seed": seed, "trained": False,
                  "made_by": "python -m dexndm_policy.make_default_models"}
        errors[kind] = export.export_policy(net, kind, out / f"{kind}.onnx", config, "none (untrained)")
        (out / f"{kind}.json").write_text(json.dumps({**config, "parity_error": errors[kind]}, indent=2) + "\n")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    errors = make(args.out, args.width, args.blocks, args.seed)
    sizes = {k: (args.out / f"{k}.onnx").stat().st_size // 1024 for k in errors}
    print(" ".join(f"{k}_kb={sizes[k]} {k}_parity={errors[k]:.1e}" for k in errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
