"""Training smoke test: a few PPO iterations on a tiny rotation env must beat a random policy, and resume."""
import json

import numpy as np
import torch

from dexndm_training import ppo
from dexndm_training.env import EnvConfig, RotationEnv
from dexndm_training.rewards import RewardConfig
from dexndm_training.rollout import rollout


def mean_return(env, policy, seed=7):
    """Mean episode return over one episode per world, with the env's random draws seeded."""
    env.rng = np.random.default_rng(seed)
    return float(rollout(env, policy).reward.sum(1).mean())


def test_ppo_beats_a_random_policy_within_seconds():
    torch.set_num_threads(1)
    # Penalties at full weight (penalty_scale 1): 25 iterations cannot learn rotation, but they can learn to keep
    # the hand calm, and a uniform-random policy pays for thrashing. At the training default (0.1) the returns of
    # random and trained policies are within the noise of this tiny run since resets stopped dropping objects.
    env = RotationEnv(EnvConfig(num_envs=8, episode_steps=60, grasp_candidates=32, threads=1, seed=3,
                                reward=RewardConfig(penalty_scale=1.0)))
    gen = torch.Generator().manual_seed(0)
    uniform = lambda obs: torch.rand(obs["policy"].shape[0], 16, generator=gen) * 2 - 1  # noqa: E731
    random_return = mean_return(env, uniform)
    # a fixed, thorough update (the 2-core default does 2 x 2 mini-batch steps per iteration)
    runner = ppo.make_runner(env, ppo.PPOConfig(num_steps_per_env=24, learning_rate=1e-3, num_learning_epochs=5,
                                                num_mini_batches=4), None)
    runner.learn(25)
    actor = runner.get_inference_policy()
    trained_return = mean_return(env, lambda obs: actor(obs))
    env.close()
    # The trained actor must recover at least a fifth of the random policy's loss. Measured after 25
    # iterations, PPO seeds 0-2: 0.29, 0.36, 0.28 (rsl_rl's own normalizer update: 0.53, 0.36, 0.28; a tiny
    # run is chaotic, rounding alone moves seed 0); the untrained actor: 0.10, after one iteration -0.74.
    assert trained_return > random_return + abs(random_return) / 5, (trained_return, random_return)


def test_training_writes_checkpoints_and_resumes_with_the_schedule(tmp_path):
    torch.set_num_threads(1)
    env_cfg = EnvConfig(num_envs=4, episode_steps=10, grasp_candidates=8, threads=1)
    cfg = ppo.PPOConfig(num_steps_per_env=8, iterations=2, save_interval=1, eval_episodes=2)
    ppo.train(env_cfg, cfg, tmp_path)
    curve = json.loads((tmp_path / "curve.json").read_text())  # fresh episodes at every checkpoint
    assert [p["iteration"] for p in curve] == [0, 1] and [p["env_steps"] for p in curve] == [32, 64]
    assert all(0.0 <= p["ttf"] <= 1.0 and p["episodes"] == 2 for p in curve)
    assert ppo.latest_checkpoint(tmp_path).name == "model_1.pt"
    assert list(tmp_path.glob("events.out.tfevents.*"))
    saved = torch.load(ppo.latest_checkpoint(tmp_path), weights_only=False)
    assert saved["infos"]["env_resets"] > 0
    runner = ppo.train(env_cfg, cfg, tmp_path)
    assert runner.current_learning_iteration == 3
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [p["iteration"] for p in curve] == [0, 1, 2, 3] and curve[-1]["wall_s"] >= curve[1]["wall_s"]
    from dexndm_training import curves  # `dexndm-train curve` plots a PPO run as one series

    assert curves.series(tmp_path) == {tmp_path.name: curve}
    assert curves.write(curves.series(tmp_path), tmp_path / "plot")["plot"].stat().st_size > 1000
    assert runner.env.resets >= saved["infos"]["env_resets"]
    assert json.loads((tmp_path / "run_config.json").read_text())["env"]["num_envs"] == 4
    env = RotationEnv(env_cfg)
    actor = ppo.load_actor(tmp_path, env)
    assert actor(env.get_observations()).shape == (4, 16)
    env.close()


