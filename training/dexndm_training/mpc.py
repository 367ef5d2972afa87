"""A sampling MPC teacher: predictive sampling over `mujoco.rollout` on the privileged simulator state.

At every control tick, for every world of a RotationEnv, the teacher perturbs its nominal plan (a spline of
H future deltas per joint, knots every `knot_every` ticks) into K candidate plans, rolls each out from the
world's exact MuJoCo state with the world's own (randomized) model, scores them, keeps the best and sends
its first delta through the env's own action path (delta clipped to [-1, 1], a_t = a_{t-1} + delta / 24).
Like the paper's specialists it is a privileged oracle: it sees the object, the physics parameters and
the state; the generalist is then cloned from its successful rollouts on the proprioceptive contract.

The score of a candidate over its horizon (all per control tick, world frame):
    + clip(dtheta . k, -turn_clip, turn_clip)           rotation about the axis (rad)
    - w_tilt  max(0, tilt - tilt_free)                  the object's axis drifting from its start (rad)
    - w_spin  |dtheta x k|                              off-axis turning (rad), what RotP measures
    - w_drift max(0, |p - spot| - drift_free)           the object leaving the grasp spot (m)
    - w_fall  [|p - spot| > fall_distance]              dropped (once per tick below the threshold)
tilt is the swing angle of the object's orientation relative to its orientation at the episode start,
about the axis (swing-twist decomposition), so turning about the axis is free and tipping is not.

The source world's actuators are MuJoCo position actuators (ctrl = target, PD inside the physics), so a
candidate is a plain control sequence and the whole batch runs in C, on both cores, without Python
between physics steps. Worlds with servo (target) physics are refused: their law runs in Python.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from dexndm_description import hand
from dexndm_training import rotations


@dataclass
class MPCConfig:
    """Settings of the predictive-sampling teacher."""

    samples: int = 24  # candidate plans per world per tick (the nominal plan is one of them)
    horizon: int = 24  # control ticks planned ahead (1.2 s: a finger has to reach back before it pushes again)
    knot_every: int = 6  # ticks between spline knots of a plan
    sigma: float = 0.8  # noise on the knots (delta units; deltas are clipped to [-1, 1])
    #: the first knot's noise as a fraction of sigma. Below 1 the executed delta changes little from tick to
    #: tick (the first knot is the plan's present), so the teacher's labels are smoother to clone.
    first_knot_noise: float = 1.0
    turn_clip: float = 0.2  # rad per tick counted at most (4 rad/s): no reward for flinging
    tilt_free: float = 0.25  # rad of tilt that costs nothing
    w_tilt: float = 0.1
    w_spin: float = 0.2
    drift_free: float = 0.02  # m
    w_drift: float = 2.0
    fall_distance: float = 0.07  # m from the grasp spot counted as lost while planning
    w_fall: float = 2.0
    #: 0: keep the best candidate (predictive sampling). > 0: the new plan is the softmax(score / (T std))
    #: weighted mean of the candidates (MPPI), smoother deltas that a student can imitate more easily.
    temperature: float = 0.0
    threads: int = 2
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _swing_angle(quat: np.ndarray, start: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Tilt (rad) of orientations quat [..., 4] relative to start [..., 4]: the swing part of q start^-1
    about the world axis [..., 3] (the twist about the axis is removed)."""
    rel = rotations.multiply(quat, rotations.conjugate(start))
    v, w = rel[..., :3], rel[..., 3]
    proj = np.sum(v * axis, axis=-1)
    twist_norm = np.sqrt(proj**2 + w**2)
    # |swing| angle = 2 acos(|twist| / |rel|) with |rel| = 1
    return 2.0 * np.arccos(np.clip(twist_norm, 0.0, 1.0))


def mppi_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """[N, K] weights summing to 1 per row: softmax of scores / (temperature x the row's score spread)."""
    spread = np.maximum(scores.std(axis=1, keepdims=True), 1e-9)
    z = (scores - scores.max(axis=1, keepdims=True)) / (temperature * spread)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


