"""PPO throughput against the physics limit of the same worlds, measured in one run.

    python -m dexndm_training.bench [--num-envs 1024] [--steps-per-env 16] [--update-threads 2] [--update-bf16]
                                   [--repeats 5]

The defaults are the configuration recommended for this 2-core machine (docs/TRAINING.md: `dexndm-train ppo
--num-envs 1024 --steps-per-env 16 --update-threads 2 --update-bf16`); the per-world reset caches are filled
first (a long run's steady state; `--cold-cache` measures a run's first minutes).

- physics limit: the env's own worlds on `--threads` threads, targets held fixed, `steps-per-env` control
  ticks in one call (no Python between ticks), by `mujoco.rollout` on each world's own model and by the
  env's shared-model stepper (one model with per-world fields), whichever is faster -- the fastest way this
  machine steps them;
- PPO: whole training iterations of `dexndm-train ppo`'s runner (collection through the env, GAE and the
  PPO update), control steps per second of wall time.

The two are interleaved, one iteration of each per repeat, so load from other processes hits both alike;
steps/s are medians over repeats, and `ratio` is the median of the per-repeat ratios (each pair ran back to
back). The last line is `ppo_steps_per_s=... physics_steps_per_s=... ratio=...`.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import fields

import mujoco
import numpy as np
import torch
from mujoco import rollout as mj_rollout

from dexndm_training.env import EnvConfig, RotationEnv
from dexndm_training.ppo import PPOConfig, make_runner


def physics_limit_seconds(env: RotationEnv, ticks: int, threads: int, pool: mj_rollout.Rollout) -> float:
    """Seconds to roll every world of env `ticks` control ticks ahead with its current targets held, the
    faster of `mujoco.rollout` on the worlds' own models and, where the env steps them so, one call of the
    shared-model stepper (`BatchedHandSim.shared_stepper`, states put back afterwards)."""
    sim = env.sim
    state = sim.physics_state()
    nstep = ticks * sim.config.substeps
    control = np.repeat(sim.targets[:, None, :], nstep, axis=1)
    scratch = [mujoco.MjData(sim.models[0]) for _ in range(threads)]
    out = np.empty((env.num_envs, nstep, state.shape[1]))
    sensors = np.empty((env.num_envs, nstep, sim.models[0].nsensordata))
    start = time.perf_counter()
    pool.rollout(sim.models, scratch, state, control, nstep=nstep, state=out, sensordata=sensors, skip_checks=True)
    seconds = time.perf_counter() - start
    shared = sim.shared_stepper
    if shared is not None:
        seconds = min(seconds, shared.hold_seconds(sim.targets, np.zeros(shared.xfrc.shape), nstep))
    return seconds


def main(argv: list[str] | None = None) -> int:
    defaults = PPOConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps-per-env", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="physics threads")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--object", default="normal_cuboid")
    for f in fields(PPOConfig):
        if f.name in ("num_learning_epochs", "num_mini_batches", "update_threads"):
            default = 2 if f.name == "update_threads" else getattr(defaults, f.name)
            p.add_argument("--" + f.name.replace("_", "-"), type=int, default=default)
        if f.name in ("actor_hidden", "critic_hidden"):
            p.add_argument("--" + f.name.replace("_", "-"), type=int, nargs="+", default=getattr(defaults, f.name))
    p.add_argument("--update-bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="the update's matrix products in bfloat16 (the recommended throughput configuration)")
    p.add_argument("--cold-cache", action="store_true",
                   help="start with empty per-world reset caches (a run's first minutes: resets close on grasps)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.torch_threads))
    env = RotationEnv(EnvConfig(num_envs=args.num_envs, object=args.object, threads=args.threads))
    if not args.cold_cache:
        env.fill_reset_cache()  # a long run's steady state: every reset restores a settled grasp
        env.reset()
    cfg = PPOConfig(num_steps_per_env=args.steps_per_env, num_learning_epochs=args.num_learning_epochs,
                    num_mini_batches=args.num_mini_batches, update_threads=args.update_threads,
                    update_bf16=args.update_bf16,
                    actor_hidden=list(args.actor_hidden),
                    critic_hidden=list(args.critic_hidden))
    pool = mj_rollout.Rollout(nthread=args.threads if args.threads > 1 else 0)
    steps = args.num_envs * args.steps_per_env
    with tempfile.TemporaryDirectory() as run_dir:
        runner = make_runner(env, cfg, run_dir)
        runner.cfg["save_interval"] = 10**9
        runner.learn(1)  # warm-up: allocations, first resets
        ppo_s, phys_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            runner.learn(1)
            ppo_s.append(time.perf_counter() - start)
            phys_s.append(physics_limit_seconds(env, args.steps_per_env, args.threads, pool))
    pool.close()
    env.close()
    ppo, phys = steps / statistics.median(ppo_s), steps / statistics.median(phys_s)
    paired = statistics.median(p / q for p, q in zip(phys_s, ppo_s))  # each pair ran back to back
    print(f"config: {args.num_envs} worlds x {args.steps_per_env} steps, {args.threads} physics threads, "
          f"{args.torch_threads} torch threads, epochs {cfg.num_learning_epochs}, mini-batches {cfg.num_mini_batches}, "
          f"bf16 update {cfg.update_bf16}, "
          f"actor {cfg.actor_hidden}, critic {cfg.critic_hidden}; medians of {args.repeats}")
    print(f"ppo iteration s: {[round(s, 3) for s in ppo_s]}; physics s: {[round(s, 3) for s in phys_s]}")
    print(f"ppo_steps_per_s={ppo:.0f} physics_steps_per_s={phys:.0f} ratio={paired:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
