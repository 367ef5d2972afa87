"""A periodic finger gait found by search: the specialist's prior where PPO alone is too slow.

PPO from scratch did not find rotation on this machine's budget (docs/TRAINING.md: 9.6 M steps, Rot ~0). An
open-loop gait is a much smaller search: every joint follows

    a_t = clip(q_0 + r(t) (offset + amplitude sin(2 pi f t dt + phase) + amplitude2 sin(4 pi f t dt + phase2)),
              limits),   r(t) = min(1, t / ramp)

around the episode's grasp pose q_0: 16 x 3 + 1 = 49 numbers with one harmonic, 81 with the second (a stroke
that pushes and returns along different paths). The cross-entropy method (CEM) scores each
candidate gait by the rotation about the axis it earns in the rotation env (full randomization, disturbance
forces) minus a penalty per fall, and keeps the elite. The gait runs through the env's own action path: it
asks for delta = clip(24 (a_t - a_{t-1}), -1, 1), so it obeys the generalist's rate limit, and its
rollouts are ordinary successful episodes for `collect` and behaviour cloning.

`search` checkpoints the CEM state every generation (resume with the same --out) and writes `gait.json`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from dexndm_description import hand
from dexndm_training.env import EnvConfig, RotationEnv, delta_toward

log = logging.getLogger(__name__)

NUM_JOINTS = hand.NUM_JOINTS
#: Layout of a parameter vector: amplitude [16] rad, phase [16] rad, offset [16] rad, frequency Hz, then for the
#: second harmonic amplitude2 [16] rad and phase2 [16] rad.
PARAMETERS = 3 * NUM_JOINTS + 1  # one harmonic
PARAMETERS_2 = PARAMETERS + 2 * NUM_JOINTS  # two harmonics
FREQUENCY_RANGE = (0.2, 2.5)  # Hz
RAMP_STEPS = 20  # control steps over which a gait eases in from the grasp pose


@dataclass
class Gait:
    """One periodic gait around the grasp pose (see the module doc)."""

    amplitude: list[float]
    phase: list[float]
    offset: list[float]
    frequency: float
    ramp_steps: int = RAMP_STEPS
    amplitude2: list[float] = field(default_factory=lambda: [0.0] * NUM_JOINTS)
    phase2: list[float] = field(default_factory=lambda: [0.0] * NUM_JOINTS)

    @classmethod
    def from_vector(cls, v: np.ndarray, ramp_steps: int = RAMP_STEPS) -> "Gait":
        v = np.asarray(v, dtype=float)
        if v.shape not in ((PARAMETERS,), (PARAMETERS_2,)) or not np.all(np.isfinite(v)):
            raise ValueError(f"a gait vector has {PARAMETERS} or {PARAMETERS_2} finite numbers, got shape {v.shape}")
        j = NUM_JOINTS
        v = np.concatenate([v, np.zeros(PARAMETERS_2 - len(v))])
        return cls(v[:j].tolist(), v[j:2 * j].tolist(), v[2 * j:3 * j].tolist(),
                   float(np.clip(v[3 * j], *FREQUENCY_RANGE)), ramp_steps, v[PARAMETERS:PARAMETERS + j].tolist(),
                   v[PARAMETERS + j:].tolist())

    @property
    def harmonics(self) -> int:
        return 2 if np.any(np.asarray(self.amplitude2) != 0.0) else 1

    def vector(self, harmonics: int | None = None) -> np.ndarray:
        """The parameter vector with one harmonic (49 numbers) or two (81); by default as many as the gait uses."""
        one = np.concatenate([self.amplitude, self.phase, self.offset, [self.frequency]])
        return one if (harmonics or self.harmonics) == 1 else np.concatenate([one, self.amplitude2, self.phase2])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Gait":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"gait file {path} not found: run `dexndm-train gait --out DIR` first")
        data = json.loads(path.read_text())
        gait = data.get("gait", data)
        for key in ("amplitude", "phase", "offset") + tuple(k for k in ("amplitude2", "phase2") if k in gait):
            if len(gait.get(key, [])) != NUM_JOINTS:
                raise ValueError(f"{path}: gait.{key} must hold {NUM_JOINTS} numbers")
        keys = ("amplitude", "phase", "offset", "frequency", "ramp_steps", "amplitude2", "phase2")
        return cls(**{k: gait[k] for k in keys if k in gait})


def gait_targets(params: np.ndarray, base: np.ndarray, step: np.ndarray, dt: float, ramp_steps: int) -> np.ndarray:
    """a_t [N, 16] of gait vectors params [N, 49 or 81] around grasp poses base [N, 16] at episode steps step [N]."""
    j = NUM_JOINTS
    amp, phase, offset = params[:, :j], params[:, j:2 * j], params[:, 2 * j:3 * j]
    freq = np.clip(params[:, 3 * j], *FREQUENCY_RANGE)[:, None]
    t = np.asarray(step, dtype=float)[:, None]
    ramp = np.minimum(1.0, t / max(ramp_steps, 1))
    angle = 2 * np.pi * freq * t * dt
    wave = offset + amp * np.sin(angle + phase)
    if params.shape[1] == PARAMETERS_2:
        wave = wave + params[:, PARAMETERS:PARAMETERS + j] * np.sin(2 * angle + params[:, PARAMETERS + j:])
    return hand.clip_to_limits(base + ramp * wave)


def gait_delta(params: np.ndarray, base: np.ndarray, step: np.ndarray, previous_target: np.ndarray, dt: float,
               ramp_steps: int) -> np.ndarray:
    """The contract's delta [N, 16] (clipped to +-1) that moves the base targets toward the gait's a_t."""
    params = np.broadcast_to(params, (len(base), params.shape[-1]))
    return delta_toward(gait_targets(params, base, step, dt, ramp_steps), previous_target)


def gait_file(spec: str | os.PathLike) -> Path | None:
    """The gait file a policy spec names (a gait.json, or a directory holding one), or None if it names none."""
    path = Path(spec)
    if path.suffix == ".json":
        return path
    return path / "gait.json" if (path / "gait.json").is_file() else None


class GaitPolicy:
    """A gait (or one gait vector per world) as a policy callable for `rollout`/`collect`/`evaluate`.

    It needs the env's episode clock and grasp poses: rollout() calls bind(env) after resetting. The gait plays
    around `centre(obs, fresh)`, each world's grasp pose here (a subclass may move it: ppo.GaitResidualActor)."""

    def __init__(self, gait: Gait | np.ndarray, ramp_steps: int | None = None):
        if isinstance(gait, Gait):
            self.params = gait.vector()[None]
            self.ramp_steps = gait.ramp_steps if ramp_steps is None else ramp_steps
        else:
            self.params = np.atleast_2d(np.asarray(gait, dtype=float))
            self.ramp_steps = RAMP_STEPS if ramp_steps is None else ramp_steps
        self.env: RotationEnv | None = None
        self.base: np.ndarray | None = None

    def bind(self, env: RotationEnv) -> None:
        if len(self.params) not in (1, env.num_envs):
            raise ValueError(f"{len(self.params)} gait vectors for {env.num_envs} worlds")
        self.env = env
        self.base = env.previous_target.copy()

    def __call__(self, obs) -> torch.Tensor:
        env = self.env
        if env is None:
            raise RuntimeError("GaitPolicy.bind(env) first (rollout() does it)")
        step = env.episode_length_buf.numpy()
        fresh = step == 0  # a new episode started: its grasp pose is a_{-1}
        self.base[fresh] = env.previous_target[fresh]
        delta = gait_delta(self.params, self.centre(obs, fresh), step, env.previous_target, env.dt, self.ramp_steps)
        return torch.as_tensor(delta, dtype=torch.float32)

    def centre(self, obs, fresh: np.ndarray) -> np.ndarray:
        """The pose [N, 16] each world's gait plays around this step (fresh: worlds whose episode just began)."""
        return self.base


