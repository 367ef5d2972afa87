"""The generalist's observation contract (layout version 1), shared by the robot and training.

obs float32 [N, 327] = 10 steps x (q 16, previous base target 16), oldest first,
then the wrist quaternion (x, y, z, w), then the rotation axis (3), palm frame.
Step k of the history pairs q_k with a_{k-1}, the base target commanded just before q_k was read.
The base target integrates the policy output: a_t = clip(a_{t-1} + delta_t / 24, limits).
The residual never enters this history.
"""
from __future__ import annotations

import numpy as np

from dexndm_description import hand

LAYOUT_VERSION = 1
HISTORY = 10
STEP_DIM = 2 * hand.NUM_JOINTS  # q, previous base target
WRIST_DIM = 4
AXIS_DIM = 3
OBS_DIM = HISTORY * STEP_DIM + WRIST_DIM + AXIS_DIM  # 327

#: Slices of one observation row, for readers and tests.
HISTORY_SLICE = slice(0, HISTORY * STEP_DIM)
WRIST_SLICE = slice(HISTORY * STEP_DIM, HISTORY * STEP_DIM + WRIST_DIM)
AXIS_SLICE = slice(HISTORY * STEP_DIM + WRIST_DIM, OBS_DIM)


def integrate_action(previous_base: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """a_t = clip(a_{t-1} + clip(delta, -1, 1) * ACTION_SCALE, joint limits); shapes [..., 16], rad."""
    return hand.clip_to_limits(previous_base + np.clip(delta, -1.0, 1.0) * hand.ACTION_SCALE)


class ObservationHistory:
    """A batch of N rolling histories of (q_k, a_{k-1}); reset per episode, one push per control step."""

    def __init__(self, num_envs: int = 1):
        self.num_envs = num_envs
        self._buffer = np.zeros((num_envs, HISTORY, STEP_DIM), dtype=np.float32)

    def reset(self, q: np.ndarray, previous_target: np.ndarray, env_ids=None) -> None:
        """Fill the whole history of env_ids (all when None) with the first (q, a_{-1}) pair."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids)
        step = np.concatenate([np.atleast_2d(q), np.atleast_2d(previous_target)], axis=-1).astype(np.float32)
        self._buffer[ids] = step[:, None, :]

    def push(self, q: np.ndarray, previous_target: np.ndarray) -> None:
        """Append (q_t, a_{t-1}) for every env, dropping the oldest step. q, previous_target [N, 16]."""
        self._buffer[:, :-1] = self._buffer[:, 1:]
        self._buffer[:, -1, : hand.NUM_JOINTS] = q
        self._buffer[:, -1, hand.NUM_JOINTS :] = previous_target

    def observation(self, wrist_xyzw: np.ndarray, axis: np.ndarray) -> np.ndarray:
        """obs float32 [N, 327] from the history, wrist quaternions [N, 4] or [4] and axes [N, 3] or [3]."""
        n = self.num_envs
        wrist = np.broadcast_to(np.asarray(wrist_xyzw, dtype=np.float32), (n, WRIST_DIM))
        axis = np.broadcast_to(np.asarray(axis, dtype=np.float32), (n, AXIS_DIM))
        return np.concatenate([self._buffer.reshape(n, -1), wrist, axis], axis=1)


def check_observation(obs: np.ndarray) -> None:
    """ValueError unless obs is finite float [N, 327]."""
    if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
        raise ValueError(f"observation must be [N, {OBS_DIM}], got {list(obs.shape)}")
    if not np.all(np.isfinite(obs)):
        raise ValueError("observation holds NaN or inf")
