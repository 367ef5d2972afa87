"""gap_monitor: the live reality-gap monitor (logic in dexndm_policy.gap_monitor).

Subscribes to /leap_hand/joint_states and /dexndm/policy/step (executed targets), publishes every joint's
one-step prediction error of dynamics.onnx on /dexndm/gap/error (dexndm_msgs/DynamicsGap) each tick and a
`dexndm/gap_monitor` status on /diagnostics (WARN while the hand is outside the model's fitted ranges). At
shutdown it prints the run's figures as one key=value line (with its own CPU time per tick).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty

from dexndm_description import hand
from dexndm_description import interfaces as ros
from dexndm_msgs.msg import DynamicsGap, PolicyStep
from dexndm_policy.gap_monitor import DynamicsModel, GapMonitor, GapTick

RELIABLE = ros.MONITOR_STREAM.profile()  # deep queues: unpaced simulation runs the graph at hundreds of Hz
OK, WARN = 0, 1


class GapMonitorNode(Node):
    def __init__(self):
        super().__init__("gap_monitor")
        p = {name: self.declare_parameter(name, default).value for name, default in (
            ("model", ""), ("range_margin", 0.02), ("max_tick_gap", 0.075), ("diagnostics_period", 1.0))}
        self.model = DynamicsModel(p["model"] or None)
        self.monitor = GapMonitor(self.model, p["range_margin"], p["max_tick_gap"])
        self.gap_pub = self.create_publisher(DynamicsGap, ros.GAP_ERROR, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, ros.DIAGNOSTICS, ros.STREAM.profile())
        self._inputs = [self.create_subscription(JointState, ros.JOINT_STATES, self.on_state, RELIABLE),
                        self.create_subscription(PolicyStep, ros.POLICY_STEP, self.on_step, RELIABLE)]
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics)
        # GAP_READY (latched) once both inputs have publishers: a gated sim graph waits for it, so the monitor
        # sees the run from its first state.
        self._ready_pub = self.create_publisher(Empty, ros.GAP_READY, ros.LATCHED.profile())
        # on the steady clock: with use_sim_time a timer would wait for /clock, which the gated sim only starts
        self._ready_timer = self.create_timer(0.02, self._signal_ready, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._reported_pairs = 0
        self._reported_outside = 0
        self._reported_joints = np.zeros(hand.NUM_JOINTS, dtype=int)  # out-of-range pairs per joint, last report
        self._outside = np.zeros(hand.NUM_JOINTS, dtype=bool)  # joints flagged in ticks since the last report
        self._cpu_start: float | None = None  # process CPU time at the first pair: the monitor's own cost
        self.get_logger().info(f"ready: {self.model.path} (window {self.model.window})")

    def _signal_ready(self) -> None:
        if all(sub.get_publisher_count() > 0 for sub in self._inputs):
            self._ready_pub.publish(Empty())
            self._ready_timer.cancel()

    def on_state(self, msg: JointState) -> None:
        try:
            self.publish(self.monitor.on_state(ros.stamp_to_ns(msg.header.stamp), msg.position))
        except ValueError as err:
            self.get_logger().error(f"ignored joint state: {err}", throttle_duration_sec=1.0)

    def on_step(self, msg: PolicyStep) -> None:
        if self._cpu_start is None:
            self._cpu_start = time.process_time()
        try:
            self.publish(self.monitor.on_step(ros.stamp_to_ns(msg.state_stamp), msg.executed_target))
        except ValueError as err:
            self.get_logger().error(f"ignored policy step: {err}", throttle_duration_sec=1.0)

    def publish(self, ticks: list[GapTick]) -> None:
        for tick in ticks:
            msg = DynamicsGap(predicted=tick.predicted.tolist(), measured=tick.measured.tolist(),
                              error=tick.error.tolist(), mean_abs_error=tick.mean_abs_error,
                              out_of_range=[bool(v) for v in tick.out_of_range], inference_ms=tick.inference_ms)
            ros.set_stamp(msg.header.stamp, tick.stamp)
            ros.set_stamp(msg.state_stamp, tick.source_stamp)
            self.gap_pub.publish(msg)
            if tick.out_of_range.any() and not self._outside.any():
                names = [hand.JOINT_NAMES[i] for i in np.flatnonzero(tick.out_of_range)]
                self.get_logger().warn(f"the hand left the dynamics model's fitted range at {names}: its "
                                       "predictions there are extrapolations", throttle_duration_sec=1.0)
            self._outside |= tick.out_of_range

    def summary(self) -> dict:
        """The core's figures plus this process's CPU time per tick since the first step (ms)."""
        summary = self.monitor.summary()
        used = time.process_time() - self._cpu_start if self._cpu_start is not None else float("nan")
        summary["cpu_ms_per_tick"] = 1e3 * used / self.monitor.pairs if self.monitor.pairs else float("nan")
        return summary

    def publish_diagnostics(self) -> None:
        mon = self.monitor
        new_pairs = mon.pairs - self._reported_pairs
        outside = mon.out_of_range_pairs - self._reported_outside
        recent = np.array([np.abs(t.error) for t in mon.recent]) if mon.recent else np.full((1, hand.NUM_JOINTS), np.nan)
        fresh = mon.out_of_range_joints > self._reported_joints  # pairs outside since the last report, per joint
        joints = [hand.JOINT_NAMES[i] for i in np.flatnonzero(fresh | self._outside)]
        if joints:
            level = WARN
            message = f"outside the fitted range at {', '.join(joints)}: {outside} of the last {new_pairs} ticks"
        elif mon.ticks == 0:
            level, message = OK, f"waiting for {self.model.window} consecutive (state, executed target) pairs"
        else:
            level, message = OK, f"one-step error {1e3 * np.nanmean(recent):.2f} mrad (last {len(recent)} ticks)"
        per_joint = np.nanmean(recent, axis=0)
        values = {"ticks": mon.ticks, "pairs": mon.pairs, "history_breaks": mon.breaks,
                  "mean_abs_error_rad": f"{np.nanmean(recent):.6f}", "max_abs_error_rad": f"{np.nanmax(recent):.6f}",
                  "worst_joint": hand.JOINT_NAMES[int(np.nanargmax(per_joint))] if mon.ticks else "none",
                  "out_of_range_ticks": mon.out_of_range_pairs, "out_of_range_joints": ",".join(joints),
                  "model": str(self.model.path)}
        status = DiagnosticStatus(level=bytes([level]), name="dexndm/gap_monitor", message=message,
                                  hardware_id="leap_hand", values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)
        self._reported_pairs, self._reported_outside = mon.pairs, mon.out_of_range_pairs
        self._reported_joints = mon.out_of_range_joints.copy()
        self._outside[:] = False


def main() -> None:
    rclpy.init()
    try:
        node = GapMonitorNode()
    except (ValueError, FileNotFoundError) as err:
        print(f"gap_monitor: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise  # a message taken while the context shuts down (Ctrl-C) is no error
    finally:
        summary = node.summary()
        per_joint = " ".join(f"{n}={1e3 * v:.2f}" for n, v in zip(hand.JOINT_NAMES, summary["per_joint_mean_rad"]))
        print(f"gap_monitor: mean one-step error per joint (mrad): {per_joint}", file=sys.stderr, flush=True)
        print(GapMonitor.format(summary), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
