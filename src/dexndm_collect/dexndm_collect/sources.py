"""Replay sources for Chaos Box collection: per-episode target sequences [steps, 16] (rad, motor-ID order).

Every source is deterministic in (seed, episode index): episode k gets the same targets whether a run
went straight through or resumed after a crash. Targets are always clipped to the joint limits.

Sources (DexNDM paper, ../shared/LEAP_HAND.md):
- ``sim_rollouts``: the ``base_target`` (or ``target``) sequence of simulated rollouts from a dataset
  directory (the training package's dataset layout, docs/TRAINING.md), episodes of one wrist label, in a seeded order.
- ``sine``: ``mid + sigma sin(2 omega t)`` on one random joint, sigma ~ U(0.5, 1.0) rad,
  omega ~ U(0.2, 0.5) rad/s, the other joints at mid-range.
- ``square``: ``mid + A sign(sin(2 omega t))``, same ranges.
- ``square_noise``: square plus N(0, 0.01) rad on every step of the moving joint.
- ``file``: recorded targets, ``.npy`` [T, 16] or CSV (T rows of 16 numbers); episode k replays rows
  ``k*steps .. (k+1)*steps`` (wrapping around the file).

Replay noise (the paper's "sigma = 0.01 added to each action with probability 0.5") is drawn **per step**:
at each step, with probability ``noise_probability``, all 16 targets get N(0, noise_sigma) added.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dexndm_description import hand

SOURCES = ("sim_rollouts", "sine", "square", "square_noise", "file")
DEFAULT_NOISE_SIGMA = 0.01  # rad
DEFAULT_NOISE_PROBABILITY = 0.5
SIGMA_RANGE = (0.5, 1.0)  # rad
OMEGA_RANGE = (0.2, 0.5)  # rad/s
SQUARE_NOISE_SIGMA = 0.01  # rad


class SourceError(ValueError):
    """A replay source that cannot be built (unknown name, missing or malformed file)."""


@dataclass
class ReplaySource:
    """Makes the target sequence of each episode; see the module docstring."""

    name: str
    steps: int = 400
    seed: int = 0
    noise_sigma: float = DEFAULT_NOISE_SIGMA
    noise_probability: float = DEFAULT_NOISE_PROBABILITY
    path: str = ""
    wrist: str = ""

    def __post_init__(self):
        if self.name not in SOURCES:
            raise SourceError(f"unknown replay source {self.name!r}; choose one of {', '.join(SOURCES)}")
        if self.steps < 1:
            raise SourceError(f"episode steps must be >= 1, got {self.steps}")
        if not (self.noise_sigma >= 0.0 and 0.0 <= self.noise_probability <= 1.0):
            raise SourceError(f"noise sigma must be >= 0 and probability in [0, 1], got "
                              f"{self.noise_sigma} and {self.noise_probability}")
        self._sequences: list[np.ndarray] | None = None
        self._table: np.ndarray | None = None
        if self.name == "sim_rollouts":
            self._sequences = load_rollout_targets(self.path, self.wrist)
        elif self.name == "file":
            self._table = load_target_file(self.path)

    def episode(self, index: int) -> np.ndarray:
        """Targets [steps, 16] (rad) of episode `index`, noise added, clipped to the joint limits."""
        rng = np.random.default_rng([int(self.seed), int(index)])
        if self.name == "sim_rollouts":
            base = self._rollout(index)
        elif self.name == "file":
            base = self._file_window(index)
        else:
            base = base_wave(self.name, self.steps, rng)
        noisy = rng.random(self.steps) < self.noise_probability
        base = base + noisy[:, None] * rng.normal(0.0, self.noise_sigma, size=base.shape)
        return hand.clip_to_limits(base)

    def start_pose(self, index: int) -> np.ndarray:
        """Where episode `index` starts (its first target, rad): the hand is brought there before it."""
        return self.episode(index)[0]

    def _rollout(self, index: int) -> np.ndarray:
        order = np.random.default_rng([int(self.seed), 0x5EED]).permutation(len(self._sequences))
        seq = self._sequences[order[index % len(order)]]
        return _fit_length(seq, self.steps)

    def _file_window(self, index: int) -> np.ndarray:
        table = self._table
        rows = (index * self.steps + np.arange(self.steps)) % len(table)
        return table[rows]


def _fit_length(seq: np.ndarray, steps: int) -> np.ndarray:
    """First `steps` rows of seq; a shorter sequence holds its last target to the end."""
    if len(seq) >= steps:
        return np.array(seq[:steps], dtype=float)
    return np.concatenate([seq, np.repeat(seq[-1:], steps - len(seq), axis=0)]).astype(float)


def base_wave(kind: str, steps: int, rng: np.random.Generator) -> np.ndarray:
    """A base-wave episode [steps, 16]: one random joint moves about mid-range, the rest hold mid-range."""
    t = np.arange(steps) * hand.CONTROL_DT
    joint = int(rng.integers(hand.NUM_JOINTS))
    amplitude = rng.uniform(*SIGMA_RANGE)
    omega = rng.uniform(*OMEGA_RANGE)
    phase = np.sin(2.0 * omega * t)
    wave = amplitude * (phase if kind == "sine" else np.sign(phase))
    if kind == "square_noise":
        wave = wave + rng.normal(0.0, SQUARE_NOISE_SIGMA, size=steps)
    targets = np.tile(hand.MID, (steps, 1))
    targets[:, joint] += wave
    return targets


def load_rollout_targets(path: str, wrist: str = "") -> list[np.ndarray]:
    """Per-episode target sequences from a dataset directory, `base_target` preferred over `target`.

    Only episodes whose wrist label equals `wrist` are kept (all when `wrist` is empty).
    """
    root = Path(path) if path else None
    if root is None or not (root / "index.json").exists():
        raise SourceError(f"sim_rollouts needs a dataset directory with index.json (source_path), got {path!r}")
    index = json.loads((root / "index.json").read_text())
    array_file = root / "base_target.npy"
    if not array_file.exists():
        array_file = root / "target.npy"
    if not array_file.exists():
        raise SourceError(f"{root} holds neither base_target.npy nor target.npy")
    targets = np.load(array_file, mmap_mode="r")
    if targets.ndim != 2 or targets.shape[1] != hand.NUM_JOINTS:
        raise SourceError(f"{array_file}: shape {targets.shape}, expected [T, {hand.NUM_JOINTS}]")
    episodes = [e for e in index.get("episodes", []) if not wrist or e.get("wrist") == wrist]
    if not episodes:
        labels = sorted({e.get("wrist", "") for e in index.get("episodes", [])})
        raise SourceError(f"{root}: no episode with wrist {wrist!r}; labels present: {labels}")
    sequences = []
    for e in episodes:
        seq = np.asarray(targets[e["start"]:e["start"] + e["length"]], dtype=float)
        if len(seq) == 0 or not np.all(np.isfinite(seq)):
            raise SourceError(f"{root}: episode {e.get('index')} is empty or holds NaN/inf")
        sequences.append(seq)
    return sequences


def load_target_file(path: str) -> np.ndarray:
    """Recorded targets [T, 16] (rad) from a .npy or CSV file (comma or whitespace separated)."""
    file = Path(path) if path else None
    if file is None or not file.is_file():
        raise SourceError(f"source 'file' needs source_path to name a .npy or CSV file, got {path!r}")
    try:
        if file.suffix == ".npy":
            table = np.load(file)
        else:
            text = file.read_text().replace(",", " ")
            table = np.loadtxt(text.splitlines(), ndmin=2, comments="#")
    except ValueError as err:
        raise SourceError(f"cannot read targets from {file}: {err}") from None
    table = np.asarray(table, dtype=float)
    if table.ndim != 2 or table.shape[1] != hand.NUM_JOINTS or len(table) == 0:
        raise SourceError(f"{file}: shape {table.shape}, expected [T, {hand.NUM_JOINTS}] targets in rad")
    if not np.all(np.isfinite(table)):
        raise SourceError(f"{file}: holds NaN or inf targets")
    return table