def test_the_normalizer_update_matches_rsl_rl_over_several_batches():
    from rsl_rl.models import MLPModel as RslMLPModel
    from tensordict import TensorDict

    gen = torch.Generator().manual_seed(0)
    batches = [TensorDict({"policy": 3.0 + 2.0 * torch.randn(n, 7, generator=gen),
                           "privileged": torch.randn(n, 5, generator=gen) * torch.arange(1, 6)}, batch_size=[n])
               for n in (512, 64, 2048)]
    groups = {"actor": ["policy", "privileged"]}
    ours = ppo.MLPModel(batches[0], groups, "actor", 2, hidden_dims=[8], obs_normalization=True)
    theirs = RslMLPModel(batches[0], groups, "actor", 2, hidden_dims=[8], obs_normalization=True)
    for batch in batches:
        ours.update_normalization(batch)
        theirs.update_normalization(batch)
    a, b = ours.obs_normalizer, theirs.obs_normalizer
    assert int(a.count) == int(b.count) == 512 + 64 + 2048
    assert torch.allclose(a._mean, b._mean, atol=1e-5) and torch.allclose(a._std, b._std, rtol=1e-4)
    assert not torch.allclose(a._std, torch.ones_like(a._std), atol=0.1)  # it did learn the statistics
    x = torch.cat([batches[1]["policy"], batches[1]["privileged"]], dim=-1)  # the fused normalization
    assert isinstance(a, ppo.FusedNormalization) and torch.allclose(a(x), b(x), atol=1e-5)


def test_values_batched_after_the_rollout_match_rsl_rl_per_step():
    """DeferredValuePPO runs the critic once per rollout; GAE targets must equal rsl_rl's per-step values,
    time-out bootstraps included (episodes of 6 steps end inside the 16-step rollout)."""
    from rsl_rl.algorithms import PPO as RslPPO

    storages = []
    for algorithm in ("dexndm_training.ppo:DeferredValuePPO", "PPO"):
        torch.set_num_threads(1)
        env = RotationEnv(EnvConfig(num_envs=4, episode_steps=6, grasp_candidates=8, threads=1, seed=5))
        cfg = ppo.runner_config(ppo.PPOConfig(num_steps_per_env=16))
        cfg["algorithm"]["class_name"] = algorithm
        torch.manual_seed(0)
        runner = ppo.SpecialistRunner(env, cfg, log_dir=None, device="cpu")
        alg = runner.alg
        obs = env.get_observations()
        time_outs = 0
        with torch.inference_mode():
            for _ in range(16):
                obs, rewards, dones, extras = env.step(alg.act(obs))
                time_outs += int(extras["time_outs"].sum())
                alg.process_env_step(obs, rewards, dones, extras)
            alg.compute_returns(obs)
        env.close()
        assert isinstance(alg, ppo.DeferredValuePPO) == (algorithm != "PPO") and isinstance(alg, RslPPO)
        storages.append({k: getattr(alg.storage, k).clone() for k in ("actions", "values", "rewards", "returns", "advantages")})
    ours, theirs = storages
    assert time_outs > 0
    assert torch.equal(ours["actions"], theirs["actions"])  # the same episodes
    assert not torch.equal(theirs["values"], torch.zeros_like(theirs["values"]))
    for key in ("values", "rewards", "returns", "advantages"):
        assert torch.allclose(ours[key], theirs[key], atol=1e-5), key


def test_a_bf16_update_runs_and_moves_the_float32_weights():
    torch.set_num_threads(1)
    env = RotationEnv(EnvConfig(num_envs=4, episode_steps=10, grasp_candidates=8, threads=1))
    runner = ppo.make_runner(env, ppo.PPOConfig(num_steps_per_env=8, update_bf16=True), None)
    before = [p.detach().clone() for p in runner.alg.actor.parameters()]
    runner.learn(2)
    env.close()
    after = list(runner.alg.actor.parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