class PredictiveSampler:
    """The teacher for one RotationEnv (source world): `act()` returns the delta [N, 16] for this tick."""

    def __init__(self, env, cfg: MPCConfig = MPCConfig()):
        if env.sim.config.actuation != "pd_torque":
            raise ValueError("the MPC teacher plans with mujoco.rollout and needs the source world (pd_torque "
                             f"actuation); this env runs {env.sim.config.actuation!r}")
        if cfg.horizon < 1 or cfg.samples < 2 or cfg.knot_every < 1:
            raise ValueError("MPC needs horizon >= 1, samples >= 2 and knot_every >= 1")
        self.env, self.cfg = env, cfg
        self.rng = np.random.default_rng(cfg.seed)
        n = env.num_envs
        self.knots = int(np.ceil(cfg.horizon / cfg.knot_every)) + 1
        self.plan = np.zeros((n, self.knots, hand.NUM_JOINTS))  # knots of each world's nominal plan
        sim = env.sim
        self._substeps = sim.config.substeps
        self._scratch = [mujoco.MjData(sim.models[0]) for _ in range(max(1, cfg.threads))]
        self._qadr = sim._obj_qadr  # object free joint: position, then quaternion w x y z
        self._start_quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        self._pool = mj_rollout.Rollout(nthread=max(1, cfg.threads)) if cfg.threads > 1 else None
        # linear interpolation from knots to ticks: [H, knots]
        t = np.arange(cfg.horizon) / cfg.knot_every
        lo = np.minimum(np.floor(t).astype(int), self.knots - 2)
        frac = t - lo
        self._interp = np.zeros((cfg.horizon, self.knots))
        self._interp[np.arange(cfg.horizon), lo] = 1.0 - frac
        self._interp[np.arange(cfg.horizon), lo + 1] = frac

    def reset(self, ids=None) -> None:
        """Forget the plans of worlds ids (all by default) and take their object orientation as the start."""
        ids = np.arange(self.env.num_envs) if ids is None else np.asarray(ids)
        self.plan[ids] = 0.0
        self._start_quat[ids] = self.env.sim.object_pose[ids, 3:]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------------------------------- planning
    def _candidates(self) -> np.ndarray:
        """[N, K, knots, 16]: the nominal plan (index 0), shifted plans and noisy perturbations."""
        cfg = self.cfg
        n, k = self.env.num_envs, cfg.samples
        noise = self.rng.normal(0.0, cfg.sigma, size=(n, k, self.knots, hand.NUM_JOINTS))
        noise[:, :, 0] *= cfg.first_knot_noise
        noise[:, 0] = 0.0
        return np.clip(self.plan[:, None] + noise, -1.0, 1.0)

    def _targets(self, knots: np.ndarray) -> np.ndarray:
        """Targets [N, K, H, 16] reached by integrating the plans' deltas from the current base target."""
        deltas = np.clip(np.einsum("hk,nskj->nshj", self._interp, knots), -1.0, 1.0)
        target = np.broadcast_to(self.env.previous_target[:, None, :], deltas.shape[:2] + (hand.NUM_JOINTS,)).copy()
        out = np.empty_like(deltas)
        for h in range(deltas.shape[2]):
            target = hand.clip_to_limits(target + deltas[:, :, h] * hand.ACTION_SCALE)
            out[:, :, h] = target
        return out

    def _simulate(self, targets: np.ndarray) -> np.ndarray:
        """Object poses after each tick [N, K, H, 7] (position, quaternion x y z w) for candidate targets."""
        sim = self.env.sim
        n, k, h, _ = targets.shape
        state = sim.physics_state()
        models = [sim.models[i] for i in range(n) for _ in range(k)]
        initial = np.repeat(state, k, axis=0)
        control = np.repeat(targets.reshape(n * k, h, hand.NUM_JOINTS), self._substeps, axis=1)
        nstep = h * self._substeps
        if self._pool is not None:
            states, _ = self._pool.rollout(models, self._scratch, initial, control, nstep=nstep)
        else:
            states, _ = mj_rollout.rollout(models, self._scratch[0], initial, control, nstep=nstep)
        ticks = states[:, self._substeps - 1 :: self._substeps]  # [n k, H, nstate]
        a = 1 + self._qadr  # the state starts with time
        pos = ticks[..., a : a + 3]
        quat = ticks[..., [a + 4, a + 5, a + 6, a + 3]]
        return np.concatenate([pos, quat], axis=-1).reshape(n, k, h, 7)

    def score(self, poses: np.ndarray) -> np.ndarray:
        """Score [N, K] of candidate trajectories poses [N, K, H, 7] (see the module doc)."""
        cfg, env = self.cfg, self.env
        n, k, h, _ = poses.shape
        axis = env.axis_world[:, None, None, :]
        now = env.sim.object_pose[:, None, None, 3:]
        quat = np.concatenate([np.broadcast_to(now, (n, k, 1, 4)), poses[..., 3:]], axis=2)
        step = rotations.to_rotvec(rotations.multiply(quat[:, :, 1:], rotations.conjugate(quat[:, :, :-1])))
        about = np.sum(step * axis, axis=-1)
        off = np.linalg.norm(rotations.cross(step, np.broadcast_to(axis, step.shape)), axis=-1)
        tilt = _swing_angle(poses[..., 3:], self._start_quat[:, None, None, :], axis)
        dist = np.linalg.norm(poses[..., :3] - env.sim.grasp_spot[:, None, None, :], axis=-1)
        per_tick = (np.clip(about, -cfg.turn_clip, cfg.turn_clip) - cfg.w_tilt * np.maximum(0.0, tilt - cfg.tilt_free)
                    - cfg.w_spin * off - cfg.w_drift * np.maximum(0.0, dist - cfg.drift_free)
                    - cfg.w_fall * (dist > cfg.fall_distance))
        return per_tick.sum(axis=-1)

    def __call__(self, obs=None):
        """The policy-callable form (dexndm_training.rollout): worlds whose episode just began get a fresh
        plan; returns the delta as a float32 tensor [N, 16]."""
        import torch

        fresh = np.flatnonzero(self.env.episode_length_buf.numpy() == 0)
        if len(fresh):
            self.reset(fresh)
        return torch.from_numpy(self.act().astype(np.float32))

    def act(self) -> np.ndarray:
        """The delta [N, 16] in [-1, 1] to send this tick; the nominal plans move on by one tick."""
        cfg = self.cfg
        knots = self._candidates()
        targets = self._targets(knots)
        scores = self.score(self._simulate(targets))
        n = self.env.num_envs
        best = np.argmax(scores, axis=1)
        self.last_scores = scores[np.arange(n), best]
        if cfg.temperature > 0:
            chosen = np.einsum("nk,nkij->nij", mppi_weights(scores, cfg.temperature), knots)
        else:
            chosen = knots[np.arange(n), best]  # [N, knots, 16]
        delta = np.clip(self._interp[0] @ chosen, -1.0, 1.0)  # the first tick's delta, [N, 16]
        # shift the chosen plan by one tick: re-sample the spline at t + 1 (knots interpolated, last one held)
        t = (np.arange(self.knots) * cfg.knot_every + 1) / cfg.knot_every
        lo = np.minimum(np.floor(t).astype(int), self.knots - 2)
        frac = np.minimum(t - lo, 1.0)[None, :, None]
        self.plan = (1 - frac) * chosen[:, lo] + frac * chosen[:, lo + 1]
        return delta


