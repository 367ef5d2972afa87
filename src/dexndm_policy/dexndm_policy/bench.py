"""Policy benchmark: state-to-command latency through Fast DDS, against the 50 ms control tick.

A lockstep client publishes /leap_hand/joint_states and times (perf_counter) until the HandCommand
answering each state arrives from a real rotation_policy process (generalist + residual) pinned to one
core (taskset -c 0). Measured for the installed default models, or for the models given.

    python -m dexndm_policy.bench [--states 400] [--generalist PATH --residual PATH]

Ends with one key=value line. The figures that need torch (a width-256 pair exported on the spot,
onnxruntime against PyTorch eager) come from the training package's policy bench (`make bench`), which
reuses `dds_latency` from here: this package never imports training.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dexndm_description import hand
from dexndm_description import interfaces as ros

TICK_MS = hand.CONTROL_DT * 1e3


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def dds_latency(generalist: str, residual: str, states: int, warmup: int = 30) -> dict[str, float]:
    """p50/p99 state-to-command latency (ms) and the policy's median inference time (ms)."""
    import rclpy
    from ament_index_python.packages import get_package_prefix
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from dexndm_msgs.msg import HandCommand, PolicyStep

    executable = Path(get_package_prefix("dexndm_policy")) / "lib" / "dexndm_policy" / "rotation_policy"
    cmd = [str(executable), "--ros-args", "-p", f"generalist_model:={generalist}", "-p", f"residual_model:={residual}",
           "-p", "residual:=true"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stream = ros.STREAM.profile()
    node = Node("policy_bench_client")
    answers: dict[int, float] = {}  # state stamp (ns) -> when its command arrived
    inference: list[float] = []
    node.create_subscription(HandCommand, ros.HAND_COMMAND, lambda m: answers.setdefault(
        ros.stamp_to_ns(m.state_stamp), time.perf_counter()), stream)
    node.create_subscription(PolicyStep, ros.POLICY_STEP, lambda m: inference.append(m.inference_ms), stream)
    pub = node.create_publisher(JointState, ros.JOINT_STATES, stream)
    try:
        deadline = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 or node.count_publishers(ros.HAND_COMMAND) == 0:
            rclpy.spin_once(node, timeout_sec=0.05)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rotation_policy did not come up: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
        latencies = []
        q = hand.CANONICAL_POSE.copy()
        for k in range(1, warmup + states + 1):
            msg = JointState(name=list(hand.JOINT_NAMES), position=q.tolist())
            key = k * round(hand.CONTROL_DT * ros.NS_PER_S)
            ros.set_stamp(msg.header.stamp, key)
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


def main(argv: list[str] | None = None) -> int:
    from dexndm_policy.runtime import default_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=400, help="lockstep states timed")
    parser.add_argument("--generalist", type=Path, default=default_model_path("generalist"),
                        help="generalist ONNX model (default: the installed one)")
    parser.add_argument("--residual", type=Path, default=default_model_path("residual"),
                        help="residual ONNX model (default: the installed one)")
    args = parser.parse_args(argv)
    keep_client_off_policy_core()
    import rclpy

    rclpy.init()
    try:
        lat = dds_latency(str(args.generalist), str(args.residual), args.states)
    finally:
        rclpy.try_shutdown()
    given = (args.generalist, args.residual) != (default_model_path("generalist"), default_model_path("residual"))
    print(report_line("given" if given else "default", lat))
    print(f"tick_ms={TICK_MS:.0f} " + " ".join(f"{k}={v:.4f}" for k, v in figures(lat).items()))
    return 0


def keep_client_off_policy_core() -> None:
    """The client runs on core 1, the policy (taskset -c 0) on core 0, where the machine has two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})


def report_line(label: str, lat: dict[str, float]) -> str:
    return (f"[{label}] state->command through DDS, generalist+residual, policy on core 0: "
            f"p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  (inference p50 {lat['inference']:.3f} ms)  "
            f"p99 / {TICK_MS:.0f} ms tick = {lat['p99'] / TICK_MS:.4f}")


def figures(lat: dict[str, float], suffix: str = "") -> dict[str, float]:
    """The key=value figures of one latency run (suffix tells model sizes apart)."""
    return {f"latency_p50_ms{suffix}": lat["p50"], f"latency_p99_ms{suffix}": lat["p99"],
            f"p99_over_tick{suffix}": lat["p99"] / TICK_MS, f"inference_p50_ms{suffix}": lat["inference"]}


if __name__ == "__main__":
    sys.exit(main())
