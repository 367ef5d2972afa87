"""Correlated exploration noise: each world's noise is AR(1) with the configured coefficient, the margins stay
the Gaussian PPO scores, and a PPO run with it collects, trains and reloads."""
import numpy as np
import pytest
import torch

from dexndm_training import ppo
from dexndm_training.env import EnvConfig, RotationEnv
from dexndm_training.exploration import CorrelatedGaussianDistribution


def noise_series(correlation: float, steps: int = 300, worlds: int = 2048) -> torch.Tensor:
    torch.manual_seed(0)
    dist = CorrelatedGaussianDistribution(16, init_std=0.5, correlation=correlation)
    mean = torch.full((worlds, 16), 0.2)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            dist.update(mean)
            out.append(dist.sample() - mean)
    return torch.stack(out[50:])  # past the start-up


def lag_correlation(x: torch.Tensor, lag: int) -> float:
    return float(torch.corrcoef(torch.stack([x[:-lag].flatten(), x[lag:].flatten()]))[0, 1])


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_noise_is_ar1_with_the_gaussian_margin(rho):
    x = noise_series(rho)
    assert abs(float(x.std()) - 0.5) < 0.01  # the std PPO's log-probabilities assume
    assert abs(lag_correlation(x, 1) - rho) < 0.01
    assert abs(lag_correlation(x, 5) - rho**5) < 0.02
    # worlds draw their own noise
    assert abs(float(torch.corrcoef(torch.stack([x[:, 0, 0], x[:, 1, 0]]))[0, 1])) < 0.2


def test_a_correlation_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        CorrelatedGaussianDistribution(16, correlation=1.0)


def test_ppo_with_correlated_noise_trains_and_reloads(tmp_path):
    torch.set_num_threads(1)
    env_cfg = EnvConfig(num_envs=4, episode_steps=10, grasp_candidates=8, threads=1)
    cfg = ppo.PPOConfig(num_steps_per_env=8, iterations=2, save_interval=1, eval_episodes=0, noise_correlation=0.9)
    runner = ppo.train(env_cfg, cfg, tmp_path)
    dist = runner.alg.get_policy().distribution
    assert isinstance(dist, CorrelatedGaussianDistribution) and dist.correlation == 0.9
    env = RotationEnv(env_cfg)
    actor = ppo.load_actor(tmp_path, env)  # the run's config rebuilds the same distribution
    with torch.no_grad():
        assert np.all(np.isfinite(actor(env.get_observations()).numpy()))
    env.close()
