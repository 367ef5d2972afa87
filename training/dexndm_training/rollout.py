"""Run a policy in the rotation env for one episode per world, and collect successful rollouts as a dataset.

A policy is any callable obs TensorDict -> actions [N, 16] (delta in [-1, 1]): a specialist's actor, an
ONNX generalist (`OnnxPolicy`) or `zero_policy` (hold the grasp: the baseline). `rollout` records the first
episode of every world; `collect` keeps only episodes that survived all their steps and writes them in the
simulation-data layout (dexndm_training.dataset) with the wrist, axis and object set of each.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dexndm_policy import observation
from dexndm_training.dataset import Episode, write_dataset
from dexndm_training.env import RotationEnv


def zero_policy(obs) -> torch.Tensor:
    """delta = 0: the base target stays at the grasp pose."""
    policy = obs["policy"]
    return torch.zeros(policy.shape[0], 16, dtype=policy.dtype)


class OnnxPolicy:
    """An exported generalist (ONNX, contract-checked by the session signature) as a policy callable."""

    def __init__(self, path: str | os.PathLike):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, obs) -> torch.Tensor:
        policy = obs["policy"].cpu().numpy().astype(np.float32)
        return torch.from_numpy(self.session.run(None, {"obs": policy})[0])


class TorchPolicy:
    """A torch module mapping the `policy` group to delta (e.g. a GeneralistPolicy) as a policy callable."""

    def __init__(self, module: torch.nn.Module):
        self.module = module.eval()

    @torch.no_grad()
    def __call__(self, obs) -> torch.Tensor:
        return self.module(obs["policy"].float())


@dataclass
class Rollout:
    """One episode per world. Arrays are [N, T, ...] for T = env.cfg.episode_steps; `alive` [N] steps survived."""

    q: np.ndarray  # q_t (clean), rad
    target: np.ndarray  # a_t, rad
    next_q: np.ndarray  # q_{t+1}, rad
    object_quat: np.ndarray  # [N, T+1, 4], world frame
    angvel: np.ndarray  # [N, T, 3], world frame, rad/s
    reward: np.ndarray  # [N, T]
    alive: np.ndarray  # [N]
    axis: np.ndarray  # [N, 3] palm frame
    axis_world: np.ndarray  # [N, 3]
    wrist: np.ndarray  # [N, 4]
    wrist_labels: list[str]
    seconds: float

    @property
    def success(self) -> np.ndarray:
        return self.alive >= self.q.shape[1]


@torch.no_grad()
def rollout(env: RotationEnv, policy, axes: np.ndarray | None = None) -> Rollout:
    """Reset every world, optionally set its axis (palm frame [N, 3] or [3]), run one full episode each."""
    start = time.time()
    obs = env.reset()
    if axes is not None:
        env.set_axes(axes)
        obs = env.get_observations()
    if hasattr(policy, "bind"):  # a policy that reads the env's episode clock (gait.GaitPolicy)
        policy.bind(env)
    n, steps, j = env.num_envs, env.cfg.episode_steps, 16
    rec = {k: np.zeros((n, steps, j)) for k in ("q", "target", "next_q")}
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, steps + 1, 1))
    angvel = np.zeros((n, steps, 3))
    reward = np.zeros((n, steps))
    quat[:, 0] = env.sim.object_pose[:, 3:]
    alive = np.full(n, steps)
    running = np.ones(n, dtype=bool)
    axis, axis_world = env.axis.copy(), env.axis_world.copy()
    for t in range(steps):
        rec["q"][:, t] = env.sim.q
        obs, _, done, _ = env.step(policy(obs))
        last = env.last_step
        rec["target"][:, t], rec["next_q"][:, t] = last["target"], last["q"]
        quat[:, t + 1], angvel[:, t], reward[:, t] = last["object_pose"][:, 3:], last["angvel"], last["reward"]
        ended = running & last["fallen"] & (alive == steps)  # the first fall (worlds may run on after it)
        alive[ended] = t  # the step that dropped it does not count as survived
        running &= ~done.cpu().numpy()
        if not running.any():
            break
    return Rollout(q=rec["q"], target=rec["target"], next_q=rec["next_q"], object_quat=quat, angvel=angvel,
                   reward=reward, alive=alive, axis=axis, axis_world=axis_world, wrist=env.wrist.copy(),
                   wrist_labels=list(env.wrist_labels), seconds=time.time() - start)


def successful_episodes(result: Rollout, object_set: str, source: str) -> list[Episode]:
    """The episodes that survived all their steps, as dataset Episodes."""
    return [
        Episode(q=result.q[i], target=result.target[i], next_q=result.next_q[i], wrist=result.wrist[i],
                axis=result.axis[i], base_target=result.target[i], success=True, source=source,
                wrist_label=result.wrist_labels[i], object_set=object_set)
        for i in np.flatnonzero(result.success)
    ]


def collect(env: RotationEnv, policy, episodes: int, out: str | os.PathLike, source: str = "specialist",
            max_rounds: int = 100, progress: bool = True) -> tuple[Path, dict]:
    """Roll out until `episodes` successful episodes are kept (or max_rounds), write them to `out`."""
    kept: list[Episode] = []
    tried, rounds = 0, 0
    start = time.time()
    while len(kept) < episodes and rounds < max_rounds:
        result = rollout(env, policy)
        kept += successful_episodes(result, env.cfg.object, source)
        tried += env.num_envs
        rounds += 1
        if progress:
            print(f"collect round {rounds}: kept {len(kept)}/{episodes}, success rate {len(kept) / tried:.2f}, "
                  f"{time.time() - start:.0f} s", flush=True)
    if not kept:
        raise RuntimeError(f"no episode survived {env.cfg.episode_steps} steps in {tried} tries; train the "
                           "specialist longer or shorten --episode-steps")
    stats = {"tried": tried, "kept": len(kept[:episodes]), "success_rate": len(kept) / tried,
             "seconds": time.time() - start, "history": observation.HISTORY}
    path = write_dataset(out, kept[:episodes], provenance={"source": source, "object_set": env.cfg.object,
                                                           "env": env.cfg.to_dict(), "collect": stats})
    return path, stats
