"""Does the rerun viewer slow the control loop? One run of the rotate graph, viewer off and on in turn.

The rotate app's hand_driver (simulated hand, paced to the wall clock: 20 Hz) and rotation_policy run
for the whole benchmark. A probe node in this process measures the state->command latency exactly as
rotation_monitor does (the state's DDS source timestamp to the answering command's DDS reception
timestamp). Phases alternate: viewer off, then the app's rerun_viewer (viz:=rerun, an .rrd in a temp
dir) started, measured once it has subscribed and settled, stopped; and so on. Transitions (viewer
start-up and shutdown) are not measured. Each viewer recording is read back (rerun's dataframe API)
to check it kept up: one row per state of its lifetime, no gap.

    python -m dexndm.bench_viz [--cycles 8] [--phase-s 12]

Short phases, many of them, so that load from other work on the machine falls on both conditions alike.
Ends with one key=value line: pooled p99/p50 per condition, the median over phases of the p99, the median
of the paired per-cycle p99 differences, and ok=1 when the pooled p99 with the viewer is within 1 ms of
the pooled p99 without it and every viewer recording is complete.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dexndm import graph, viz
from dexndm_description import interfaces as ros
from dexndm.runner import graph_environment, node_command

LIMIT_MS = 1.0  # the viewer may add at most this to the p99


class Probe:
    """State->command latency (ms) and wall-clock command rate, collected into the current phase."""

    def __init__(self):
        import rclpy
        from rclpy.node import Node
        from sensor_msgs.msg import JointState

        from dexndm_msgs.msg import HandCommand

        self.rclpy = rclpy
        self.node = Node("viz_bench_probe")
        qos = ros.MONITOR_STREAM.profile()
        self.written: dict[int, float] = {}
        self.phase: list[float] | None = None
        self.received: list[float] | None = None
        self.node.create_subscription(JointState, ros.JOINT_STATES, self.on_state, qos)
        self.node.create_subscription(HandCommand, ros.HAND_COMMAND, self.on_command, qos)

    def on_state(self, msg, info) -> None:
        self.written[ros.stamp_to_ns(msg.header.stamp)] = info["source_timestamp"] * 1e-9
        if len(self.written) > 2000:
            for key in sorted(self.written)[:1000]:
                del self.written[key]

    def on_command(self, msg, info) -> None:
        written = self.written.get(ros.stamp_to_ns(msg.state_stamp))
        if self.phase is not None and written:
            received = info["received_timestamp"] * 1e-9
            self.phase.append(1e3 * (received - written))
            self.received.append(received)

    def spin(self, seconds: float, until=None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def measure(self, seconds: float) -> tuple[list[float], float]:
        self.phase, self.received = [], []
        self.spin(seconds)
        lat, rec = self.phase, self.received
        self.phase = self.received = None
        rate = (len(rec) - 1) / (rec[-1] - rec[0]) if len(rec) > 1 else float("nan")
        return lat, rate


def start(spec, work: Path, tag: str = "") -> subprocess.Popen:
    """The node as its own process (session), its output in WORK/<name><tag>.log."""
    log = open(work / f"{spec.name}{tag}.log", "w")
    proc = subprocess.Popen(node_command(spec, work), env=graph_environment(), stdout=log, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> str:
    """SIGINT (then SIGKILL); returns what the node printed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.log_path.read_text(errors="replace")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=8, help="off/on phase pairs")
    parser.add_argument("--phase-s", type=float, default=12.0, help="measured seconds per phase")
    parser.add_argument("--settle-s", type=float, default=3.0, help="unmeasured seconds after each viewer start/stop")
    args = parser.parse_args(argv)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    from dexndm_viz.readback import summarize

    app = graph.load_app("rotate")
    given = {"realtime_factor": "1.0", "duration": "1000", "plot": ""}
    specs = {s.executable: s for s in app.nodes(graph.resolve_arguments(app, given))}
    work = Path(tempfile.mkdtemp(prefix="dexndm-viz-bench-"))
    rclpy.init()
    probe = Probe()
    procs = [start(specs[name], work) for name in ("hand_driver", "rotation_policy")]
    off, on, rates, kept_up, viewer_cpu = [], [], {"off": [], "on": []}, [], []
    try:
        probe.spin(120.0, until=lambda: bool(probe.written) and probe.node.count_publishers(ros.HAND_COMMAND) > 0)
        if probe.node.count_publishers(ros.HAND_COMMAND) == 0:
            raise RuntimeError("the graph did not come up within 120 s")
        probe.spin(10.0)  # warm-up, unmeasured
        for cycle in range(args.cycles):
            lat, rate = probe.measure(args.phase_s)
            off.append(lat)
            rates["off"].append(rate)
            rrd = work / f"viewer_{cycle}.rrd"
            spec = viz.viewer_nodes({"viz": "rerun", "viz_recording": str(rrd), "viz_port": "0"}, str(rrd), "bench",
                                    "normal_cylinder")[0]
            subscribers = probe.node.count_subscribers(ros.JOINT_STATES)
            viewer = start(spec, work, f"_{cycle}")
            probe.spin(120.0, until=lambda: probe.node.count_subscribers(ros.JOINT_STATES) > subscribers)
            probe.spin(args.settle_s)
            cpu0, t0 = cpu_seconds(viewer.pid), time.monotonic()
            lat, rate = probe.measure(args.phase_s)
            viewer_cpu.append((cpu_seconds(viewer.pid) - cpu0) / (time.monotonic() - t0))
            on.append(lat)
            rates["on"].append(rate)
            output = stop(viewer)
            logged = re.search(r"logged (\d+) states \((\d+) received\)", output)
            summary = summarize(rrd, "driver_time", "/joints/if_abd")
            stamps = np.array([t.total_seconds() for t in summary.index])
            gaps = int(np.sum(np.diff(stamps) > 1.5 * 0.05)) if len(stamps) > 1 else -1
            kept_up.append((int(logged.group(2)) if logged else -1, len(stamps), gaps))
            print(f"cycle {cycle}: off p99 {np.percentile(off[-1], 99):.3f} ms ({len(off[-1])} states), "
                  f"on p99 {np.percentile(on[-1], 99):.3f} ms ({len(on[-1])}); viewer received {kept_up[-1][0]}, "
                  f"recorded {kept_up[-1][1]} rows, {gaps} gaps, {100 * viewer_cpu[-1]:.1f} % of a core", flush=True)
            probe.spin(args.settle_s)
    finally:
        for proc in procs:
            stop(proc)
        probe.node.destroy_node()
        rclpy.try_shutdown()
    all_off, all_on = np.concatenate(off), np.concatenate(on)
    p99_off, p99_on = float(np.percentile(all_off, 99)), float(np.percentile(all_on, 99))
    phase_off = statistics.median(float(np.percentile(x, 99)) for x in off)
    phase_on = statistics.median(float(np.percentile(x, 99)) for x in on)
    paired = statistics.median(float(np.percentile(b, 99) - np.percentile(a, 99)) for a, b in zip(off, on))
    load = os.getloadavg()[0]
    ok = p99_on - p99_off <= LIMIT_MS and all(gaps == 0 and rows == received for received, rows, gaps in kept_up)
    print(f"p99_off_ms={p99_off:.3f} p99_on_ms={p99_on:.3f} p99_delta_ms={p99_on - p99_off:.3f} "
          f"p99_ratio={p99_on / p99_off:.3f} p50_off_ms={np.median(all_off):.3f} p50_on_ms={np.median(all_on):.3f} "
          f"phase_p99_median_off_ms={phase_off:.3f} phase_p99_median_on_ms={phase_on:.3f} "
          f"paired_p99_delta_median_ms={paired:.3f} "
          f"rate_hz_off={statistics.median(rates['off']):.2f} rate_hz_on={statistics.median(rates['on']):.2f} "
          f"states_off={len(all_off)} states_on={len(all_on)} viewer_rows={sum(k[1] for k in kept_up)} "
          f"viewer_gaps={sum(k[2] for k in kept_up)} viewer_cpu_core={statistics.median(viewer_cpu):.3f} "
          f"load_avg={load:.2f} ok={int(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