# ----------------------------------------------------------------------------------------------- collection
def _episode_metrics(result) -> dict[str, np.ndarray]:
    """Per-episode metrics (Rot, TTF, RotP, ...) of a Rollout, counted over its alive steps (dexndm_training.metrics)."""
    from dexndm_training import metrics

    per = metrics.episode_metrics(result.object_quat, result.angvel, result.axis_world, result.alive,
                                  result.q.shape[1])
    return per


class DaggerMix:
    """DAgger's executed policy: per world and tick the teacher's delta with probability beta, else the
    student's. The teacher plans at every tick either way, and its delta is kept as the label of the state
    (`labels`, one [N, 16] array per tick), so the student learns what the teacher would do where the
    student actually goes."""

    def __init__(self, teacher, student, beta: float, seed: int = 0):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.teacher, self.student, self.beta = teacher, student, beta
        self.rng = np.random.default_rng(seed)
        self.labels: list[np.ndarray] = []

    def __call__(self, obs):
        import torch

        label = self.teacher(obs)
        self.labels.append(label.numpy().copy())
        if self.student is None or self.beta >= 1.0:
            return label
        own = self.student(obs).float()
        use_teacher = torch.from_numpy(self.rng.random(len(label)) < self.beta)[:, None]
        return torch.where(use_teacher, label, torch.clamp(own, -1.0, 1.0))

    def bind(self, env) -> None:
        """Pass the env's episode clock on to a teacher or student that reads it (a gait-based actor)."""
        for policy in (self.teacher, self.student):
            if hasattr(policy, "bind"):
                policy.bind(env)


def load_student(path):
    """A student policy callable from a generalist .onnx or a BC checkpoint (generalist.pt)."""
    from pathlib import Path

    from dexndm_training.rollout import OnnxPolicy, TorchPolicy

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"student {path} not found; train one with dexndm-train bc (generalist.pt) "
                                "or export it (generalist.onnx)")
    if path.suffix == ".onnx":
        return OnnxPolicy(path)
    from dexndm_training.bc import load_generalist

    return TorchPolicy(load_generalist(path))


