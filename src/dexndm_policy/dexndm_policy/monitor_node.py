"""rotation_monitor: measures a rotation run (see dexndm_policy.monitor), saves a plot, prints one key=value line.

Once every topic it measures has a matched publisher it publishes std_msgs/Empty on
/dexndm/monitor/ready (latched): the rotate app's sim driver waits for it before its first state, so
a monitor that starts late never misses the opening of the run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty

from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_msgs.msg import DynamicsGap, HandCommand, PolicyStep
from dexndm_policy.monitor import RotationMonitor

PARAMETERS = (
    Param("duration", 10.0, "run length in seconds of the driver's clock (joint-state stamps)"),
    Param("plot", "output/rotate.png", "PNG to save the plot to ('' or none: no plot)"),
    Param("axis", "z", "rotation axis in the palm frame until a PolicyStep names one"),
    Param("wrist", "palm_up", "wrist orientation until /dexndm/wrist_orientation arrives"),
    Param("fall_distance", 0.08, "m from the first object position that counts as fallen"),
    Param("startup_timeout", 60.0, "s without a run starting before the monitor gives up (exit 1)"),
    Param("stall_timeout", 10.0, "s without a new joint state before the run ends early (exit 1)"),
    Param("measure_object", True, "wait for a /sim/object_pose publisher before signalling ready (false on hardware)"),
    Param("track_reference", False, "after the run, run the base policy in the source world from the run's first "
          "state and report the joint tracking error against it (track_err_rad)"),
    Param("generalist_model", "", "base policy ONNX of the reference run (empty: the installed default)"),
    Param("object", "normal_cylinder", "object set of the reference run (none: free hand)"),
    Param("seed", 0, "simulation seed of the reference run (the sim driver's seed)"),
    Param("reference_reset", "", "where the reference run starts: '' = the run's first measured state; canonical or "
          "open = the sim driver's initial pose, held until the first command's stamp (sim time)"),
)


def dds_time(info: dict, key: str) -> float:
    """A DDS sample timestamp in s (system clock), or now when the middleware gave none."""
    return info.get(key, 0) * 1e-9 or time.time()


def wants_plot(plot: str) -> bool:
    return bool(plot.strip()) and plot.strip().lower() != "none"


def reference_tracking(monitor: RotationMonitor, p: dict) -> dict:
    """{"track_err_rad": ...} of the run against the source world's run from its first state ({} if too short)."""
    from dexndm_policy.source_reference import source_world_run, tracking_error

    from dexndm_description import hand

    measured = monitor.joint_trajectory()
    if len(measured) < 2:
        print("rotation_monitor: too few joint states for a tracking error", file=sys.stderr)
        return {}
    start, hold = measured[0], 0
    if p["reference_reset"]:
        start = {"canonical": hand.CANONICAL_POSE, "open": hand.OPEN_POSE}[p["reference_reset"]]
        hold = int(round(monitor.first_command_stamp / hand.CONTROL_DT))
    reference = source_world_run(start, len(measured) - 1, p["generalist_model"], monitor.axis_palm,
                                 monitor.wrist, p["object"], p["seed"], hold_ticks=hold)
    return {"track_err_rad": tracking_error(measured, reference), "track_ticks": len(measured) - 1,
            "track_hold_ticks": hold}


def main() -> None:
    rclpy.init()
    node = Node("rotation_monitor")
    p = declare(node, PARAMETERS)
    monitor = RotationMonitor(p["duration"], p["axis"], p["wrist"], p["fall_distance"])
    stream, any_qos = ros.MONITOR_STREAM.profile(), ros.MONITOR_ANY.profile()
    # DDS timestamps (system clock, ns): when the driver wrote a state, when a command reached this node.
    measured = {
        ros.JOINT_STATES: node.create_subscription(JointState, ros.JOINT_STATES, lambda m, info: monitor.on_state(
            ros.stamp_to_s(m.header.stamp), dds_time(info, "source_timestamp"), m.position), stream),
        ros.HAND_COMMAND: node.create_subscription(HandCommand, ros.HAND_COMMAND, lambda m, info: monitor.on_command(
            ros.stamp_to_s(m.state_stamp), dds_time(info, "received_timestamp"), m.position), stream),
        ros.POLICY_STEP: node.create_subscription(PolicyStep, ros.POLICY_STEP, lambda m: monitor.on_axis(m.axis), stream),
    }
    node.create_subscription(DynamicsGap, ros.GAP_ERROR, lambda m: monitor.on_gap(
        ros.stamp_to_s(m.state_stamp), m.mean_abs_error, any(m.out_of_range)), stream)
    node.create_subscription(QuaternionStamped, ros.WRIST_ORIENTATION, lambda m: monitor.on_wrist(
        [m.quaternion.x, m.quaternion.y, m.quaternion.z, m.quaternion.w]), any_qos)
    pose_sub = node.create_subscription(PoseStamped, ros.OBJECT_POSE, lambda m: monitor.on_object_pose(
        ros.stamp_to_s(m.header.stamp), [m.pose.position.x, m.pose.position.y, m.pose.position.z],
        [m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w]), any_qos)
    if p["measure_object"]:
        measured[ros.OBJECT_POSE] = pose_sub
    ready_pub = node.create_publisher(Empty, ros.MONITOR_READY, ros.LATCHED.profile())
    ready = False
    started = time.monotonic()
    last_progress, last_now = started, -1.0
    code, stalled = 0, False
    try:
        while not monitor.done:
            rclpy.spin_once(node, timeout_sec=0.05)
            wall = time.monotonic()
            if not ready and all(sub.get_publisher_count() > 0 for sub in measured.values()):
                ready_pub.publish(Empty())  # every measured topic is matched: the run may start
                ready = True
            if monitor.now != last_now:
                last_progress, last_now = wall, monitor.now
            if monitor.start is None and wall - started > p["startup_timeout"]:
                missing = [topic for topic, sub in measured.items() if sub.get_publisher_count() == 0]
                why = (f"no publisher on {', '.join(missing)}; are hand_driver and rotation_policy running on this "
                       "ROS_DOMAIN_ID?" if missing else
                       "joint states arrive but no /leap_hand/command answers them; is rotation_policy running?"
                       if monitor.states_seen else "no /leap_hand/joint_states; is hand_driver running?")
                print(f"rotation_monitor: nothing to measure after {p['startup_timeout']} s: {why}", file=sys.stderr)
                code = 1
                break
            if monitor.start is not None and wall - last_progress > p["stall_timeout"]:
                print(f"rotation_monitor: the run stalled at {monitor.now:.2f} s (no new joint state for "
                      f"{p['stall_timeout']} s); ending early", file=sys.stderr)
                stalled = True
                break
        drain_until = time.monotonic() + 0.3  # commands answering the last states may still be queued
        while time.monotonic() < drain_until:
            rclpy.spin_once(node, timeout_sec=0.02)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    if code == 0 and wants_plot(p["plot"]):
        Path(p["plot"]).parent.mkdir(parents=True, exist_ok=True)
        monitor.plot(p["plot"])
        print(f"plot saved to {Path(p['plot']).resolve()}", file=sys.stderr)
    node.destroy_node()
    rclpy.try_shutdown()
    if code == 0:
        summary = monitor.summary()
        if p["track_reference"]:
            summary.update(reference_tracking(monitor, p))
        print(RotationMonitor.format(summary), flush=True)
    sys.exit(1 if stalled else code)
