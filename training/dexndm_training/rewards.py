"""The rotation reward of the DexNDM paper (../shared/LEAP_HAND.md), one small vectorised function per term.

r = a_rot * clip(omega . k, -0.5, 0.5) + a_goal * r_goal + r_penalty, with
r_penalty = -(w_off |omega x k| + w_linvel |v| + w_pose |q - q_canonical|^2 + w_work |tau . qdot| + w_torque |tau|^2)
            - w_fall [the object fell this step] (a project addition, see docs/DECISIONS.md).
omega, v, k are world-frame (rad/s, m/s, unit axis); q rad; tau N m; qdot rad/s. a_rot ramps 0 -> 0.1 between
resets 10 and 100 (`rotation_weight`). r_goal is 1 on the step the object comes within 15 deg of a waypoint
90 deg ahead about the axis, which is then renewed from the object's current orientation (`Waypoints`).
All functions take batches [N, ...] and return [N].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dexndm_description import hand
from dexndm_training import rotations


@dataclass
class RewardConfig:
    """Weights of the reward terms (penalty weights are positive numbers that get subtracted)."""

    rotation_clip: float = 0.5  # rad/s
    rotation_weight_final: float = 0.1
    rotation_ramp_start: float = 10.0  # resets per env
    rotation_ramp_end: float = 100.0
    goal_weight: float = 1.0
    waypoint_ahead: float = np.pi / 2  # rad
    waypoint_reached: float = np.deg2rad(15.0)  # rad
    off_axis: float = 0.02  # not given by the paper; small so contact jitter (~1 rad/s) does not swamp a_rot
    linear_velocity: float = 0.3
    #: the paper's 0.3 held every PPO policy here within ~0.2 rad of the canonical pose, turning ~3 rad in 20 s;
    #: without it PPO finds wide, slow finger strokes and turns 5-20 rad (docs/DECISIONS.md, "Pose penalty off")
    pose: float = 0.0
    work: float = 2.0
    torque: float = 0.1
    fall: float = 10.0  # once, on the step the object falls (without it, dropping ends the penalties early)
    penalty_scale: float = 0.1  # multiplies every penalty weight but the fall's (see docs/DECISIONS.md)

    def to_dict(self) -> dict:
        return asdict(self)


def rotation_term(angvel: np.ndarray, axis: np.ndarray, clip: float = 0.5) -> np.ndarray:
    """clip(omega . k, -clip, clip): angular velocity about the axis, rad/s."""
    return np.clip(np.sum(angvel * axis, axis=-1), -clip, clip)


def off_axis_term(angvel: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """|omega x k|: angular velocity off the axis, rad/s."""
    return np.linalg.norm(rotations.cross(angvel, np.broadcast_to(axis, np.shape(angvel))), axis=-1)


def linear_velocity_term(linvel: np.ndarray) -> np.ndarray:
    """|v|: object linear speed, m/s."""
    return np.linalg.norm(linvel, axis=-1)


def pose_term(q: np.ndarray, reference: np.ndarray = hand.CANONICAL_POSE) -> np.ndarray:
    """|q - q_canonical|^2, rad^2."""
    return np.sum((q - reference) ** 2, axis=-1)


def work_term(torque: np.ndarray, qdot: np.ndarray) -> np.ndarray:
    """|tau . qdot|: mechanical power of the joints, W."""
    return np.abs(np.sum(torque * qdot, axis=-1))


def torque_term(torque: np.ndarray) -> np.ndarray:
    """|tau|^2, (N m)^2."""
    return np.sum(torque**2, axis=-1)


def rotation_weight(resets: np.ndarray | float, cfg: RewardConfig = RewardConfig()) -> np.ndarray:
    """a_rot: 0 before `rotation_ramp_start` resets, linear to `rotation_weight_final` at `rotation_ramp_end`."""
    span = max(cfg.rotation_ramp_end - cfg.rotation_ramp_start, 1e-9)
    frac = np.clip((np.asarray(resets, dtype=np.float64) - cfg.rotation_ramp_start) / span, 0.0, 1.0)
    return cfg.rotation_weight_final * frac


class Waypoints:
    """Per-env goal orientations `ahead` rad along the axis, renewed once the object comes within `reached` rad."""

    def __init__(self, num_envs: int, ahead: float = np.pi / 2, reached: float = np.deg2rad(15.0)):
        self.ahead, self.reached = ahead, reached
        self.goal = np.tile([0.0, 0.0, 0.0, 1.0], (num_envs, 1))

    def reset(self, object_quat: np.ndarray, axis_world: np.ndarray, env_ids=None) -> None:
        """Place the goal of env_ids `ahead` of their current object orientation."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids)
        self.goal[ids] = self._ahead_of(object_quat, axis_world)

    def update(self, object_quat: np.ndarray, axis_world: np.ndarray) -> np.ndarray:
        """r_goal [N] (1.0 where the waypoint was reached this step; those goals move on)."""
        hit = rotations.angle_between(object_quat, self.goal) < self.reached
        if np.any(hit):
            self.goal[hit] = self._ahead_of(object_quat[hit], axis_world[hit])
        return hit.astype(np.float64)

    def distance(self, object_quat: np.ndarray) -> np.ndarray:
        """Angle (rad) from each object orientation to its goal."""
        return rotations.angle_between(object_quat, self.goal)

    def _ahead_of(self, object_quat: np.ndarray, axis_world: np.ndarray) -> np.ndarray:
        turn = rotations.from_axis_angle(axis_world, np.full(len(object_quat), self.ahead))
        return rotations.multiply(turn, object_quat)


def total_reward(
    cfg: RewardConfig, a_rot: np.ndarray | float, r_goal: np.ndarray, angvel: np.ndarray, linvel: np.ndarray,
    axis: np.ndarray, q: np.ndarray, qdot: np.ndarray, torque: np.ndarray, fallen: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The summed reward [N] and each weighted term (for logging)."""
    p = cfg.penalty_scale
    terms = {
        "rotation": a_rot * rotation_term(angvel, axis, cfg.rotation_clip),
        "goal": cfg.goal_weight * r_goal,
        "off_axis": -p * cfg.off_axis * off_axis_term(angvel, axis),
        "linear_velocity": -p * cfg.linear_velocity * linear_velocity_term(linvel),
        "pose": -p * cfg.pose * pose_term(q),
        "work": -p * cfg.work * work_term(torque, qdot),
        "torque": -p * cfg.torque * torque_term(torque),
        "fall": -cfg.fall * (np.zeros(len(q)) if fallen is None else np.asarray(fallen, dtype=np.float64)),
    }
    return sum(terms.values()), terms