def _labelled_episodes(result, labels: np.ndarray, object_set: str, min_length: int) -> list:
    """DAgger episodes: every world's steps up to its fall (or the end), with the teacher's labels."""
    from dexndm_training.dataset import Episode

    out = []
    for i in range(len(result.alive)):
        n = int(min(result.alive[i], result.q.shape[1]))
        if n < min_length:
            continue
        out.append(Episode(q=result.q[i, :n], target=result.target[i, :n], next_q=result.next_q[i, :n],
                           wrist=result.wrist[i], axis=result.axis[i], base_target=result.target[i, :n],
                           label=labels[i, :n], success=bool(result.success[i]), source="dagger",
                           wrist_label=result.wrist_labels[i], object_set=object_set))
    return out


def resume_config(out, config: dict, defaults: dict[str, dict]) -> None:
    """Write out/config.json for a new run, or refuse one whose saved config differs from `config` in the
    sections named by `defaults` (settings added since the run began take those defaults). The env's reward
    weights are not compared: labels, shards and curves do not depend on them, and a changed default must
    not lock a run out."""
    import json
    from pathlib import Path

    path = Path(out) / "config.json"
    if not path.exists():
        path.write_text(json.dumps(config, indent=1))
        return
    saved = json.loads(path.read_text())

    def plain(d: dict) -> dict:  # tuples as lists, as saved; without the reward weights
        d = json.loads(json.dumps(d))
        d.pop("reward", None)
        return d

    if any(plain({**defaults[k], **saved.get(k, {})}) != plain(config[k]) for k in defaults):
        raise ValueError(f"{out} holds a run with another config ({path}); resume with the same settings or "
                         "choose a new --out")


class NetworkTeacher:
    """A trained specialist as the labelling teacher, in place of the sampling planner: a `dexndm-train ppo` run
    (privileged or not; its deterministic actor read through the contract, ppo.load_actor), or a searched gait
    (a gait.json or its directory: at each state the gait's delta toward its target from the current one)."""

    def __init__(self, run_dir, env):
        from dexndm_training.gait import Gait, GaitPolicy, gait_file

        if gait_file(run_dir) is not None:
            self.actor = GaitPolicy(Gait.load(gait_file(run_dir)))
            self.actor.bind(env)
            return
        from dexndm_training import ppo

        self.actor = ppo.load_actor(run_dir, env)

    def __call__(self, obs):
        return self.actor(obs).float()

    def bind(self, env) -> None:
        if hasattr(self.actor, "bind"):
            self.actor.bind(env)

    def close(self) -> None:
        pass


