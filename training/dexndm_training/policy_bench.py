"""Policy benchmarks that need the training package (torch), in one run:

1. State-to-command latency through Fast DDS (dexndm_policy.bench.dds_latency) for the installed default
   models and for an untrained pair of the training-default size (width 256, 2 blocks) exported on the
   spot, against the 50 ms control tick.
2. onnxruntime (single thread) against PyTorch eager (one thread) for the same generalist network,
   batch 1, median per-call time, at width 64 x 1 block and 256 x 2.

    python -m dexndm_training.policy_bench [--states 400]

Ends with one key=value line.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dexndm_policy import bench
from dexndm_training import default_models


def ort_vs_torch(width: int, blocks: int, out: Path, calls: int = 2000) -> dict[str, float]:
    """Median per-call time (us) at batch 1 of one generalist in onnxruntime and in PyTorch eager."""
    import torch

    from dexndm_policy.runtime import OnnxPolicyModel
    from dexndm_training import export
    from dexndm_training.networks import GeneralistPolicy

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = GeneralistPolicy(width, blocks).eval()
    path = out / f"generalist_w{width}_b{blocks}.onnx"
    export.export_policy(net, "generalist", path, {"width": width, "blocks": blocks}, "bench (untrained)")
    model = OnnxPolicyModel(path, "generalist")
    obs = export.example_inputs("generalist", 1)["obs"]
    obs_t = torch.from_numpy(obs)

    def timed(fn) -> float:
        for _ in range(50):
            fn()
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e6

    with torch.inference_mode():
        torch_us = timed(lambda: net(obs_t))
    ort_us = timed(lambda: model(obs))
    return {"ort_us": ort_us, "torch_us": torch_us, "ratio": torch_us / ort_us}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=400, help="lockstep states timed per model size")
    args = parser.parse_args(argv)
    bench.keep_client_off_policy_core()
    import rclpy

    from dexndm_policy.runtime import default_model_path

    figures: dict[str, float] = {}
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory(prefix="dexndm-bench-") as tmp:
            big = Path(tmp) / "w256"
            default_models.make(big, width=256, blocks=2)
            for label, gen, res in (("default", default_model_path("generalist"), default_model_path("residual")),
                                    ("w256", big / "generalist.onnx", big / "residual.onnx")):
                lat = bench.dds_latency(str(gen), str(res), args.states)
                print(bench.report_line(label, lat))
                figures.update(bench.figures(lat, "" if label == "default" else "_w256"))
            for width, blocks in ((64, 1), (256, 2)):
                r = ort_vs_torch(width, blocks, Path(tmp))
                print(f"[generalist {width}x{blocks}] batch 1, one thread: onnxruntime {r['ort_us']:.1f} us  "
                      f"PyTorch eager {r['torch_us']:.1f} us  torch/ort = {r['ratio']:.2f}")
                figures.update({f"ort_us_w{width}": r["ort_us"], f"torch_us_w{width}": r["torch_us"],
                                f"torch_over_ort_w{width}": r["ratio"]})
    finally:
        rclpy.try_shutdown()
    print(f"tick_ms={bench.TICK_MS:.0f} " + " ".join(f"{k}={v:.4f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
