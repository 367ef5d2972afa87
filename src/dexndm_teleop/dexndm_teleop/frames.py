"""Poses, quaternions (x, y, z, w) and the WebXR -> robot base frame change. No rclpy.

WebXR `local-floor`: +x right, +y up, -z forward, metres. Robot base: +x forward, +y left, +z up.
`XR_TO_ROBOT` maps an XR vector to the robot base frame: robot = XR_TO_ROBOT @ xr.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

XR_TO_ROBOT = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class Pose:
    """A position (m) and an orientation quaternion (x, y, z, w), in one frame."""

    position: np.ndarray
    quat: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        return quat_to_matrix(self.quat)


def normalize_quat(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} has no direction")
    q = q / norm
    return q if q[3] >= 0.0 else -q


def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = normalize_quat(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(m) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0 (Shepperd's method)."""
    m = np.asarray(m, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    return normalize_quat(q)


def rotvec_from_matrix(m) -> np.ndarray:
    """Rotation matrix -> rotation vector (axis * angle, rad), angle in [0, pi]."""
    q = matrix_to_quat(m)
    sin_half = float(np.linalg.norm(q[:3]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, q[3])
    return q[:3] / sin_half * angle


def matrix_from_rotvec(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    half = 0.5 * angle
    return quat_to_matrix(np.concatenate([v / angle * np.sin(half), [np.cos(half)]]))


def xr_to_robot(pose: Pose) -> Pose:
    """A pose measured in the XR reference space, expressed in the robot base frame.

    The position is rotated; the orientation keeps the controller's own body axes, so it becomes
    XR_TO_ROBOT @ R. Relative rotations therefore map as XR_TO_ROBOT @ dR @ XR_TO_ROBOT.T.
    """
    return Pose(XR_TO_ROBOT @ np.asarray(pose.position, dtype=float),
                matrix_to_quat(XR_TO_ROBOT @ quat_to_matrix(pose.quat)))
