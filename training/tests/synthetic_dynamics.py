"""Synthetic joint laws for the dynamics and residual tests: datasets in the real layout, known answers."""
from __future__ import annotations

import numpy as np
import torch

from dexndm_description import hand
from dexndm_training.dataset import Episode, write_dataset

#: Per-joint gains of the first-order law q_{t+1} = q_t + k_i (a_{t-delay} - q_t), all different.
GAINS = np.linspace(0.25, 0.7, hand.NUM_JOINTS)


def targets(rng: np.random.Generator, length: int, spread: float = 0.4, change: float = 0.15) -> np.ndarray:
    """Piecewise-constant random targets [length, 16] about mid-range, each joint re-drawn with `change` per step."""
    a = np.empty((length, hand.NUM_JOINTS))
    a[0] = hand.MID + rng.uniform(-spread, spread, hand.NUM_JOINTS)
    for t in range(1, length):
        redraw = rng.random(hand.NUM_JOINTS) < change
        a[t] = np.where(redraw, hand.MID + rng.uniform(-spread, spread, hand.NUM_JOINTS), a[t - 1])
    return a


def first_order_episodes(episodes: int, length: int, gains=GAINS, delay: int = 0, seed: int = 0,
                         spread: float = 0.4) -> list[Episode]:
    """Episodes of the law above, started at rest at the first target; wrist palm_down, axis +z."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        a = targets(rng, length, spread)
        q = np.empty((length + 1, hand.NUM_JOINTS))
        q[0] = a[0] + rng.uniform(-0.05, 0.05, hand.NUM_JOINTS)
        for t in range(length):
            acting = a[max(t - delay, 0)]
            q[t + 1] = q[t] + gains * (acting - q[t])
        out.append(Episode(q=q[:-1], target=a, next_q=q[1:], base_target=a, wrist=[0, 0, 0, 1], axis=[0, 0, 1],
                           wrist_label="palm_down"))
    return out


def write_law(path, episodes: int, length: int, **kwargs):
    return write_dataset(path, first_order_episodes(episodes, length, **kwargs), provenance={"synthetic": kwargs.get(
        "delay", 0)})


class KnownLaw(torch.nn.Module):
    """A known dynamics model with the DynamicsModel interface: q_{t+1} = q_t + k_i (a_t - q_t)."""

    def __init__(self, gains=GAINS, window: int = 10):
        super().__init__()
        self.window = window
        self.register_buffer("gains", torch.as_tensor(gains, dtype=torch.float32))

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        q, a = history[:, :, -1, 0], history[:, :, -1, 1]
        return q + self.gains * (a - q)
