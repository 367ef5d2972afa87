"""Networks of the DexNDM policies, with the observation normalizer inside so it travels into ONNX.

ResidualMLP follows the paper: input linear to `width`, `blocks` blocks
y = ReLU(L1(x) + L3(ReLU(L2(x)))), output linear. The paper uses width 1024 x 5 blocks at GPU scale;
the CPU default here is smaller (configurable).
"""
from __future__ import annotations

import torch
from torch import nn

from dexndm_description import hand
from dexndm_policy import observation


class Normalizer(nn.Module):
    """(x - mean) / sqrt(var + eps), clipped to +-clip; statistics set from data with `fit`."""

    def __init__(self, dim: int, clip: float = 5.0, eps: float = 1e-6):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.clip, self.eps = clip, eps

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        data = data.reshape(-1, self.mean.shape[0]).to(self.mean)
        self.mean.copy_(data.mean(0))
        self.var.copy_(data.var(0, unbiased=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + self.eps), -self.clip, self.clip)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.l1(x) + self.l3(torch.relu(self.l2(x))))


class ResidualMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, width: int = 256, blocks: int = 2):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.out = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.inp(x)))


def motion_features(obs: torch.Tensor) -> torch.Tensor:
    """[N, 304] from the contract's history, in action units (rad x 24, one unit = the largest step):
    the commanded steps a_k - a_{k-1} and the joint steps q_k - q_{k-1} of the last 9 ticks, and the
    newest tracking error a_{t-1} - q_t. The history already holds them, but as differences of strongly
    correlated angles about 0.04 rad apart; a small network on little data overfits the angles instead."""
    hist = obs[:, observation.HISTORY_SLICE].reshape(-1, observation.HISTORY, observation.STEP_DIM)
    q, a = hist[..., : hand.NUM_JOINTS], hist[..., hand.NUM_JOINTS :]
    scale = 1.0 / hand.ACTION_SCALE
    return torch.cat([((a[:, 1:] - a[:, :-1]) * scale).flatten(1), ((q[:, 1:] - q[:, :-1]) * scale).flatten(1),
                      (a[:, -1] - q[:, -1]) * scale], dim=-1)


MOTION_DIM = 2 * (observation.HISTORY - 1) * hand.NUM_JOINTS + hand.NUM_JOINTS


class GeneralistPolicy(nn.Module):
    """obs [N, 327] -> delta [N, 16] in [-1, 1] (tanh). With `motion` the network also sees
    `motion_features` (computed inside the graph, so the ONNX contract is unchanged)."""

    def __init__(self, width: int = 256, blocks: int = 2, motion: bool = False):
        super().__init__()
        self.motion = bool(motion)
        dim = observation.OBS_DIM + (MOTION_DIM if self.motion else 0)
        self.normalizer = Normalizer(dim)
        self.mlp = ResidualMLP(dim, hand.NUM_JOINTS, width, blocks)

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """What the normalizer sees (fit it on these)."""
        return torch.cat([obs, motion_features(obs)], dim=-1) if self.motion else obs

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mlp(self.normalizer(self.inputs(obs))))


#: Where the newest step of the history sits in obs: q_t and a_{t-1} (rad).
_NEWEST = (observation.HISTORY - 1) * observation.STEP_DIM
_Q_T = slice(_NEWEST, _NEWEST + hand.NUM_JOINTS)
_A_PREV = slice(_NEWEST + hand.NUM_JOINTS, _NEWEST + observation.STEP_DIM)
_Q_PREV = slice(_NEWEST - observation.STEP_DIM, _NEWEST - hand.NUM_JOINTS)


def tracking_features(obs: torch.Tensor, base_target: torch.Tensor) -> torch.Tensor:
    """[N, 48]: a_t - q_t (tracking error), q_t - q_{t-1} (motion per step), a_t - a_{t-1} (commanded step), rad."""
    q_t = obs[:, _Q_T]
    return torch.cat([base_target - q_t, q_t - obs[:, _Q_PREV], base_target - obs[:, _A_PREV]], dim=-1)


class ResidualPolicy(nn.Module):
    """(obs [N, 327], base_target [N, 16]) -> residual [N, 16] rad, bounded by +-max_residual.

    Besides obs and the base target the network sees `tracking_features` (differences it would otherwise have
    to find among 343 strongly correlated inputs); all of it is normalized inside the graph."""

    def __init__(self, width: int = 256, blocks: int = 2, max_residual: float = 0.2):
        super().__init__()
        in_dim = observation.OBS_DIM + 4 * hand.NUM_JOINTS
        self.normalizer = Normalizer(in_dim)
        self.mlp = ResidualMLP(in_dim, hand.NUM_JOINTS, width, blocks)
        self.max_residual = max_residual
        # Start as the identity correction: an untrained residual outputs exactly zero.
        nn.init.zeros_(self.mlp.out.weight)
        nn.init.zeros_(self.mlp.out.bias)

    def forward(self, obs: torch.Tensor, base_target: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(self.inputs(obs, base_target))
        return self.max_residual * torch.tanh(self.mlp(x))

    @staticmethod
    def inputs(obs: torch.Tensor, base_target: torch.Tensor) -> torch.Tensor:
        """What the normalizer sees: obs, base target, tracking features [N, 327 + 16 + 48]."""
        return torch.cat([obs, base_target, tracking_features(obs, base_target)], dim=-1)
