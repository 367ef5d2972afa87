"""The ROS interface every package agrees on: topic and service names, QoS, stamp <-> ns.

Plain module: importing it never imports rclpy, so training (bags), the collector's bag writer and
tests read the same names as the nodes. `Qos.profile()` builds the rclpy QoSProfile for a node (it
imports rclpy.qos only when called). Names are those of ../shared/DESIGN.md "Runtime graph".
"""
from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000

# Topics
JOINT_STATES = "/leap_hand/joint_states"  # sensor_msgs/JointState, each control tick
HAND_COMMAND = "/leap_hand/command"  # dexndm_msgs/HandCommand
ROTATION_AXIS = "/dexndm/rotation_axis"  # geometry_msgs/Vector3Stamped, frame palm
WRIST_ORIENTATION = "/dexndm/wrist_orientation"  # geometry_msgs/QuaternionStamped
POLICY_STEP = "/dexndm/policy/step"  # dexndm_msgs/PolicyStep
GAP_ERROR = "/dexndm/gap/error"  # dexndm_msgs/DynamicsGap, the reality-gap monitor
EPISODE = "/dexndm/collect/episode"  # dexndm_msgs/EpisodeEvent
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray
CLOCK = "/clock"  # rosgraph_msgs/Clock, sim driver
OBJECT_POSE = "/sim/object_pose"  # geometry_msgs/PoseStamped, simulated object, frame world
MONITOR_READY = "/dexndm/monitor/ready"  # std_msgs/Empty, latched: the rotation monitor is matched
VIEWER_READY = "/dexndm/viz/ready"  # std_msgs/Empty, latched: the rerun viewer is matched
GAP_READY = "/dexndm/gap/ready"  # std_msgs/Empty, latched: the reality-gap monitor is matched

# Services and actions
HAND_ENABLE = "/leap_hand/enable"  # std_srvs/SetBool: torque
POLICY_ENABLE = "/dexndm/policy/enable"  # std_srvs/SetBool
POLICY_SET_AXIS = "/dexndm/policy/set_axis"  # dexndm_msgs/SetRotationAxis
COLLECT_RUN = "/dexndm/collect/run"  # dexndm_msgs/action/CollectEpisodes


@dataclass(frozen=True)
class Qos:
    """A QoS profile as plain data: history depth, reliable or best effort, volatile or transient local."""

    depth: int
    reliable: bool = True
    transient_local: bool = False

    def profile(self):
        """The rclpy QoSProfile (for nodes; imports rclpy.qos)."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        return QoSProfile(
            depth=self.depth,
            reliability=ReliabilityPolicy.RELIABLE if self.reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if self.transient_local else DurabilityPolicy.VOLATILE)


#: States, commands, steps, events, diagnostics, clock: the lockstep needs every message delivered.
STREAM = Qos(10)
#: Subscriptions that must match reliable and best-effort publishers alike (axis, wrist).
ANY = Qos(10, reliable=False)
#: Deep queues for the monitors (rotation, reality gap): at realtime_factor 0 the graph runs at hundreds of Hz.
MONITOR_STREAM = Qos(200)
MONITOR_ANY = Qos(200, reliable=False)
#: The viewer drains its queues every flush period (0.5 s): at hundreds of Hz that needs 1000 states deep.
VIEWER_STREAM = Qos(1000)
VIEWER_ANY = Qos(100, reliable=False)
#: The last value stays for late joiners (rotation axis from teleop, the monitor's and viewer's ready signals).
LATCHED = Qos(1, transient_local=True)


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (rclpy or rosbags message, anything with sec and nanosec) -> ns."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_to_s(stamp) -> float:
    return int(stamp.sec) + 1e-9 * int(stamp.nanosec)


def ns_to_sec_nanosec(ns: int) -> tuple[int, int]:
    return divmod(int(ns), NS_PER_S)


def set_stamp(stamp, ns: int) -> None:
    """Write ns into a builtin_interfaces/Time message in place."""
    stamp.sec, stamp.nanosec = ns_to_sec_nanosec(ns)
