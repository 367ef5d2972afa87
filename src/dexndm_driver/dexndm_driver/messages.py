"""ROS messages from the driver core's outputs (message types only, no rclpy): joint states,
/clock, the simulated world (wrist, object pose) and /diagnostics."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, QuaternionStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from dexndm_description import hand
from dexndm_description import interfaces as ros

from . import diagnostics as diag


def joint_state(reading, stamp_ns: int) -> JointState:
    """position rad, velocity rad/s, effort = servo current A, in motor-ID order."""
    msg = JointState(name=list(hand.JOINT_NAMES), position=reading.q.tolist(), velocity=reading.qdot.tolist(),
                     effort=reading.effort.tolist())
    ros.set_stamp(msg.header.stamp, stamp_ns)
    return msg


def clock(stamp_ns: int) -> Clock:
    msg = Clock()
    ros.set_stamp(msg.clock, stamp_ns)
    return msg


def world(state, stamp_ns: int) -> tuple[QuaternionStamped, PoseStamped | None]:
    """The wrist orientation and (when the scene has one) the object pose, frame `world`."""
    wrist = QuaternionStamped()
    wrist.header.frame_id = "world"
    ros.set_stamp(wrist.header.stamp, stamp_ns)
    wrist.quaternion.x, wrist.quaternion.y, wrist.quaternion.z, wrist.quaternion.w = map(float, state.wrist_quat)
    if state.object_pose is None:
        return wrist, None
    pose = PoseStamped()
    pose.header = wrist.header
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, state.object_pose[:3])
    o = pose.pose.orientation
    o.x, o.y, o.z, o.w = map(float, state.object_pose[3:7])
    return wrist, pose


def diagnostics(stats, stamp_ns: int) -> DiagnosticArray:
    msg = DiagnosticArray()
    ros.set_stamp(msg.header.stamp, stamp_ns)
    for s in diag.build(stats):
        msg.status.append(DiagnosticStatus(level=bytes([s.level]), name=s.name, message=s.message,
                                           hardware_id="leap_hand",
                                           values=[KeyValue(key=k, value=v) for k, v in s.values.items()]))
    return msg
