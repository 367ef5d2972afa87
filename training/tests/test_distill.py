"""MPC -> privileged actor distillation: iterations write a PPO run directory that resumes, evaluates and fine-tunes."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from dexndm_training import distill, mpc, ppo
from dexndm_training.env import EnvConfig, RotationEnv

ENV = EnvConfig(num_envs=2, object="normal_cuboid", episode_steps=10, grasp_candidates=8, threads=1, seed=4)
TEACHER = mpc.MPCConfig(samples=4, horizon=4, knot_every=2, threads=1)


def test_iterations_label_fit_and_leave_a_ppo_run_that_fine_tunes(tmp_path):
    torch.set_num_threads(1)
    cfg = distill.DistillConfig(epochs=40, eval_episodes=2)
    distill.run(ENV, TEACHER, ppo.PPOConfig(), cfg, tmp_path, iterations=1, progress=False)
    curve = distill.run(ENV, TEACHER, ppo.PPOConfig(), cfg, tmp_path, iterations=1, progress=False)  # resumes
    assert [p["iteration"] for p in curve] == [0, 1] and [p["beta"] for p in curve] == [1.0, 0.5]
    assert [p["env_steps"] for p in curve] == [20, 40]  # 2 worlds x 10 ticks per iteration
    data = np.load(tmp_path / "distill_0001.npz")
    first = np.load(tmp_path / "distill_0000.npz")
    assert data["policy"].shape[1] == 327 and data["label"].shape[1] == 16
    assert len(first["label"]) + len(data["label"]) == curve[1]["rows"]  # the fit uses every iteration's labels
    assert np.all(np.abs(data["label"]) <= 1.0)
    # the fit beats predicting zero on the teacher's labels
    assert curve[1]["train_mse"] < 0.7 * curve[1]["zero_mse"], curve[1]
    assert all(0.0 <= p["ttf"] <= 1.0 for p in curve)
    run_config = json.loads((tmp_path / "run_config.json").read_text())
    assert run_config["ppo"]["actor_groups"] == ["policy", "privileged"]
    env = RotationEnv(ENV)
    actor = ppo.load_actor(tmp_path, env)  # evaluate and dagger --teacher-run read it like any PPO run
    with torch.no_grad():
        assert actor(env.get_observations()).shape == (2, 16)
    env.close()
    # ppo --run-dir on it goes on from the distilled actor
    runner = ppo.train(ENV, ppo.PPOConfig(**{**run_config["ppo"], "iterations": 1, "num_steps_per_env": 4,
                                             "eval_episodes": 0}), tmp_path)
    assert runner.current_learning_iteration == 2


def test_only_delta_actions_are_distilled(tmp_path):
    target = replace(ENV, action_mode="target")
    with pytest.raises(ValueError, match="delta"):
        distill.run(target, TEACHER, ppo.PPOConfig(), distill.DistillConfig(), tmp_path, iterations=1, progress=False)
