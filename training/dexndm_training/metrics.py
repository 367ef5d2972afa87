"""The paper's rotation metrics from recorded trajectories (batched over episodes, world frame).

For E episodes of up to T control steps (dt s each) with `alive[e]` steps before the object fell:
- TTF  time to fall, alive steps / episode length (1.0 = survived the whole 20 s episode);
- RotR sum over alive steps of omega . k (rad/s summed per step, the paper's rotation reward);
- RotP mean over alive steps of |omega x k| (rad/s, off-axis angular velocity);
- Rot  total rotation about the axis (rad), integrated from the orientation trajectory;
- GO   goal-oriented success: the object came within 0.1 pi of a goal orientation (the initial one turned
       by `goal_angle` about the axis) while in the hand.
"""
from __future__ import annotations

import numpy as np

from dexndm_training import rotations

GO_TOLERANCE = 0.1 * np.pi  # rad


def alive_mask(alive: np.ndarray, steps: int) -> np.ndarray:
    """bool [E, T]: step t counts for episode e when t < alive[e]."""
    return np.arange(steps)[None, :] < np.asarray(alive)[:, None]


def rotation_about_axis(object_quat: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Per-step rotation about the axis (rad) [E, T] from orientations [E, T+1, 4] and world axes [E, 3]."""
    step = rotations.multiply(object_quat[:, 1:], rotations.conjugate(object_quat[:, :-1]))
    return np.sum(rotations.to_rotvec(step) * axis[:, None, :], axis=-1)


def episode_metrics(object_quat: np.ndarray, angvel: np.ndarray, axis: np.ndarray, alive: np.ndarray,
                    episode_steps: int, goal_angle: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-episode metrics, each [E].

    object_quat [E, T+1, 4] (x, y, z, w) at steps 0..T; angvel [E, T, 3] rad/s; axis [E, 3] unit, world frame;
    alive [E] steps survived (<= T); episode_steps the nominal episode length (400) for TTF;
    goal_angle [E] rad for GO success (omitted: no GO metric).
    """
    object_quat, angvel = np.asarray(object_quat, float), np.asarray(angvel, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _episode_metrics(object_quat, angvel, axis, alive, episode_steps, goal_angle)


def _episode_metrics(object_quat, angvel, axis, alive, episode_steps, goal_angle):
    axis, alive = np.asarray(axis, float), np.asarray(alive)
    steps = angvel.shape[1]
    mask = alive_mask(alive, steps)
    counted = np.maximum(mask.sum(1), 1)
    about = np.sum(angvel * axis[:, None, :], axis=-1)
    off = np.linalg.norm(np.cross(angvel, axis[:, None, :]), axis=-1)
    counts = lambda values: np.where(mask, values, 0.0)  # noqa: E731  (steps after a fall may hold anything)
    out = {
        "ttf": np.minimum(alive, episode_steps) / episode_steps,
        "rotr": np.sum(counts(about), axis=1),
        "rotp": np.sum(counts(off), axis=1) / counted,
        "rot": np.sum(counts(rotation_about_axis(object_quat, axis)), axis=1),
    }
    if goal_angle is not None:
        goal = rotations.multiply(rotations.from_axis_angle(axis, np.asarray(goal_angle, float)), object_quat[:, 0])
        dist = rotations.angle_between(object_quat[:, 1:], goal[:, None, :])
        out["go_success"] = np.any(counts(dist < GO_TOLERANCE).astype(bool), axis=1).astype(float)
    return out


def summarize(per_episode: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and standard deviation of each metric: {name: mean, name_std: std, episodes: E}."""
    out: dict[str, float] = {}
    for name, values in per_episode.items():
        out[name] = float(np.mean(values))
        out[f"{name}_std"] = float(np.std(values))
    out["episodes"] = int(len(next(iter(per_episode.values())))) if per_episode else 0
    return out
