"""Policy benchmarks, in one run:

1. State-to-command latency through Fast DDS: a lockstep client publishes /leap_hand/joint_states and
   times (perf_counter) until the HandCommand answering each state arrives from a real rotation_policy
   process (generalist + residual) pinned to one core (taskset -c 0). Baseline: the 50 ms control tick.
   Measured for the installed default models and for the training-default size (width 256, 2 blocks).
2. onnxruntime (single thread) against PyTorch eager (one thread) for the same generalist network,
   batch 1, median per-call time. Needs the training package (torch).

    python -m dexndm_policy.bench [--states 400]

Ends with one key=value line.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dexndm_description import hand

TICK_MS = hand.CONTROL_DT * 1e3


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def dds_latency(generalist: str, residual: str, states: int, warmup: int = 30) -> dict[str, float]:
    """p50/p99 state-to-command latency (ms) and the policy's median inference time (ms)."""
    import rclpy
    from ament_index_python.packages import get_package_prefix
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState

    from dexndm_msgs.msg import HandCommand, PolicyStep

    executable = Path(get_package_prefix("dexndm_policy")) / "lib" / "dexndm_policy" / "rotation_policy"
    cmd = [str(executable), "--ros-args", "-p", f"generalist_model:={generalist}", "-p", f"residual_model:={residual}",
           "-p", "residual:=true"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node = Node("policy_bench_client")
    answers: dict[tuple[int, int], float] = {}
    inference: list[float] = []
    node.create_subscription(HandCommand, "/leap_hand/command", lambda m: answers.setdefault(
        (m.state_stamp.sec, m.state_stamp.nanosec), time.perf_counter()), reliable)
    node.create_subscription(PolicyStep, "/dexndm/policy/step", lambda m: inference.append(m.inference_ms), reliable)
    pub = node.create_publisher(JointState, "/leap_hand/joint_states", reliable)
    try:
        deadline = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 or node.count_publishers("/leap_hand/command") == 0:
            rclpy.spin_once(node, timeout_sec=0.05)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rotation_policy did not come up: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
        latencies = []
        q = hand.CANONICAL_POSE.copy()
        for k in range(1, warmup + states + 1):
            msg = JointState(name=list(hand.JOINT_NAMES), position=q.tolist())
            key = divmod(k * 50_000_000, 1_000_000_000)
            msg.header.stamp.sec, msg.header.stamp.nanosec = key
            sent = time.perf_counter()
            pub.publish(msg)
            while key not in answers and time.perf_counter() - sent < 2.0:
                rclpy.spin_once(node, timeout_sec=0.005)
            if key not in answers:
                raise RuntimeError(f"state {k} was not answered within 2 s")
            if k > warmup:
                latencies.append((answers[key] - sent) * 1e3)
        rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        proc.send_signal(2)
        proc.wait(timeout=10)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "inference": statistics.median(inference[warmup:]) if len(inference) > warmup else float("nan")}


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
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # keep the client off the policy's core
    import rclpy

    from dexndm_policy.runtime import default_model_path
    from dexndm_policy.make_default_models import make

    figures: dict[str, float] = {}
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory(prefix="dexndm-bench-") as tmp:
            big = Path(tmp) / "w256"
            make(big, width=256, blocks=2)
            for label, gen, res in (("default", default_model_path("generalist"), default_model_path("residual")),
                                    ("w256", big / "generalist.onnx", big / "residual.onnx")):
                lat = dds_latency(str(gen), str(res), args.states)
                print(f"[{label}] state->command through DDS, generalist+residual, policy on core 0: "
                      f"p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  (inference p50 {lat['inference']:.3f} ms)  "
                      f"p99 / {TICK_MS:.0f} ms tick = {lat['p99'] / TICK_MS:.4f}")
                suffix = "" if label == "default" else "_w256"
                figures.update({f"latency_p50_ms{suffix}": lat["p50"], f"latency_p99_ms{suffix}": lat["p99"],
                                f"p99_over_tick{suffix}": lat["p99"] / TICK_MS, f"inference_p50_ms{suffix}": lat["inference"]})
            for width, blocks in ((64, 1), (256, 2)):
                r = ort_vs_torch(width, blocks, Path(tmp))
                print(f"[generalist {width}x{blocks}] batch 1, one thread: onnxruntime {r['ort_us']:.1f} us  "
                      f"PyTorch eager {r['torch_us']:.1f} us  torch/ort = {r['ratio']:.2f}")
                figures.update({f"ort_us_w{width}": r["ort_us"], f"torch_us_w{width}": r["torch_us"],
                                f"torch_over_ort_w{width}": r["ratio"]})
    finally:
        rclpy.try_shutdown()
    print(f"tick_ms={TICK_MS:.0f} " + " ".join(f"{k}={v:.4f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
