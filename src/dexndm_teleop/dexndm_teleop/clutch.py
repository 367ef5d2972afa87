"""Clutch mapping from the right controller to arm pose targets. No rclpy.

While the clutch is engaged the target follows the controller relative to where both were at
the press: p = p_arm0 + scale * (p_c - p_c0), R = dR^rotation_scale @ R_arm0 with
dR = R_c @ R_c0^T (all in the robot base frame). The result is clipped to the workspace box and
moved from the previous target by at most max_linear_speed * dt (m) and max_angular_speed * dt
(rad), dt being the controller-frame interval capped at max_tick_s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexndm_teleop.frames import Pose, matrix_from_rotvec, matrix_to_quat, rotvec_from_matrix


@dataclass(frozen=True)
class ClutchConfig:
    scale: float = 1.0
    rotation_scale: float = 1.0
    workspace_min: tuple[float, float, float] = (0.2, -0.5, 0.05)  # m, robot base frame
    workspace_max: tuple[float, float, float] = (0.8, 0.5, 0.9)
    max_linear_speed: float = 0.5  # m/s
    max_angular_speed: float = 1.5  # rad/s
    max_tick_s: float = 0.05  # a longer frame interval moves no further than this one

    def __post_init__(self):
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"workspace box needs 3 mins below 3 maxes, got {self.workspace_min} {self.workspace_max}")
        for name in ("scale", "max_linear_speed", "max_angular_speed", "max_tick_s"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.rotation_scale >= 0.0:
            raise ValueError(f"rotation_scale must be >= 0, got {self.rotation_scale}")


class ArmClutch:
    """Relative controller -> arm mapping; `target` is the last target it produced (None before any)."""

    def __init__(self, config: ClutchConfig):
        self.config = config
        self.engaged = False
        self.target: Pose | None = None
        self._controller0: Pose | None = None
        self._arm0: Pose | None = None

    def engage(self, controller: Pose, arm: Pose) -> None:
        """Anchor: the controller pose and the measured arm pose at the press (robot base frame)."""
        self._controller0, self._arm0 = controller, arm
        self.target = arm
        self.engaged = True

    def release(self, forget_target: bool = False) -> None:
        self.engaged = False
        if forget_target:
            self.target = None

    def desired(self, controller: Pose) -> Pose:
        """The unlimited target for this controller pose (before workspace and speed limits)."""
        c = self.config
        position = self._arm0.position + c.scale * (controller.position - self._controller0.position)
        delta = controller.rotation @ self._controller0.rotation.T
        delta = matrix_from_rotvec(c.rotation_scale * rotvec_from_matrix(delta))
        return Pose(position, matrix_to_quat(delta @ self._arm0.rotation))

    def follow(self, controller: Pose, dt: float) -> Pose:
        """Next target for this controller pose, `dt` s after the previous one."""
        if not self.engaged:
            raise RuntimeError("follow() while the clutch is released")
        c = self.config
        want = self.desired(controller)
        box = np.clip(want.position, c.workspace_min, c.workspace_max)
        dt = min(max(dt, 0.0), c.max_tick_s)
        step = box - self.target.position
        max_step = c.max_linear_speed * dt
        length = float(np.linalg.norm(step))
        if length > max_step:
            step *= max_step / length
        turn = rotvec_from_matrix(want.rotation @ self.target.rotation.T)
        max_turn = c.max_angular_speed * dt
        angle = float(np.linalg.norm(turn))
        if angle > max_turn:
            turn *= max_turn / angle
        self.target = Pose(self.target.position + step, matrix_to_quat(matrix_from_rotvec(turn) @ self.target.rotation))
        return self.target
