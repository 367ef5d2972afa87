"""Vectorised quaternion helpers (x, y, z, w order, as at every project interface), numpy, shapes [..., 4]."""
from __future__ import annotations

import numpy as np


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b over the last axis [..., 3] (np.cross's result, without its per-call overhead)."""
    a1, a2, a3 = a[..., 0], a[..., 1], a[..., 2]
    b1, b2, b3 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], axis=-1)


def normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions [..., 4]."""
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of unit quaternions [..., 4]."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a) [..., 4]."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    av, aw = a[..., :3], a[..., 3:]
    bv, bw = b[..., :3], b[..., 3:]
    vec = aw * bv + bw * av + cross(av, bv)
    w = aw * bw - np.sum(av * bv, axis=-1, keepdims=True)
    return np.concatenate([vec, w], axis=-1)


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v [..., 3] by unit quaternions q [..., 4]."""
    q, v = np.asarray(q, dtype=np.float64), np.asarray(v, dtype=np.float64)
    u, w = q[..., :3], q[..., 3:]
    u, v = np.broadcast_arrays(u, v)
    t = 2.0 * cross(u, v)
    return v + w * t + cross(u, t)


def rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v [..., 3] by the inverse of q [..., 4] (world -> body frame)."""
    return rotate(conjugate(q), v)


def from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Quaternions for a rotation of `angle` rad [...] about unit `axis` [..., 3]."""
    axis, angle = np.asarray(axis, dtype=np.float64), np.asarray(angle, dtype=np.float64)
    half = 0.5 * angle[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis * angle, angle in [0, pi]) of unit quaternions [..., 4] -> [..., 3]."""
    q = normalize(q)
    q = np.where(q[..., 3:] < 0, -q, q)  # shortest rotation
    sin_half = np.linalg.norm(q[..., :3], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., 3:])
    scale = np.where(sin_half > 1e-9, angle / np.maximum(sin_half, 1e-12), 2.0)
    return q[..., :3] * scale


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, [0, pi]) taking orientation a to b, [...]."""
    dot = np.abs(np.sum(normalize(a) * normalize(b), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))
