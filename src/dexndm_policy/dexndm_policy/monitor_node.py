"""rotation_monitor: measures a rotation run (see dexndm_policy.monitor), saves a plot, prints one key=value line."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from dexndm_msgs.msg import DynamicsGap, HandCommand, PolicyStep
from dexndm_policy.monitor import RotationMonitor

# Deep queues: at realtime_factor 0 the graph runs at hundreds of Hz and a Python monitor may lag behind.
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
ANY = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)


def seconds(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def dds_time(info: dict, key: str) -> float:
    """A DDS sample timestamp in s (system clock), or now when the middleware gave none."""
    return info.get(key, 0) * 1e-9 or time.time()


def main() -> None:
    rclpy.init()
    node = Node("rotation_monitor")
    p = {name: node.declare_parameter(name, default).value for name, default in (
        ("duration", 10.0), ("plot", "output/rotate.png"), ("axis", "z"), ("wrist", "palm_up"),
        ("fall_distance", 0.08), ("startup_timeout", 60.0), ("stall_timeout", 10.0))}
    monitor = RotationMonitor(p["duration"], p["axis"], p["wrist"], p["fall_distance"])
    # DDS timestamps (system clock, ns): when the driver wrote a state, when a command reached this node.
    node.create_subscription(JointState, "/leap_hand/joint_states", lambda m, info: monitor.on_state(
        seconds(m.header.stamp), dds_time(info, "source_timestamp")), RELIABLE)
    node.create_subscription(HandCommand, "/leap_hand/command", lambda m, info: monitor.on_command(
        seconds(m.state_stamp), dds_time(info, "received_timestamp"), m.position), RELIABLE)
    node.create_subscription(PolicyStep, "/dexndm/policy/step", lambda m: monitor.on_axis(m.axis), RELIABLE)
    node.create_subscription(DynamicsGap, "/dexndm/gap/error", lambda m: monitor.on_gap(
        seconds(m.state_stamp), m.mean_abs_error, any(m.out_of_range)), RELIABLE)
    node.create_subscription(QuaternionStamped, "/dexndm/wrist_orientation", lambda m: monitor.on_wrist(
        [m.quaternion.x, m.quaternion.y, m.quaternion.z, m.quaternion.w]), ANY)
    node.create_subscription(PoseStamped, "/sim/object_pose", lambda m: monitor.on_object_pose(
        seconds(m.header.stamp), [m.pose.position.x, m.pose.position.y, m.pose.position.z],
        [m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w]), ANY)
    started = time.monotonic()
    last_progress, last_now = started, -1.0
    code, stalled = 0, False
    try:
        while not monitor.done:
            rclpy.spin_once(node, timeout_sec=0.05)
            wall = time.monotonic()
            if monitor.now != last_now:
                last_progress, last_now = wall, monitor.now
            if monitor.start is None and wall - started > p["startup_timeout"]:
                why = ("joint states arrive but no /leap_hand/command answers them; is rotation_policy running?"
                       if monitor.states_seen else "no /leap_hand/joint_states; is hand_driver running on this ROS_DOMAIN_ID?")
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
    if code == 0 and p["plot"]:
        Path(p["plot"]).parent.mkdir(parents=True, exist_ok=True)
        monitor.plot(p["plot"])
        print(f"plot saved to {Path(p['plot']).resolve()}", file=sys.stderr)
    node.destroy_node()
    rclpy.try_shutdown()
    if code == 0:
        print(RotationMonitor.format(monitor.summary()), flush=True)
    sys.exit(1 if stalled else code)