@dataclass
class SearchConfig:
    """Settings of the cross-entropy search."""

    population: int = 32  # candidate gaits per generation
    worlds_per_candidate: int = 4
    generations: int = 100
    steps: int = 200  # control steps each candidate is scored over
    elite_fraction: float = 0.25
    smoothing: float = 0.3  # weight of the previous mean/std in the update
    fall_penalty: float = 3.0  # rad of rotation a fall costs in the score
    init_amplitude: float = 0.4  # rad, initial std of amplitudes
    init_offset: float = 0.3  # rad, initial std of offsets
    init_frequency: float = 1.0  # Hz, initial mean
    min_std: float = 0.005
    ramp_steps: int = RAMP_STEPS
    harmonics: int = 1  # 1 (49 numbers) or 2 (81: a second harmonic per joint)
    #: Object sets the gait is scored on together (each its own worlds, the scores averaged); empty: the env's object.
    objects: list[str] = field(default_factory=list)
    off_axis_penalty: float = 0.0  # score lost per rad turned off the axis (tumbling is not rotation)
    #: Rotation counts from this step on (falls count from the start): a fresh grasp gives a first push of
    #: ~0.6 rad in 2.5 s that an open-loop gait need not repeat; scoring after it asks for steady turning.
    score_from: int = 0
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def score_gaits(env: RotationEnv, params: np.ndarray, worlds_per_candidate: int, steps: int, ramp_steps: int,
                score_from: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation about the axis (rad, while alive, from step `score_from` on), fall fraction and off-axis
    rotation of each candidate [P, 49], each run on worlds_per_candidate fresh episodes."""
    n = env.num_envs
    policy = GaitPolicy(np.repeat(params, worlds_per_candidate, axis=0), ramp_steps)
    obs = env.reset()
    policy.bind(env)
    alive = np.ones(n, dtype=bool)
    rot, fell, off_axis = np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(steps):
        obs, _, done, _ = env.step(policy(obs))
        w = env.last_step["angvel"]
        along = np.sum(w * env.axis_world, axis=1)
        counted = alive & (t >= score_from)
        rot += counted * along * env.dt
        off_axis += counted * np.linalg.norm(w - along[:, None] * env.axis_world, axis=1) * env.dt
        fell += alive * env.last_step["fallen"]
        alive &= ~done.numpy()
    shape = (len(params), worlds_per_candidate)
    return rot.reshape(shape).mean(1), fell.reshape(shape).mean(1), off_axis.reshape(shape).mean(1)


def search(cfg: SearchConfig, out: str | os.PathLike, init: Gait | None = None, progress: bool = True) -> dict:
    """CEM over gait vectors; resumes from out/cem_state.npz; writes out/gait.json (the final mean) and
    out/history.json (per generation). Returns the gait.json contents."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "cem_state.npz"
    if cfg.harmonics not in (1, 2):
        raise ValueError(f"harmonics must be 1 or 2, got {cfg.harmonics}")
    if not 0 <= cfg.score_from < cfg.steps:
        raise ValueError(f"score_from must be in [0, steps = {cfg.steps}), got {cfg.score_from}")
    dims = PARAMETERS if cfg.harmonics == 1 else PARAMETERS_2
    env_cfg = replace(cfg.env, num_envs=cfg.population * cfg.worlds_per_candidate)
    j = NUM_JOINTS
    if state_path.exists():
        state = np.load(state_path)
        mean, std, start = state["mean"], state["std"], int(state["generation"])
        if mean.shape != (dims,):
            raise ValueError(f"{state_path} holds a {mean.size}-number search, not {cfg.harmonics} harmonic(s); "
                             "use another --out or the same --harmonics")
        rng = np.random.default_rng([cfg.seed, start])
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
        log.info("resuming the gait search at generation %d from %s", start, state_path)
    else:
        mean = np.zeros(dims)
        mean[3 * j] = cfg.init_frequency
        std = np.concatenate([np.full(j, cfg.init_amplitude), np.full(j, np.pi / 2), np.full(j, cfg.init_offset),
                              [0.3], np.full(j, cfg.init_amplitude / 2), np.full(j, np.pi / 2)])[:dims]
        if init is not None:
            mean = init.vector(cfg.harmonics)
            std = std * 0.5
        start, history = 0, []
        rng = np.random.default_rng([cfg.seed, 0])
    envs = [RotationEnv(replace(env_cfg, object=name)) for name in (cfg.objects or [env_cfg.object])]
    began = time.time()
    elite_count = max(2, int(round(cfg.population * cfg.elite_fraction)))
    try:
        for gen in range(start, cfg.generations):
            t0 = time.time()
            pop = mean + std * rng.normal(size=(cfg.population, dims))
            pop[0] = mean  # the current mean is always scored: the history shows its progress
            rot, fell, off = np.mean([score_gaits(env, pop, cfg.worlds_per_candidate, cfg.steps, cfg.ramp_steps,
                                                  cfg.score_from)
                                      for env in envs], axis=0)
            score = rot - cfg.fall_penalty * fell - cfg.off_axis_penalty * off
            elite = pop[np.argsort(-score)[:elite_count]]
            mean = cfg.smoothing * mean + (1 - cfg.smoothing) * elite.mean(0)
            std = cfg.smoothing * std + (1 - cfg.smoothing) * elite.std(0) + cfg.min_std
            row = {"generation": gen, "mean_rot": float(rot[0]), "mean_fell": float(fell[0]), "mean_off_axis": float(off[0]),
                   "best_rot": float(rot[np.argmax(score)]), "population_rot": float(np.mean(rot)),
                   "population_fell": float(np.mean(fell)), "frequency": float(mean[3 * j]),
                   "seconds": time.time() - t0}
            history.append(row)
            np.savez(state_path.with_suffix(".tmp.npz"), mean=mean, std=std, generation=gen + 1)
            os.replace(state_path.with_suffix(".tmp.npz"), state_path)
            (out / "history.json").write_text(json.dumps(history))
            _write_gait(out, mean, cfg, history)  # every generation: a crash keeps the latest
            if progress:
                left = (cfg.generations - gen - 1) * (time.time() - began) / (gen - start + 1)
                print(f"gait gen {gen + 1}/{cfg.generations}: mean gait rot {rot[0]:+.3f} rad, fell {fell[0]:.2f}; "
                      f"best rot {row['best_rot']:+.3f}; population rot {row['population_rot']:+.3f}, fell "
                      f"{row['population_fell']:.2f}; f {mean[3 * j]:.2f} Hz; {row['seconds']:.1f} s, ETA {left:.0f} s",
                      flush=True)
    finally:
        for env in envs:
            env.close()
    return _write_gait(out, mean, cfg, history)


def _write_gait(out: Path, mean: np.ndarray, cfg: SearchConfig, history: list[dict]) -> dict:
    result = {"gait": asdict(Gait.from_vector(mean, cfg.ramp_steps)), "search": cfg.to_dict(),
              "generations": len(history), "final": history[-1] if history else None}
    tmp = out / "gait.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out / "gait.json")
    return result
