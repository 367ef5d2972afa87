"""Latency from a controller frame to the published arm target, on loopback.

    scripts/run python src/dexndm_teleop/test/bench.py [--steps 200]

Headless Chromium runs the real page with IWER (a Quest 3); the teleop node runs as its own
process; this process holds the clutch, nudges the right controller by 1 mm back and forth, and
times each step until the matching PoseStamped target arrives on ROS. Three clock origins:

- set:   this process, just before it sets the controller pose over CDP (includes the wait for
         the next XR frame, up to one frame interval);
- frame: the XR frame's timestamp the page sends (performance.timeOrigin + frame time);
- send:  the moment the page hands that frame's message to WebSocket.send (wrapped for the bench).

Page times are Chromium's clock; arrival is this process's time.time(). Their offset is measured
over CDP (the probe with the shortest round trip) and subtracted; its uncertainty is printed.
Baseline, measured in the same run: the median XR frame interval. Prints medians and p99, and
ends with one key=value line.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import numpy as np
import rclpy

from teleop_testing.browser import Chromium  # beside this script (src/dexndm_teleop/test), on sys.path[0]
from teleop_testing.harness import TeleopProcess
from teleop_testing.ros_probe import Probe

RIGHT = "__xrDevice.controllers.right"
RECORD_SENDS = ("(() => { window.__sends = []; const send = WebSocket.prototype.send; WebSocket.prototype.send = function (d) "
                "{ window.__sends.push([performance.timeOrigin + performance.now(), d]); return send.call(this, d); }; })();")
STEP_M = 0.001


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def clock_offset_ms(browser: Chromium, probes: int = 30) -> tuple[float, float]:
    """(page clock - time.time(), half round trip) in ms, from the probe with the shortest round trip."""
    best = None
    for _ in range(probes):
        before = time.time() * 1e3
        page = browser.evaluate("performance.timeOrigin + performance.now()")
        after = time.time() * 1e3
        if best is None or after - before < best[1] * 2:
            best = (page - (before + after) / 2, (after - before) / 2)
    return best


def run(steps: int) -> dict:
    rclpy.init()
    # Private names: the benchmark's stand-in arm must never meet a real arm's topics.
    topics = {"target_topic": "/dexndm_bench/target", "arm_pose_topic": "/dexndm_bench/arm_pose",
              "policy_service": "/dexndm_bench/policy_enable"}
    probe = Probe(topics["target_topic"], topics["arm_pose_topic"], policy_service=topics["policy_service"])
    teleop = TeleopProcess({"port": 0, "https": False, "arm_source": "pose", **topics})
    try:
        with Chromium() as browser:
            browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_SENDS})
            browser.open(teleop.url)
            browser.enter_vr()
            browser.wait_for("window.dexndmTeleop.status !== null && window.dexndmTeleop.status.arm === 'ok'")
            browser.evaluate(f"{RIGHT}.updateButtonValue('squeeze', 1)")
            browser.wait_for("window.dexndmTeleop.status.following")
            offset_ms, offset_err_ms = clock_offset_ms(browser)
            start = browser.evaluate(f"[{RIGHT}.position.x, {RIGHT}.position.y, {RIGHT}.position.z]")
            z0 = probe.targets_since(probe.target_count() - 1)[0].pose.position.z
            set_ms, arrive_ms, frames_before = [], [], browser.evaluate("window.__sends.length")
            for i in range(steps):
                up = i % 2 == 0
                expected = z0 + (STEP_M if up else 0.0)
                index = probe.target_count()
                set_ms.append(time.time() * 1e3)
                browser.evaluate(f"{RIGHT}.position.set({start[0]}, {start[1] + (STEP_M if up else 0.0)}, {start[2]})")

                def arrived():
                    with probe.lock:
                        for stamp, msg in probe.targets[index:]:
                            if abs(msg.pose.position.z - expected) < 1e-7:
                                return stamp
                    return None
                if not probe.wait(lambda: arrived() is not None, 5.0):
                    raise RuntimeError(f"step {i}: no target reached z={expected:.4f}")
                arrive_ms.append(arrived() * 1e3)
                time.sleep(random.uniform(0.0, 0.02))  # spread the steps over the frame phase
            sends = browser.evaluate(f"window.__sends.slice({frames_before})")
    finally:
        teleop.stop()
        probe.close()
        rclpy.try_shutdown()

    # The frame that carried each step: the first one sent after the pose was set whose y changed.
    sent = [(t_send - offset_ms, json.loads(d)) for t_send, d in sends]
    sent = [(t, m["t"] - offset_ms, m["right"]["pos"][1]) for t, m in sent if m["type"] == "frame" and m["right"]]
    frame_times = [f for _, f, _ in sent]
    interval = statistics.median(np.diff(frame_times))
    frame_lat, send_lat = [], []
    last_y = None
    cursor = 0
    for t_set, t_arrive in zip(set_ms, arrive_ms):
        while cursor < len(sent) and (sent[cursor][0] < t_set - offset_err_ms or sent[cursor][2] == last_y):
            if last_y is None:
                last_y = sent[cursor][2]
            cursor += 1
        if cursor == len(sent):
            break
        t_send, t_frame, last_y = sent[cursor]
        frame_lat.append(t_arrive - t_frame)
        send_lat.append(t_arrive - t_send)
    set_lat = [a - s for s, a in zip(set_ms, arrive_ms)]
    return {
        "steps": len(set_lat), "matched": len(frame_lat),
        "frame_to_target_p50_ms": statistics.median(frame_lat), "frame_to_target_p99_ms": percentile(frame_lat, 99),
        "send_to_target_p50_ms": statistics.median(send_lat), "send_to_target_p99_ms": percentile(send_lat, 99),
        "set_to_target_p50_ms": statistics.median(set_lat), "set_to_target_p99_ms": percentile(set_lat, 99),
        "frame_interval_ms": interval,
        "frame_to_target_p50_over_frame_interval": statistics.median(frame_lat) / interval,
        "clock_offset_ms": offset_ms, "clock_offset_uncertainty_ms": offset_err_ms,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="controller steps to time")
    args = parser.parse_args(argv)
    r = run(args.steps)
    print(f"controller steps timed: {r['steps']} (matched to their XR frame: {r['matched']})")
    for origin in ("frame", "send", "set"):
        print(f"  {origin:>5} -> target: p50 {r[f'{origin}_to_target_p50_ms']:7.2f} ms   p99 {r[f'{origin}_to_target_p99_ms']:7.2f} ms")
    print(f"  baseline: XR frame interval (median) {r['frame_interval_ms']:.2f} ms; "
          f"frame -> target p50 = {r['frame_to_target_p50_over_frame_interval']:.2f} frame intervals")
    print(f"  page clock offset {r['clock_offset_ms']:.3f} ms +- {r['clock_offset_uncertainty_ms']:.3f} ms (subtracted)")
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
