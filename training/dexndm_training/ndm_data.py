"""DexNDM transition data from the batched simulator, in the dataset layout of dataset.py.

Two generators, both writing one dataset directory (the same arrays, dtypes and index keys that
`dexndm-train convert-bags` makes from Chaos Box bags):

- `policy_rollouts`: the base policy closed-loop in the rotation env, in the source world (pretraining
  data, the residual's training data, replay sequences) or in the target world (the out-of-distribution
  test set: the base policy rotating an object). By default a world keeps running all its steps after its
  object fell (`terminate_on_fall=False`), so every episode is a full-length joint trajectory; `success`
  says whether the object stayed in the hand.
- `replay_dataset`: open-loop replay of a `dexndm_collect.sources.ReplaySource` (base-policy target
  sequences of one wrist with N(0, 0.01) noise on half the steps, or base waves) in N worlds of a scene
  (`chaos_box`: the hand among soft balls; `hand_only`: the free hand). Each world runs the collector's
  sequence, as `dexndm_collect.collector.CollectionRun` does on the robot: a linear move from where the
  hand is to the episode's first target over `reset_steps` ticks, `settle_steps` ticks holding it, then
  `steps` recorded transitions; the hand is not reset between episodes. With one world the rows equal
  those of a lockstep Chaos Box collection of the same source and seed, converted from its bag.

`generate_suite` makes every set of DexNDM's data for some wrists in one call.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dexndm_collect.collector import DEFAULTS as COLLECT_DEFAULTS
from dexndm_collect.sources import ReplaySource
from dexndm_description import hand
from dexndm_description.wrist import parse_wrist
from dexndm_training.dataset import Episode, write_dataset

WORLDS = ("source", "target")
REPLAY_SCENES = ("chaos_box", "hand_only")
WAVES = ("sine", "square", "square_noise")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="tick", disable=not enabled, mininterval=1.0)


# ---------------------------------------------------------------------------------------- rollouts
@dataclass
class RolloutConfig:
    """Base-policy rollouts in the rotation env (one episode per world per round)."""

    world: str = "source"  # source | target
    wrists: list[str] = field(default_factory=lambda: ["thumb_up"])
    object: str = "normal_cylinder"
    axes: list[str] = field(default_factory=lambda: ["z"])
    episodes: int = 64
    num_envs: int = 32
    episode_steps: int = 400
    terminate_on_fall: bool = False  # False: full-length joint trajectories; success marks the kept object
    grasp_candidates: int = 128  # poses tried for the env's grasp cache (EnvConfig)
    seed: int = 0
    threads: int = 2


def make_env(cfg: RolloutConfig):
    """The rotation env of `cfg` in its world (the env's own source sim, or a target-world sim)."""
    from dexndm_description.sim import BatchedHandSim
    from dexndm_training.env import EnvConfig, RotationEnv, resolve_wrists

    if cfg.world not in WORLDS:
        raise ValueError(f"unknown world {cfg.world!r}; choose one of {', '.join(WORLDS)}")
    env_cfg = EnvConfig(num_envs=min(cfg.num_envs, cfg.episodes), object=cfg.object, wrists=list(cfg.wrists),
                        axes=list(cfg.axes), episode_steps=cfg.episode_steps, seed=cfg.seed, threads=cfg.threads,
                        terminate_on_fall=cfg.terminate_on_fall, grasp_candidates=cfg.grasp_candidates)
    sim = None
    if cfg.world != "source":
        _, quats = resolve_wrists(env_cfg.wrists, env_cfg.num_envs, np.random.default_rng(env_cfg.seed))
        sim = BatchedHandSim(num_envs=env_cfg.num_envs, world=cfg.world, scene="grasp", wrist=quats,
                             object=cfg.object, seed=cfg.seed, threads=cfg.threads, randomize=env_cfg.randomize)
    return RotationEnv(env_cfg, sim=sim)


def policy_rollouts(cfg: RolloutConfig, policy, out: str | os.PathLike, policy_name: str = "",
                    progress: bool = True) -> tuple[Path, dict]:
    """Roll `policy` (obs TensorDict -> delta) out for cfg.episodes episodes; write them to `out`."""
    from dexndm_training.rollout import rollout

    if cfg.episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {cfg.episodes}")
    start = time.time()
    env = make_env(cfg)
    kept: list[Episode] = []
    rounds = -(-cfg.episodes // env.num_envs)
    bar = _progress(rounds * cfg.episode_steps, f"rollouts {cfg.world}", progress)
    try:
        while len(kept) < cfg.episodes:
            result = rollout(env, policy)
            bar.update(cfg.episode_steps)
            for i in range(env.num_envs):
                length = cfg.episode_steps if not cfg.terminate_on_fall else min(cfg.episode_steps,
                                                                                  int(result.alive[i]) + 1)
                kept.append(Episode(
                    q=result.q[i, :length], target=result.target[i, :length], next_q=result.next_q[i, :length],
                    base_target=result.target[i, :length], wrist=result.wrist[i], axis=result.axis[i],
                    success=bool(result.success[i]), source=f"{cfg.world}:rollout:{policy_name}",
                    wrist_label=result.wrist_labels[i], object_set=cfg.object))
    finally:
        bar.close()
        env.close()
    kept = kept[: cfg.episodes]
    stats = {"episodes": len(kept), "transitions": int(sum(len(e) for e in kept)),
             "success_rate": float(np.mean([e.success for e in kept])), "seconds": time.time() - start}
    path = write_dataset(out, kept, provenance={"generator": "dexndm_training.ndm_data.policy_rollouts",
                                                "policy": policy_name, "config": asdict(cfg), "stats": stats})
    return path, stats


# ---------------------------------------------------------------------------------------- replay
@dataclass
class ReplayConfig:
    """Open-loop replay of a ReplaySource in a scene, the Chaos Box collector's episode sequence."""

    source: str = "sim_rollouts"  # sim_rollouts | sine | square | square_noise | file (dexndm_collect.sources)
    source_path: str = ""  # dataset directory (sim_rollouts) or target file (file)
    scene: str = "chaos_box"  # chaos_box | hand_only
    world: str = "target"
    wrist: str = "thumb_up"  # wrist name; the Chaos Box refuses palm_up
    episodes: int = 64
    num_envs: int = 32
    steps: int = int(COLLECT_DEFAULTS["steps"])  # control steps per episode, as `dexndm collect`
    noise_sigma: float = float(COLLECT_DEFAULTS["noise_sigma"])  # rad, Gaussian noise on the replayed targets
    noise_probability: float = float(COLLECT_DEFAULTS["noise_probability"])  # per step
    reset_steps: int = int(COLLECT_DEFAULTS["reset_steps"])
    settle_steps: int = int(COLLECT_DEFAULTS["settle_steps"])
    initial_pose: str = "canonical"  # the hand driver's initial_pose: canonical | open
    seed: int = 0  # of the replay source and of the simulated worlds, as in `dexndm collect`
    threads: int = 2

    def replay_source(self) -> ReplaySource:
        """The collector's source for these settings (SourceError says what is wrong)."""
        return ReplaySource(self.source, steps=self.steps, seed=self.seed, noise_sigma=self.noise_sigma,
                            noise_probability=self.noise_probability, path=self.source_path,
                            wrist=self.wrist if self.source == "sim_rollouts" else "")


INITIAL_POSES = {"canonical": hand.CANONICAL_POSE, "open": hand.OPEN_POSE}


def replay_dataset(cfg: ReplayConfig, out: str | os.PathLike, progress: bool = True) -> tuple[Path, dict]:
    """Replay cfg.episodes episodes of the source in cfg.num_envs worlds of cfg.scene; write them to `out`.

    World i runs episodes i, i + N, i + 2N, ... back to back (no reset between them, as on the robot)."""
    from dexndm_description.sim import BatchedHandSim

    if cfg.scene not in REPLAY_SCENES:
        raise ValueError(f"replay scene must be one of {', '.join(REPLAY_SCENES)}, got {cfg.scene!r}")
    if cfg.world not in WORLDS:
        raise ValueError(f"unknown world {cfg.world!r}; choose one of {', '.join(WORLDS)}")
    if cfg.episodes < 1 or cfg.steps < 1:
        raise ValueError(f"episodes and steps must be >= 1, got {cfg.episodes} and {cfg.steps}")
    if cfg.initial_pose not in INITIAL_POSES:
        raise ValueError(f"initial_pose must be one of {', '.join(INITIAL_POSES)}, got {cfg.initial_pose!r}")
    source = cfg.replay_source()
    wrist = parse_wrist(cfg.wrist)
    n = min(cfg.num_envs, cfg.episodes)
    start = time.time()
    sim = BatchedHandSim(num_envs=n, world=cfg.world, scene=cfg.scene, wrist=wrist, object=None, seed=cfg.seed,
                         threads=cfg.threads)
    kept: list[Episode] = []
    rounds = -(-cfg.episodes // n)
    per_episode = cfg.reset_steps + cfg.settle_steps + cfg.steps
    bar = _progress(rounds * per_episode, f"replay {cfg.scene} {cfg.wrist}", progress)
    try:
        sim.reset(q=INITIAL_POSES[cfg.initial_pose])
        for r in range(rounds):
            ids = np.arange(r * n, r * n + n)
            targets = np.stack([source.episode(int(k)) for k in ids])  # [n, steps, 16]
            _move_to(sim, targets[:, 0], max(1, cfg.reset_steps), max(0, cfg.settle_steps), bar)
            q = np.zeros((n, cfg.steps, hand.NUM_JOINTS))
            sent, next_q = np.zeros_like(q), np.zeros_like(q)
            for t in range(cfg.steps):
                q[:, t] = sim.q
                sent[:, t] = sim.set_targets(targets[:, t])
                sim.step()
                next_q[:, t] = sim.q
                bar.update(1)
            for j, k in enumerate(ids):
                if k < cfg.episodes:
                    kept.append(Episode(q=q[j], target=sent[j], next_q=next_q[j], wrist=wrist, axis=np.zeros(3),
                                        success=True, source=f"{cfg.scene}:{cfg.source}", wrist_label=cfg.wrist))
    finally:
        bar.close()
        sim.close()
    stats = {"episodes": len(kept), "transitions": int(sum(len(e) for e in kept)), "seconds": time.time() - start}
    path = write_dataset(out, kept, provenance={"generator": "dexndm_training.ndm_data.replay_dataset",
                                                "config": asdict(cfg), "stats": stats})
    return path, stats


def _move_to(sim, first: np.ndarray, reset_steps: int, settle_steps: int, bar) -> None:
    """The collector's reset phase: linear from the measured pose to `first` [n, 16], then hold it."""
    origin = sim.q.copy()
    for k in range(reset_steps + settle_steps):
        alpha = min(1.0, (k + 1) / reset_steps)
        sim.set_targets((1.0 - alpha) * origin + alpha * first)
        sim.step()
        bar.update(1)


# ---------------------------------------------------------------------------------------- suite
@dataclass
class SuiteConfig:
    """Every DexNDM data set for some wrists (directory names in `suite_paths`)."""

    wrists: list[str] = field(default_factory=lambda: ["thumb_up"])
    object: str = "normal_cylinder"
    axes: list[str] = field(default_factory=lambda: ["z"])
    rollout_episodes: int = 64  # source-world base-policy rollouts, per wrist
    chaos_box_episodes: int = 64  # per wrist
    free_hand_episodes: int = 32  # per wrist
    wave_episodes: int = 16  # per wave kind and wrist (free hand)
    ood_episodes: int = 32  # the base policy in the target world
    ood_wrist: str = "thumb_up"
    steps: int = 400
    grasp_candidates: int = 128
    num_envs: int = 32
    seed: int = 0
    threads: int = 2


def suite_paths(root: str | os.PathLike, cfg: SuiteConfig) -> dict[str, Path]:
    """name -> dataset directory of every set `generate_suite` writes under `root`."""
    root = Path(root)
    paths = {"source_rollouts": root / "source_rollouts", "ood": root / f"ood_target_{cfg.ood_wrist}"}
    for w in cfg.wrists:
        paths[f"chaos_box_{w}"] = root / f"chaos_box_{w}"
        paths[f"free_hand_{w}"] = root / f"free_hand_{w}"
        for kind in WAVES:
            paths[f"{kind}_{w}"] = root / f"waves_{kind}_{w}"
    return paths


def generate_suite(cfg: SuiteConfig, root: str | os.PathLike, policy, policy_name: str = "",
                   progress: bool = True) -> dict[str, dict]:
    """Write every set under `root`; sets already there are kept (rerun to finish an interrupted suite)."""
    paths = suite_paths(root, cfg)
    Path(root).mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}

    def make(name: str, fn) -> None:
        if paths[name].exists():
            done[name] = {"kept": True}
            return
        _, stats = fn(paths[name])
        done[name] = stats

    base = dict(object=cfg.object, axes=list(cfg.axes), episode_steps=cfg.steps, num_envs=cfg.num_envs,
                grasp_candidates=cfg.grasp_candidates, seed=cfg.seed, threads=cfg.threads)
    make("source_rollouts", lambda out: policy_rollouts(
        RolloutConfig(world="source", wrists=list(cfg.wrists), episodes=cfg.rollout_episodes * len(cfg.wrists),
                      **base), policy, out, policy_name, progress))
    make("ood", lambda out: policy_rollouts(
        RolloutConfig(world="target", wrists=[cfg.ood_wrist], episodes=cfg.ood_episodes,
                      **{**base, "seed": cfg.seed + 1}), policy, out, policy_name, progress))
    replay = dict(world="target", steps=cfg.steps, num_envs=cfg.num_envs, seed=cfg.seed, threads=cfg.threads)
    rollouts = str(paths["source_rollouts"])
    for w in cfg.wrists:
        make(f"chaos_box_{w}", lambda out, w=w: replay_dataset(ReplayConfig(
            source="sim_rollouts", source_path=rollouts, scene="chaos_box", wrist=w, episodes=cfg.chaos_box_episodes,
            **replay), out, progress))
        make(f"free_hand_{w}", lambda out, w=w: replay_dataset(ReplayConfig(
            source="sim_rollouts", source_path=rollouts, scene="hand_only", wrist=w, episodes=cfg.free_hand_episodes,
            **replay), out, progress))
        for kind in WAVES:
            make(f"{kind}_{w}", lambda out, w=w, kind=kind: replay_dataset(ReplayConfig(
                source=kind, scene="hand_only", wrist=w, episodes=cfg.wave_episodes, noise_probability=0.0,
                **replay), out, progress))
    return {name: {"path": str(paths[name]), **stats} for name, stats in done.items()}