def collect(env_cfg, cfg: MPCConfig, out, rounds: int, min_rot: float = 2.0, progress: bool = True,
            student=None, beta: float = 0.0, teacher_run: str = "") -> dict:
    """Run the teacher for `rounds` more rounds (one episode per world each) into `out`; resumable.

    Each round is written as its own dataset shard, `out/shards/round_NNNN/` (only episodes that survived
    every step and turned at least `min_rot` rad about the axis), and appended to `out/curve.json` (Rot,
    TTF, RotP of all its episodes, env steps and wall time so far). A killed run loses at most the round
    in progress; run the same command again to go on. The env seed of round r is env_cfg.seed + r, so
    rounds never repeat episodes.

    DAgger: with `student` (a .onnx or generalist.pt path) the worlds execute the student's deltas (the
    teacher's with probability `beta` per tick) and the shard keeps every world's steps up to its fall,
    labelled with the teacher's delta (the dataset's `label` array; BC clones those). The curve then
    measures the executed mix, i.e. the student when beta = 0.

    `teacher_run`: a PPO run directory whose actor is the teacher instead of the planner (NetworkTeacher);
    its rounds are always labelled like DAgger's, with or without a student.
    """
    import json
    import time
    from dataclasses import replace
    from pathlib import Path

    from dexndm_training.dataset import write_dataset
    from dexndm_training.env import RotationEnv
    from dexndm_training.rollout import rollout, successful_episodes

    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    from dexndm_training.env import EnvConfig

    config = {"env": env_cfg.to_dict(), "mpc": cfg.to_dict(), "min_rot": min_rot, "teacher": teacher_run or "mpc"}
    resume_config(out, config, {"env": EnvConfig().to_dict(), "mpc": MPCConfig().to_dict()})
    curve_file = out / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else []
    done = len(curve)
    for r in range(done, done + rounds):
        start = time.time()
        env = RotationEnv(replace(env_cfg, seed=env_cfg.seed + r))
        teacher = NetworkTeacher(teacher_run, env) if teacher_run else PredictiveSampler(env, replace(cfg, seed=cfg.seed + r))
        mix = DaggerMix(teacher, None if student is None else load_student(student), beta, seed=cfg.seed + r)
        try:
            result = rollout(env, _Progress(mix, env_cfg.episode_steps, f"round {r}") if progress else mix)
        finally:
            teacher.close()
            env.close()
        per = _episode_metrics(result)
        if student is None and not teacher_run:
            keep = result.success & (per["rot"] >= min_rot)
            survived = np.flatnonzero(result.success)  # the order successful_episodes keeps
            episodes = [ep for ep, i in zip(successful_episodes(result, env_cfg.object, source="mpc"), survived) if keep[i]]
            provenance = {"source": "mpc", "round": r, **config}
        else:
            labels = np.zeros_like(result.q)
            labels[:, : len(mix.labels)] = np.stack(mix.labels, axis=1)
            episodes = _labelled_episodes(result, labels, env_cfg.object, min_length=cfg.horizon)
            keep = np.array([True] * len(episodes))
            provenance = {"source": "dagger", "round": r, "student": str(student), "beta": beta, **config}
        shard = out / "shards" / f"round_{r:04d}"
        if episodes:
            write_dataset(shard, episodes, provenance=provenance)
        steps = int(np.sum(np.minimum(result.alive, result.q.shape[1])))
        previous = curve[-1] if curve else {"env_steps": 0, "wall_s": 0.0}
        curve.append({"round": r, "episodes": int(len(result.alive)), "kept": int(keep.sum()),
                      "rot": float(per["rot"].mean()), "ttf": float(per["ttf"].mean()),
                      "rotp": float(per["rotp"].mean()), "env_steps": previous["env_steps"] + steps,
                      "wall_s": previous["wall_s"] + time.time() - start,
                      **({} if student is None else {"student": str(student), "beta": beta})})
        tmp = curve_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(curve, indent=1))
        tmp.replace(curve_file)
        _tensorboard(out, curve[-1])
        if progress:
            c = curve[-1]
            print(f"round {r}: rot {c['rot']:.2f} rad, ttf {c['ttf']:.2f}, rotp {c['rotp']:.2f}, kept "
                  f"{c['kept']}/{c['episodes']} ({time.time() - start:.0f} s)", flush=True)
    return summary(out)


def _tensorboard(out, point: dict) -> None:
    """Rot, TTF, RotP and kept episodes of one round as TensorBoard scalars (out/tb), against env steps."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out / "tb")) as writer:
        for key in ("rot", "ttf", "rotp", "kept"):
            writer.add_scalar(f"teacher/{key}", point[key], point["env_steps"], walltime=None)
        writer.add_scalar("teacher/wall_s", point["wall_s"], point["env_steps"])


def summary(out) -> dict:
    """Totals of a teacher run directory: rounds, episodes, kept, mean Rot / TTF / RotP over all rounds."""
    import json
    from pathlib import Path

    curve = json.loads((Path(out) / "curve.json").read_text())
    episodes = sum(c["episodes"] for c in curve)
    weighted = lambda key: sum(c[key] * c["episodes"] for c in curve) / max(episodes, 1)  # noqa: E731
    return {"rounds": len(curve), "episodes": episodes, "kept": sum(c["kept"] for c in curve),
            "rot": weighted("rot"), "ttf": weighted("ttf"), "rotp": weighted("rotp"),
            "wall_s": curve[-1]["wall_s"] if curve else 0.0, "env_steps": curve[-1]["env_steps"] if curve else 0}


class _Progress:
    """Wraps a policy callable with a tqdm bar over one episode's ticks."""

    def __init__(self, policy, steps: int, label: str):
        from tqdm import tqdm

        self.policy, self.bar = policy, tqdm(total=steps, desc=label, unit="tick", leave=False)

    def __call__(self, obs):
        self.bar.update(1)
        if self.bar.n >= self.bar.total:
            self.bar.close()
        return self.policy(obs)

    def bind(self, env) -> None:
        if hasattr(self.policy, "bind"):
            self.policy.bind(env)
