"""Conversions between ROS messages and teleop values (geometry_msgs only, no rclpy)."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, Vector3Stamped

from dexndm_teleop.frames import Pose


def pose_from_msg(msg: PoseStamped) -> Pose | None:
    """The pose of a PoseStamped, or None when its quaternion is zero or not finite."""
    p, q = msg.pose.position, msg.pose.orientation
    position, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
    norm = float(np.linalg.norm(quat))
    if not (np.all(np.isfinite(position)) and np.isfinite(norm) and norm > 1e-6):
        return None
    return Pose(position, quat / norm)


def pose_to_msg(pose: Pose, stamp, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose.position)
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in pose.quat)
    return msg


def axis_to_msg(axis, stamp) -> Vector3Stamped:
    msg = Vector3Stamped()
    msg.header.stamp, msg.header.frame_id = stamp, "palm"
    msg.vector.x, msg.vector.y, msg.vector.z = (float(v) for v in axis)
    return msg
