"""Rotation axes (unit vectors in the `palm` frame) and their names.

Named axes: the six principal ones (`x, -x, y, -y, z, -z`), `general:0..25` and the cubic
diagonals `(1,1,1), (1,0,1), (1,1,0), (0,1,1)`. The 26 general axes are the DexNDM paper's
"32 evenly spread axes minus the 6 principal ones": 26 points placed by electrostatic repulsion
on the unit sphere with the 6 principal directions held fixed, from a deterministic start, so
the table is the same on every machine.
"""
from __future__ import annotations

import functools
import math
import re

import numpy as np

PRINCIPAL: dict[str, np.ndarray] = {
    "x": np.array([1.0, 0.0, 0.0]),
    "-x": np.array([-1.0, 0.0, 0.0]),
    "y": np.array([0.0, 1.0, 0.0]),
    "-y": np.array([0.0, -1.0, 0.0]),
    "z": np.array([0.0, 0.0, 1.0]),
    "-z": np.array([0.0, 0.0, -1.0]),
}

DIAGONALS: dict[str, np.ndarray] = {
    name: np.array(v, dtype=float) / np.linalg.norm(v)
    for name, v in (("(1,1,1)", (1, 1, 1)), ("(1,0,1)", (1, 0, 1)), ("(1,1,0)", (1, 1, 0)), ("(0,1,1)", (0, 1, 1)))
}

NUM_GENERAL = 26


@functools.lru_cache(maxsize=1)
def general_axes() -> np.ndarray:
    """The 26 general axes, float64 [26, 3], unit length, ordered by (z, atan2(y, x)) descending z."""
    fixed = np.stack(list(PRINCIPAL.values()))
    # Deterministic start: a Fibonacci spiral, nudged off the poles.
    k = np.arange(NUM_GENERAL) + 0.5
    z = 1.0 - 2.0 * k / NUM_GENERAL
    phi = k * math.pi * (3.0 - math.sqrt(5.0)) + 0.3
    r = np.sqrt(1.0 - z * z)
    free = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    step = 0.05
    for _ in range(2000):
        everyone = np.concatenate([fixed, free])
        diff = free[:, None, :] - everyone[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        dist[np.arange(NUM_GENERAL), np.arange(NUM_GENERAL) + len(fixed)] = np.inf
        force = (diff / dist[..., None] ** 3).sum(axis=1)
        force -= (force * free).sum(axis=1, keepdims=True) * free  # tangential part only
        free = free + step * force / np.linalg.norm(force, axis=1).max()
        free /= np.linalg.norm(free, axis=1, keepdims=True)
        step *= 0.998
    order = np.lexsort((np.arctan2(free[:, 1], free[:, 0]).round(6), -free[:, 2].round(6)))
    return free[order]


def named_axes() -> dict[str, np.ndarray]:
    """Every named axis: principal, `general:i` and diagonals."""
    table = dict(PRINCIPAL)
    table.update({f"general:{i}": a for i, a in enumerate(general_axes())})
    table.update(DIAGONALS)
    return table


def axis_set(name: str) -> np.ndarray:
    """An evaluation set of axes, [K, 3]: 'principal', 'general' or 'diagonal'."""
    sets = {
        "principal": lambda: np.stack(list(PRINCIPAL.values())),
        "general": general_axes,
        "diagonal": lambda: np.stack(list(DIAGONALS.values())),
    }
    if name not in sets:
        raise ValueError(f"unknown axis set {name!r}; choose one of {sorted(sets)}")
    return sets[name]()


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VECTOR = re.compile(rf"^[\(\[]?\s*({_NUMBER})\s*[, ]\s*({_NUMBER})\s*[, ]\s*({_NUMBER})\s*[\)\]]?$")


def normalize_axis(vector) -> np.ndarray:
    """A 3-vector as a unit axis; ValueError for wrong length, NaN/inf or (near) zero length."""
    v = np.asarray(vector, dtype=float).reshape(-1)
    if v.shape != (3,):
        raise ValueError(f"a rotation axis has 3 components, got {v.shape[0]}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"rotation axis {v.tolist()} holds NaN or inf")
    norm = float(np.linalg.norm(v))
    if norm < 1e-6:
        raise ValueError(f"rotation axis {v.tolist()} has zero length; give a direction")
    return v / norm


def parse_axis(spec) -> np.ndarray:
    """A unit axis from a name (`z`, `-x`, `general:7`, `(1,1,1)`), a string vector (`0.3,0,1`) or a 3-sequence.

    Raises ValueError with the accepted forms when spec cannot be read.
    """
    if not isinstance(spec, str):
        return normalize_axis(spec)
    text = spec.strip().lower().replace("+", "", 1) if spec.strip().startswith("+") else spec.strip().lower()
    table = named_axes()
    compact = text.replace(" ", "")
    if compact in table:
        return table[compact].copy()
    match = _VECTOR.match(text)
    if match:
        return normalize_axis([float(g) for g in match.groups()])
    raise ValueError(
        f"unknown rotation axis {spec!r}: use x, -x, y, -y, z, -z, general:0..{NUM_GENERAL - 1}, "
        f"(1,1,1), (1,0,1), (1,1,0), (0,1,1), or three numbers such as '0.3,0,1'"
    )
