"""Does the rerun viewer slow the control loop? One run of the rotate graph, viewer off and on in turn.

The rotate app's hand_driver (simulated hand, paced to the wall clock: 20 Hz) and rotation_policy run
for the whole benchmark; a probe node in this process stands in for rotation_monitor (it opens the
driver's start gate) and measures the state->command latency as the monitor does (the state's DDS
source timestamp to the answering command's DDS reception timestamp). Phases alternate, off first and
last: off, on, off, on, ..., off. For an on phase the app's rerun_viewer (viz:=rerun, its .rrd in a
temp dir) is started, measured once it has signalled ready and settled, and stopped; its start-up and
shutdown are not measured. Each on phase is paired with the two off phases around it, so slow drift of
the machine's load falls on both sides of every pair. Every recording is read back afterwards
(rerun's dataframe API) to check the viewer kept up: one row per state it received, no gap.

    python -m dexndm.bench_viz [--cycles 8] [--phase-s 10]

Ends with one key=value line: per condition the pooled p99 and p50 (off: the off phases around each on
phase), their difference with a 90 % interval from a bootstrap over pairs, the median over pairs of the
per-pair p99 difference, the viewer's rows, gaps and CPU. ok=1 when the
viewer kept up and the p99 with it is within LIMIT_MS of the p99 without it both pooled and as the
median over pairs (the pooled figure alone moves by +-1.5 ms run to run on a loaded 2-core machine).
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

from dexndm import graph
from dexndm.runner import graph_environment, node_command
from dexndm_description.interfaces import HAND_COMMAND, MONITOR_READY

LIMIT_MS = 1.0  # the viewer may add at most this to the p99
BOOTSTRAP = 2000  # resamples of the pairs for the interval of the pooled difference
READBACK_S = 6.0  # s to read one recording back at the end (a loaded machine), for --budget-s


class Probe:
    """State->command latency (ms) and wall-clock command rate, collected into the current phase; it
    publishes the monitor's ready signal (the driver's start gate) and counts the viewer's."""

    def __init__(self):
        import rclpy
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Empty

        from dexndm_description import interfaces as ros
        from dexndm_msgs.msg import HandCommand

        self.rclpy = rclpy
        self.node = Node("viz_bench_probe")
        qos = ros.MONITOR_STREAM.profile()
        self.written: dict[int, float] = {}
        self.phase: list[float] | None = None
        self.received: list[float] | None = None
        self.states: list[tuple[float, float]] = []  # (stamp s, DDS source s) of the phase's states
        self.early: dict[int, float] = {}  # state stamp -> reception s of commands taken before their state
        self.viewer_ready = 0
        self.node.create_subscription(JointState, ros.JOINT_STATES, self.on_state, qos)
        self.node.create_subscription(HandCommand, ros.HAND_COMMAND, self.on_command, qos)
        self.node.create_subscription(Empty, ros.VIEWER_READY, self.on_viewer_ready, ros.LATCHED.profile())
        self.node.create_publisher(Empty, ros.MONITOR_READY, ros.LATCHED.profile()).publish(Empty())

    def on_state(self, msg, info) -> None:
        stamp, written = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, info["source_timestamp"] * 1e-9
        self.written[stamp] = written
        if self.phase is not None:
            self.states.append((stamp * 1e-9, written))
            if stamp in self.early:  # its command was taken first (the topics are not ordered with each other)
                self.add(written, self.early.pop(stamp))
        if len(self.written) > 2000:
            for key in sorted(self.written)[:1000]:
                del self.written[key]

    def on_command(self, msg, info) -> None:
        stamp, received = msg.state_stamp.sec * 10**9 + msg.state_stamp.nanosec, info["received_timestamp"] * 1e-9
        if self.phase is None:
            return
        if stamp in self.written:
            self.add(self.written[stamp], received)
        else:
            self.early[stamp] = received

    def add(self, written: float, received: float) -> None:
        self.phase.append(1e3 * (received - written))
        self.received.append(received)

    def on_viewer_ready(self, _msg) -> None:
        self.viewer_ready += 1

    def phase_ready(self) -> bool:
        """States arrive and the policy answers them."""
        return bool(self.written) and self.node.count_publishers(HAND_COMMAND) > 0

    def spin(self, seconds: float, until=None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def measure(self, seconds: float) -> tuple[np.ndarray, float, float]:
        """Latencies (ms), the command rate (Hz, wall clock) and the sim's pace (sim s per wall s: 1 when
        the driver keeps every 50 ms tick) over `seconds`."""
        self.phase, self.received, self.states, self.early = [], [], [], {}
        self.spin(seconds)
        lat, rec, states = self.phase, self.received, self.states
        self.phase = self.received = None
        rec = sorted(rec)
        rate = (len(rec) - 1) / (rec[-1] - rec[0]) if len(rec) > 1 else float("nan")
        pace = ((states[-1][0] - states[0][0]) / (states[-1][1] - states[0][1]) if len(states) > 1
                else float("nan"))
        return np.asarray(lat), rate, pace


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


def p99(samples) -> float:
    return float(np.percentile(samples, 99))


def compare(off: list[np.ndarray], on: list[np.ndarray], seed: int = 0) -> dict[str, float]:
    """Off phases 0..n around on phases 0..n-1 (on[k] between off[k] and off[k+1]). Each on phase is compared
    with the off time around it (both neighbours; the inner off phases so count twice, and every pair has
    as much off time before its on phase as after it). Returns the pooled p99 and p50 of either condition
    and their difference, a 90 % interval (5 %, 95 %) of that difference from a bootstrap over whole pairs,
    and the median over pairs of the per-pair p99 difference."""
    assert len(off) == len(on) + 1 and on
    around = [np.concatenate((off[k], off[k + 1])) for k in range(len(on))]

    def delta(pick) -> float:
        return p99(np.concatenate([on[k] for k in pick])) - p99(np.concatenate([around[k] for k in pick]))

    rng = np.random.default_rng(seed)
    low, high = np.percentile([delta(rng.integers(0, len(on), len(on))) for _ in range(BOOTSTRAP)], [5, 95])
    pooled_off, pooled_on = np.concatenate(around), np.concatenate(on)
    return {"p99_off_ms": p99(pooled_off), "p99_on_ms": p99(pooled_on), "p99_delta_ms": delta(range(len(on))),
            "p99_delta_low_ms": float(low), "p99_delta_high_ms": float(high),
            "pair_p99_delta_median_ms": statistics.median(p99(b) - p99(a) for a, b in zip(around, on)),
            "p50_off_ms": float(np.median(pooled_off)), "p50_on_ms": float(np.median(pooled_on)),
            "states_off": sum(map(len, off)), "states_on": len(pooled_on)}


def kept_up(rrd: Path, output: str) -> tuple[int, int, int]:
    """(states the viewer received, rows in its recording, gaps in sim time); -1 where unknown."""
    from dexndm_viz.readback import summarize

    logged = re.search(r"logged (\d+) states \((\d+) received\)", output)
    summary = summarize(rrd, "driver_time", "/joints/if_abd") if rrd.is_file() else None
    stamps = np.array([t.total_seconds() for t in summary.index]) if summary else np.zeros(0)
    gaps = int(np.sum(np.diff(stamps) > 1.5 * 0.05)) if len(stamps) > 1 else -1
    return int(logged.group(2)) if logged else -1, len(stamps), gaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=8, help="on phases (each between two off phases)")
    parser.add_argument("--phase-s", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--settle-s", type=float, default=2.0, help="unmeasured seconds after each viewer start/stop")
    parser.add_argument("--budget-s", type=float, default=0.0,
                        help="wall seconds for the whole run: no new cycle once one more would not fit (0: no limit)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    app = graph.load_app("rotate")
    work = Path(tempfile.mkdtemp(prefix="dexndm-viz-bench-"))
    given = {"realtime_factor": "1.0", "duration": "1000", "plot": "", "viz": "rerun", "viz_port": "0",
             "viz_recording": str(work / "viewer.rrd")}
    specs = {s.executable: s for s in app.nodes(graph.resolve_arguments(app, given))}
    specs["hand_driver"].parameters["start_gate"] = MONITOR_READY  # the probe's: viewers come and go
    viewer_spec = specs["rerun_viewer"]  # as the app starts it
    rclpy.init()
    probe = Probe()
    procs = [start(specs[name], work) for name in ("hand_driver", "rotation_policy")]
    off, on, rates, paces, viewer_cpu, recordings = [], [], {"off": [], "on": []}, {"off": [], "on": []}, [], []

    def viewer_start(k: int) -> subprocess.Popen:
        viewer_spec.parameters["recording"] = str(work / f"viewer_{k}.rrd")
        readies = probe.viewer_ready
        proc = start(viewer_spec, work, f"_{k}")
        probe.spin(120.0, until=lambda: probe.viewer_ready > readies or proc.poll() is not None)
        if probe.viewer_ready == readies:
            raise RuntimeError(f"viewer {k} never signalled ready: {stop(proc)[-2000:]}")
        return proc

    try:
        probe.spin(120.0, until=lambda: bool(probe.phase_ready()))
        if not probe.phase_ready():
            raise RuntimeError("the graph did not come up within 120 s")
        probe.spin(5.0)  # warm-up, unmeasured
        cycle_s = 0.0  # wall seconds of the last cycle, the off phase after it included
        for cycle in range(args.cycles + 1):
            lat, rate, pace = probe.measure(args.phase_s)
            off.append(lat)
            rates["off"].append(rate)
            paces["off"].append(pace)
            if cycle == args.cycles or (args.budget_s and cycle and time.monotonic() - began + cycle_s
                                        + READBACK_S * (cycle + 1) > args.budget_s):
                break  # the last phase was an off phase: every on phase has one on either side
            t_start = time.monotonic()
            viewer = viewer_start(cycle)
            ready_s = time.monotonic() - t_start
            probe.spin(args.settle_s)
            cpu0, t0 = cpu_seconds(viewer.pid), time.monotonic()
            lat, rate, pace = probe.measure(args.phase_s)
            paces["on"].append(pace)
            viewer_cpu.append((cpu_seconds(viewer.pid) - cpu0) / (time.monotonic() - t0))
            on.append(lat)
            rates["on"].append(rate)
            recordings.append((work / f"viewer_{cycle}.rrd", stop(viewer)))
            print(f"cycle {cycle}: off p99 {p99(off[-1]):.3f} ms ({len(off[-1])} states, pace "
                  f"{paces['off'][-1]:.3f}), on p99 {p99(on[-1]):.3f} ms ({len(on[-1])}, pace {paces['on'][-1]:.3f}), "
                  f"viewer ready in {ready_s:.1f} s, {100 * viewer_cpu[-1]:.1f} % of a core, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            probe.spin(args.settle_s)
            cycle_s = time.monotonic() - t_start + args.phase_s  # this cycle and the next off phase
    finally:
        for proc in procs:
            stop(proc)
        probe.node.destroy_node()
        rclpy.try_shutdown()
    load = os.getloadavg()[0]
    figures = compare(off, on)
    checks = [kept_up(rrd, output) for rrd, output in recordings]
    complete = all(gaps == 0 and rows == received > 0 for received, rows, gaps in checks)
    ok = figures["p99_delta_ms"] <= LIMIT_MS and figures["pair_p99_delta_median_ms"] <= LIMIT_MS and complete
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
          + f" rate_hz_off={statistics.median(rates['off']):.2f} rate_hz_on={statistics.median(rates['on']):.2f}"
          f" sim_pace_off={statistics.median(paces['off']):.3f} sim_pace_on={statistics.median(paces['on']):.3f}"
          f" viewer_rows={sum(c[1] for c in checks)} viewer_gaps={sum(max(c[2], 0) for c in checks)}"
          f" viewer_complete={int(complete)} viewer_cpu_core={statistics.median(viewer_cpu):.3f}"
          f" cycles={len(on)} load_avg={load:.2f} bench_s={time.monotonic() - began:.0f} ok={int(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
