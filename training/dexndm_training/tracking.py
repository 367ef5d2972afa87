"""Joint tracking error between the worlds: the base policy's episodes run in the source world and in the target
world (without and with a residual) from the same start, compared tick by tick.

Each episode starts every world at the same joint pose q_0 (the canonical grasp jittered by U(+-grasp_noise)
rad, drawn from `seed`) with the same object (same seeds: same shape, mass, friction), and runs the base policy
closed-loop for `steps` ticks, as the policy node does: obs from the (q_k, a_{k-1}) history,
a_t = integrate(a_{t-1}, delta), executed = clip(a_t + residual(obs, a_t)). No observation noise or disturbance
forces, so the only differences between the runs are the worlds and the residual.

    track_err = mean over episodes, ticks and joints of |q_t^target - q_t^source|   (rad)

It measures how far the target hand strays from what the policy does in the world it was trained in, and it
works even when the policy barely rotates the object. With an object, each run also reports Rot (rad about the
axis until the fall), TTF, RotR and RotP (metrics.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from dexndm_description import hand
from dexndm_description.axes import parse_axis
from dexndm_description.wrist import parse_wrist
from dexndm_policy import observation
from dexndm_training import metrics, rotations


@dataclass
class TrackingConfig:
    wrist: str = "thumb_up"
    object: str = "normal_cylinder"  # or "none": the free hand
    axis: str = "z"  # a named axis, or an axis set (principal, general, diagonal, all): episode i takes axis i mod K
    episodes: int = 16
    steps: int = 400
    grasp_noise: float = 0.04  # rad
    seed: int = 0
    threads: int = 2


def episode_axes(cfg: TrackingConfig) -> np.ndarray:
    """[episodes, 3] unit axes (palm frame): cfg.axis, or its set's axes round-robin."""
    from dexndm_training.env import AXIS_SETS, resolve_axes

    if cfg.axis in (*AXIS_SETS, "all"):
        _, vectors = resolve_axes([cfg.axis])
    else:
        vectors = parse_axis(cfg.axis)[None]
    return vectors[np.arange(cfg.episodes) % len(vectors)]


def _run(world, cfg: TrackingConfig, q0: np.ndarray, policy, residual) -> dict[str, np.ndarray]:
    from dexndm_description.sim import BatchedHandSim

    n = len(q0)
    scene = "hand_only" if cfg.object in ("", "none") else "grasp"
    wrist, axis = parse_wrist(cfg.wrist), episode_axes(cfg)
    sim = BatchedHandSim(num_envs=n, world=world, scene=scene, wrist=wrist,
                         object=None if scene == "hand_only" else cfg.object, seed=cfg.seed, threads=cfg.threads)
    try:
        sim.reset(q=q0)
        history = observation.ObservationHistory(n)
        base = hand.clip_to_limits(sim.q.copy())
        history.reset(sim.q, base)
        q = np.zeros((n, cfg.steps + 1, hand.NUM_JOINTS))
        executed = np.zeros((n, cfg.steps, hand.NUM_JOINTS))
        residuals = np.zeros((n, cfg.steps, hand.NUM_JOINTS))
        fell = np.full(n, cfg.steps)
        q[:, 0] = sim.q
        quat = np.zeros((n, cfg.steps + 1, 4))
        angvel = np.zeros((n, cfg.steps, 3))
        quat[:, 0] = sim.object_pose[:, 3:]
        for t in range(cfg.steps):
            obs = history.observation(wrist, axis)
            delta = policy({"policy": torch.from_numpy(obs)})
            base = observation.integrate_action(base, np.asarray(delta, dtype=float))
            res = np.zeros_like(base) if residual is None else np.asarray(residual(obs, base.astype(np.float32)), float)
            executed[:, t], residuals[:, t] = sim.set_targets(hand.clip_to_limits(base + res)), res
            sim.step()
            q[:, t + 1] = sim.q
            quat[:, t + 1], angvel[:, t] = sim.object_pose[:, 3:], sim.object_angvel
            fell = np.where((fell == cfg.steps) & sim.object_fallen(), t, fell)
            history.push(sim.q, base)
    finally:
        sim.close()
    out = {"q": q, "executed": executed, "residual": residuals, "fell_at": fell}
    if scene == "grasp":  # the paper's metrics of the object (Rot rad, TTF)
        axis_world = rotations.rotate(np.tile(wrist, (n, 1)), axis)
        per = metrics.episode_metrics(quat, angvel, axis_world, fell, cfg.steps)
        out["rotation"] = {k: v for k, v in metrics.summarize(per).items() if k in ("rot", "ttf", "rotr", "rotp")}
    return out


def tracking_error(policy, cfg: TrackingConfig, residual=None, compare_direct: bool = True) -> dict:
    """{direct, residual}: mean |q_target - q_source| (rad) without / with `residual` (obs, base) -> [N, 16];
    plus per-joint errors and fall steps of each run."""
    runs = ({"direct": None} if compare_direct or residual is None else {}) | (
        {"residual": residual} if residual is not None else {})
    return compare_methods(policy, cfg, runs)


def compare_methods(policy, cfg: TrackingConfig, methods: dict, progress=None) -> dict:
    """One source-world run, then one target-world run per method (name -> residual callable or None), all from
    the same starts; per method the tracking error against the source run and the rotation metrics.
    `progress(name)` is called after each run."""
    start = time.time()
    rng = np.random.default_rng(cfg.seed)
    q0 = hand.clip_to_limits(hand.CANONICAL_POSE + rng.uniform(-cfg.grasp_noise, cfg.grasp_noise,
                                                                 (cfg.episodes, hand.NUM_JOINTS)))
    source = _run("source", cfg, q0, policy, None)
    if progress is not None:
        progress("source")
    out = {"config": asdict(cfg), "source_fell_at": source["fell_at"].tolist(), "source": source.get("rotation", {})}
    for name, res in methods.items():
        target = _run("target", cfg, q0, policy, res)
        err = np.abs(target["q"][:, 1:] - source["q"][:, 1:])
        out[name] = {"track_err": float(err.mean()), "per_joint": err.mean(axis=(0, 1)).tolist(),
                     "per_episode": err.mean(axis=(1, 2)).tolist(), "per_tick": err.mean(axis=(0, 2)).tolist(),
                     "fell_at": target["fell_at"].tolist(),
                     "mean_abs_residual": float(np.abs(target["residual"]).mean()), **target.get("rotation", {})}
        if progress is not None:
            progress(name)
    out["seconds"] = time.time() - start
    return out
