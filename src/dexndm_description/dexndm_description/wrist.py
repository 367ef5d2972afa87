"""Named wrist orientations: the orientation of the `palm` frame in the gravity-aligned world (z up).

Quaternions are (x, y, z, w), ROS order. The palm frame has fingers along +x, the thumb along +y
and the palm normal (the side the fingers close toward) along -z, so at identity the palm faces
down.

| name        | fingers point | palm faces | rotation from identity |
|-------------|---------------|------------|------------------------|
| palm_down   | +x (level)    | down       | none                   |
| palm_up     | +x (level)    | up         | 180 deg about x        |
| base_up     | down (-z)     | -x         | +90 deg about y        |
| base_down   | up (+z)       | +x         | -90 deg about y        |
| thumb_up    | +x (level)    | +y         | +90 deg about x        |
| thumb_down  | +x (level)    | -y         | -90 deg about x        |
"""
from __future__ import annotations

import math
import re

import numpy as np

_S = math.sqrt(0.5)

WRIST_ORIENTATIONS: dict[str, np.ndarray] = {
    "palm_down": np.array([0.0, 0.0, 0.0, 1.0]),
    "palm_up": np.array([1.0, 0.0, 0.0, 0.0]),
    "base_up": np.array([0.0, _S, 0.0, _S]),
    "base_down": np.array([0.0, -_S, 0.0, _S]),
    "thumb_up": np.array([_S, 0.0, 0.0, _S]),
    "thumb_down": np.array([-_S, 0.0, 0.0, _S]),
}


def normalize_quaternion(q) -> np.ndarray:
    """A 4-vector (x, y, z, w) as a unit quaternion with w >= 0; ValueError on bad input."""
    v = np.asarray(q, dtype=float).reshape(-1)
    if v.shape != (4,):
        raise ValueError(f"a quaternion has 4 components (x, y, z, w), got {v.shape[0]}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"quaternion {v.tolist()} holds NaN or inf")
    norm = float(np.linalg.norm(v))
    if norm < 1e-6:
        raise ValueError(f"quaternion {v.tolist()} has zero length")
    v = v / norm
    return -v if v[3] < 0 else v


def parse_wrist(spec) -> np.ndarray:
    """A unit quaternion (x, y, z, w) from a name (`palm_up`, ...), a string `x,y,z,w` or a 4-sequence."""
    if not isinstance(spec, str):
        return normalize_quaternion(spec)
    text = spec.strip().lower()
    if text in WRIST_ORIENTATIONS:
        return WRIST_ORIENTATIONS[text].copy()
    parts = [p for p in re.split(r"[,\s\(\)\[\]]+", text) if p]
    try:
        return normalize_quaternion([float(p) for p in parts])
    except ValueError:
        raise ValueError(
            f"unknown wrist orientation {spec!r}: use one of {', '.join(WRIST_ORIENTATIONS)} "
            f"or a quaternion 'x,y,z,w'"
        ) from None


def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrix [3, 3] of a unit quaternion (x, y, z, w)."""
    x, y, z, w = normalize_quaternion(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def gravity_in_palm(q) -> np.ndarray:
    """Unit gravity direction expressed in the palm frame for wrist orientation q."""
    return quat_to_matrix(q).T @ np.array([0.0, 0.0, -1.0])
