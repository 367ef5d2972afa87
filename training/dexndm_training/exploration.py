"""Temporally correlated exploration noise for PPO.

Under the contract's rate limit (1/24 rad a step), independent per-step noise averages out before a finger
moves: a finger has to travel 0.2-0.3 rad, 5-8 steps in one direction, to make way for a turning object, and
i.i.d. noise almost never does that. The sampling-MPC teacher, which does turn the cuboid, explores with
splines whose knots hold for 6 ticks. This distribution keeps rsl_rl's Gaussian policy and its log-probabilities
(each step's noise is still N(0, 1) at the margin) but draws the noise of each world as an AR(1) process:

    eps_t = rho eps_{t-1} + sqrt(1 - rho^2) xi_t,   xi_t ~ N(0, 1),   action = mean + std eps_t

so a perturbation lasts about 1 / (1 - rho) control steps (rho 0.9: half a second). rho = 0 is rsl_rl's
GaussianDistribution exactly.
"""
from __future__ import annotations

import math

import torch
from rsl_rl.modules.distribution import GaussianDistribution


class CorrelatedGaussianDistribution(GaussianDistribution):
    """GaussianDistribution whose `sample()` draws AR(1) noise per row (world) with coefficient `correlation`."""

    def __init__(self, output_dim: int, init_std: float = 1.0, correlation: float = 0.0, **kwargs) -> None:
        if not 0.0 <= correlation < 1.0:
            raise ValueError(f"noise correlation must lie in [0, 1), got {correlation}")
        super().__init__(output_dim, init_std=init_std, **kwargs)
        self.correlation = float(correlation)
        self._noise: torch.Tensor | None = None

    def sample(self) -> torch.Tensor:
        mean, std = self._distribution.mean, self._distribution.stddev
        fresh = torch.randn_like(mean)
        if self.correlation > 0.0 and self._noise is not None and self._noise.shape == fresh.shape:
            fresh = self.correlation * self._noise + math.sqrt(1.0 - self.correlation**2) * fresh
        self._noise = fresh
        return mean + std * fresh
