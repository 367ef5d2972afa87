"""The batched in-hand rotation environment on the source world (rsl_rl VecEnv contract).

N worlds of dexndm_description.sim.BatchedHandSim. Each episode draws a stable grasp (generated around the
canonical pose, kept only if the object stays), a rotation axis from the configured names or sets, and
runs 400 control steps of 50 ms; it ends early when the object falls or leaves the hand (unless
`terminate_on_fall` is off). Wrist orientations are fixed per world (the named ones round-robin, or
`random` for a random quaternion per world). The sim re-draws object mass, friction and centre of mass
at every reset and scale at construction; this env adds the paper's disturbance force (2 x mass N, a new
random direction with probability 0.25 per step) and joint-position noise on observations (uniform +- 0.005 rad).

Actions are the generalist's delta in [-1, 1]: a_t = clip(a_{t-1} + delta / 24, limits), integrated by
dexndm_policy.observation.integrate_action. Observations are named groups:
- `policy`: the generalist contract (327), built by dexndm_policy's ObservationHistory;
- `privileged`: the oracle's (paper A.1), see PRIVILEGED_LAYOUT.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from dexndm_description import axes as axis_table
from dexndm_description import hand
from dexndm_description import wrist as wrist_table
from dexndm_policy import observation
from dexndm_training import rewards, rotations

log = logging.getLogger(__name__)

#: Joint/target history length of the privileged group (steps).
PRIVILEGED_HISTORY = 3
#: (name, width) of each block of the privileged observation, in order.
PRIVILEGED_LAYOUT: tuple[tuple[str, int], ...] = (
    ("joint_target_history", PRIVILEGED_HISTORY * 2 * hand.NUM_JOINTS),  # clean q and base target, rad
    ("qdot", hand.NUM_JOINTS),  # rad/s
    ("joint_effort", hand.NUM_JOINTS),  # N m (actuator forces)
    ("fingertips", 12),  # palm frame, relative to the grasp spot, m
    ("object_position", 3),  # palm frame, relative to the grasp spot, m
    ("object_quat", 4),  # palm frame, x y z w
    ("object_linvel", 3),  # palm frame, m/s
    ("object_angvel", 3),  # palm frame, rad/s
    ("goal_rotvec", 3),  # rotation from the object to its waypoint, palm frame, rad
    ("object_params", 5),  # mass kg, friction, extents m (3)
    ("disturbance", 3),  # applied force, palm frame, N
    ("gravity", 3),  # unit gravity direction in the palm frame
    ("wrist", 4),
    ("axis", 3),
)
PRIVILEGED_DIM = sum(w for _, w in PRIVILEGED_LAYOUT)

AXIS_SETS = ("principal", "general", "diagonal")
ACTION_MODES = ("delta", "target", "gait_residual")


def shift_gait_centre(offset: np.ndarray, action: np.ndarray, cfg: "EnvConfig") -> np.ndarray:
    """A `gait_residual` step: the gait's centre moves by residual_scale clip(action, -1, 1) / 24 rad, within
    +-residual_limit rad."""
    step = cfg.residual_scale * np.clip(action, -1.0, 1.0) * hand.ACTION_SCALE
    return np.clip(offset + step, -cfg.residual_limit, cfg.residual_limit)


def delta_toward(wanted: np.ndarray, previous_target: np.ndarray) -> np.ndarray:
    """The contract's delta [N, 16] that steps the base targets toward `wanted` at the rate limit (|delta| <= 1,
    i.e. 1/24 rad a step)."""
    return np.clip((wanted - previous_target) / hand.ACTION_SCALE, -1.0, 1.0)


def target_to_delta(action: np.ndarray, previous_target: np.ndarray, scale: float) -> np.ndarray:
    """A `target`-mode action read through the contract: the delta toward canonical + scale clip(action, -1, 1)."""
    return delta_toward(hand.CANONICAL_POSE + scale * np.clip(action, -1.0, 1.0), previous_target)


def resolve_axes(specs: tuple[str, ...] | list[str]) -> tuple[list[str], np.ndarray]:
    """Axis names and unit vectors [K, 3] from names (`z`, `general:3`) and set names (`principal`, `general`,
    `diagonal`, `all`)."""
    table = axis_table.named_axes()
    names: list[str] = []
    for spec in specs:
        if spec == "all":
            names += list(table)
        elif spec in AXIS_SETS:
            vectors = axis_table.axis_set(spec)
            names += [n for n, v in table.items() if any(np.allclose(v, w) for w in vectors)]
        else:
            axis_table.parse_axis(spec)
            names.append(spec)
    return names, np.stack([axis_table.parse_axis(n) for n in names])


def resolve_wrists(specs: tuple[str, ...] | list[str], num_envs: int, rng: np.random.Generator
                   ) -> tuple[list[str], np.ndarray]:
    """One wrist label and quaternion [N, 4] per world: names round-robin, `all` = the six named ones,
    `random` = a uniformly random orientation."""
    expanded: list[str] = []
    for spec in specs:
        expanded += list(wrist_table.WRIST_ORIENTATIONS) if spec == "all" else [spec]
    labels, quats = [], []
    for i in range(num_envs):
        spec = expanded[i % len(expanded)]
        if spec == "random":
            v = rng.normal(size=4)
            quats.append(wrist_table.normalize_quaternion(v))
        else:
            quats.append(wrist_table.parse_wrist(spec))
        labels.append(spec)
    return labels, np.stack(quats)


@dataclass
class EnvConfig:
    """Settings of the rotation environment."""

    num_envs: int = 16  # simulated worlds stepped together
    object: str = "normal_cylinder"  # object set (normal_cylinder, ..., test_irregular)
    wrists: list[str] = field(default_factory=lambda: ["palm_up"])  # wrist names, 'all' (six named) or 'random'
    axes: list[str] = field(default_factory=lambda: ["z"])  # axis names or sets: principal, general, diagonal, all
    episode_steps: int = 400  # control steps (20 Hz) per episode
    joint_noise: float = 0.005  # rad, uniform +- on observed q
    disturbance_scale: float = 2.0  # force = scale x mass (N per kg)
    disturbance_probability: float = 0.25  # per step
    disturbance_decay: float = 0.9  # the force is multiplied by this every step until re-drawn (1 = constant)
    randomize: bool = True  # object mass, friction, centre of mass at each reset (the sim draws them)
    #: Palm up, cylinders stand on an end over the palm's centre instead of lying (grasp_search.rest_placement).
    stand_cylinders: bool = True
    #: rad: a fresh close places the object turned by U(-initial_yaw, initial_yaw) about the palm normal, so
    #: training meets every phase of a turn (a cuboid aligned with the palm at every start meets its diagonal
    #: only by pushing through it); 0 = aligned, as evaluation runs.
    initial_yaw: float = 0.0
    grasp_candidates: int = 128  # poses tried when building the grasp cache
    grasp_noise: float = 0.04  # rad, uniform +- around the canonical pose
    grasp_hold_steps: int = 10  # control steps a candidate must hold the object
    grasp_max_drift: float = 0.03  # m the object may move while held
    reset_attempts: int = 8  # grasps drawn per reset until the object lies within reset_max_distance
    reset_max_distance: float = 0.085  # m from the grasp spot after the close (falling is FALL_DISTANCE = 0.1)
    reset_max_speed: float = 0.05  # m/s of the object after the close
    reset_cache: int = 8  # settled grasp states kept per world; once full, a reset restores one (no settle ticks)
    terminate_on_fall: bool = True  # False: a world runs all episode_steps after its object fell (dynamics data)
    #: How actions are read: `delta` (the generalist contract); `target` (a in [-1, 1] asks for the base target
    #: canonical + target_scale a; the env steps toward it at the contract's rate limit, see target_to_delta);
    #: `gait_residual` (PPO on top of a searched gait: a moves the centre the gait plays around by residual_scale a
    #: / 24 rad a step, up to +-residual_limit rad, and the base target follows the shifted gait at the rate limit).
    action_mode: str = "delta"
    target_scale: float = 0.5  # rad per unit action in `target` mode
    gait: str = ""  # gait.json the `gait_residual` mode plays
    residual_scale: float = 0.5  # delta units per unit action in `gait_residual` mode
    residual_limit: float = 0.5  # rad, how far `gait_residual` actions may move the gait's centre
    seed: int = 0
    threads: int = 2  # physics threads
    device: str = "cpu"
    reward: rewards.RewardConfig = field(default_factory=rewards.RewardConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EnvConfig":
        data = dict(data)
        data["reward"] = rewards.RewardConfig(**data.get("reward", {}))
        return cls(**data)


class RotationEnv(VecEnv):
    """In-hand rotation about a commanded axis, N source-world LEAP hands, rsl_rl's VecEnv contract."""

    num_actions = hand.NUM_JOINTS

    def __init__(self, cfg: EnvConfig, sim=None):
        from dexndm_description.sim import BatchedHandSim

        if cfg.action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {cfg.action_mode!r}; choose one of {', '.join(ACTION_MODES)}")
        self.cfg = cfg
        self.gait = None
        if cfg.action_mode == "gait_residual":
            from dexndm_training.gait import Gait

            if not cfg.gait:
                raise ValueError("action_mode gait_residual needs a gait: pass --gait runs/<gait>/gait.json")
            self.gait = Gait.load(cfg.gait)
            self.gait_params = self.gait.vector()[None]  # once, not every step
        self.num_envs = n = cfg.num_envs
        self.max_episode_length = cfg.episode_steps
        self.device = torch.device(cfg.device)
        self.rng = np.random.default_rng(cfg.seed)
        self.wrist_labels, self.wrist = resolve_wrists(cfg.wrists, n, self.rng)
        self.axis_names, self.axis_table = resolve_axes(cfg.axes)
        self.sim = sim or BatchedHandSim(num_envs=n, world="source", scene="grasp", wrist=self.wrist,
                                         object=cfg.object, seed=cfg.seed, threads=cfg.threads,
                                         randomize=cfg.randomize, stand_cylinders=cfg.stand_cylinders)
        self.dt = float(self.sim.control_dt)
        self.history = observation.ObservationHistory(n)
        self.privileged_history = np.zeros((n, PRIVILEGED_HISTORY, 2 * hand.NUM_JOINTS))
        self.waypoints = rewards.Waypoints(n, cfg.reward.waypoint_ahead, cfg.reward.waypoint_reached)
        self.previous_target = np.tile(hand.CANONICAL_POSE, (n, 1))
        self.gait_base = self.previous_target.copy()
        self.gait_offset = np.zeros((n, hand.NUM_JOINTS))
        self.axis_index = np.zeros(n, dtype=int)
        self.axis = np.zeros((n, 3))
        self.axis_world = np.zeros((n, 3))
        self.force = np.zeros((n, 3))
        self.episode_length_buf = torch.zeros(n, dtype=torch.long)
        self.reset_retries = 0  # resets that had to draw another grasp (object pushed out while closing)
        self.reset_restores = 0  # resets served from the per-world state cache
        self.state_cache: list[list[np.ndarray]] = [[] for _ in range(n)]  # settled grasp states per world
        self.resets = 0  # episodes ended, over all worlds (drives the a_rot schedule)
        self.episode_return = np.zeros(n)
        self._object_params = np.zeros((n, 5))
        self.grasps = self.build_grasp_cache()
        self.reset_envs(np.arange(n))
        self._obs = self._observations()

    # ------------------------------------------------------------------------------- grasps
    def build_grasp_cache(self) -> np.ndarray:
        """Stable grasps [K, 16]: the canonical pose and jittered ones that hold the object for grasp_hold_steps."""
        cfg, n = self.cfg, self.num_envs
        lo, hi = hand.CANONICAL_POSE - cfg.grasp_noise, hand.CANONICAL_POSE + cfg.grasp_noise
        candidates = hand.clip_to_limits(self.rng.uniform(lo, hi, size=(max(cfg.grasp_candidates, 1), hand.NUM_JOINTS)))
        candidates[0] = hand.CANONICAL_POSE
        kept = []
        for start in range(0, len(candidates), n):
            batch = candidates[start : start + n]
            padded = np.vstack([batch, np.tile(hand.CANONICAL_POSE, (n - len(batch), 1))])
            self.sim.reset(q=padded)
            origin = self.sim.object_pose[:, :3]
            held = np.ones(n, dtype=bool)
            for _ in range(cfg.grasp_hold_steps):
                self.sim.set_targets(padded)
                self.sim.step()
                held &= ~self.sim.object_fallen()
            drift = np.linalg.norm(self.sim.object_pose[:, :3] - origin, axis=1)
            ok = held & (drift < cfg.grasp_max_drift)
            kept.append(batch[ok[: len(batch)]])
        grasps = np.concatenate(kept)
        if len(grasps) == 0:
            log.warning("no candidate grasp held the object; falling back to the canonical pose")
            grasps = hand.CANONICAL_POSE[None].copy()
        self.grasp_success_rate = len(grasps) / len(candidates)
        return grasps

    # ------------------------------------------------------------------------------- episodes
    def reset_envs(self, ids: np.ndarray) -> None:
        """Start new episodes in worlds `ids`: a grasp from the cache, a new axis, a new waypoint."""
        if len(ids) == 0:
            return
        self._reset_into_grasps(ids)
        q = self.sim.q[ids]
        specs = [self.sim.object_specs[i] for i in ids]  # the sim re-drew mass and friction
        self._object_params[ids] = [[s.mass, s.friction, *s.extents] for s in specs]
        self.previous_target[ids] = q  # a_{-1} = q_0 (the collector and BC rely on it)
        self.gait_base[ids] = q  # a gait plays around the episode's grasp pose ...
        self.gait_offset[ids] = 0.0  # ... moved by the gait_residual actions
        self.axis_index[ids] = self.rng.integers(len(self.axis_table), size=len(ids))
        self.axis[ids] = self.axis_table[self.axis_index[ids]]
        self.axis_world[ids] = rotations.rotate(self.wrist[ids], self.axis[ids])
        noisy = q + self._noise(len(ids))
        self.history.reset(noisy, q, env_ids=ids)
        self.privileged_history[ids] = np.concatenate([q, q], axis=1)[:, None, :]
        self.waypoints.reset(self.sim.object_pose[ids, 3:], self.axis_world[ids], env_ids=ids)
        self.force[ids] = 0.0
        self.sim.set_object_force(self.force)
        self.episode_length_buf[torch.as_tensor(ids)] = 0
        self.episode_return[ids] = 0.0

    def _reset_into_grasps(self, ids: np.ndarray) -> None:
        """Reset worlds ids into grasps drawn from the cache.

        A world whose state cache is full restores one of its settled grasp states (MuJoCo state set, object
        physics re-drawn, no settle ticks). Otherwise the object is re-placed and the fingers close on it,
        and a small or re-drawn object can be pushed out while they close: worlds whose object ends farther
        than `reset_max_distance` from the grasp spot (or still moving faster than `reset_max_speed`) draw
        another grasp, up to `reset_attempts` times (then the last try stands); good closes enter the cache."""
        ids = np.asarray(ids)
        size = self.cfg.reset_cache
        full = np.array([size > 0 and len(self.state_cache[i]) >= size for i in ids], dtype=bool)
        if np.any(full):
            restore = ids[full]
            picks = self.rng.integers(size, size=len(restore))
            self.sim.restore_states(restore, np.stack([self.state_cache[i][k] for i, k in zip(restore, picks)]))
            self.reset_restores += len(restore)
        pending = ids[~full]
        for _ in range(max(1, self.cfg.reset_attempts)):
            if len(pending) == 0:
                return
            q0 = self.grasps[self.rng.integers(len(self.grasps), size=len(pending))]
            yaw = self.rng.uniform(-self.cfg.initial_yaw, self.cfg.initial_yaw, size=len(pending)) if self.cfg.initial_yaw > 0 else None
            self.sim.reset(pending, q=q0, yaw=yaw)
            distance = np.linalg.norm(self.sim.object_pose[pending, :3] - self.sim.grasp_spot[pending], axis=1)
            speed = np.linalg.norm(self.sim.object_linvel[pending], axis=1)
            bad = (distance > self.cfg.reset_max_distance) | (speed > self.cfg.reset_max_speed)
            self.reset_retries += int(np.count_nonzero(bad))
            if size > 0 and np.any(~bad):
                for i, state in zip(pending[~bad], self.sim.save_states(pending[~bad])):
                    self.state_cache[i].append(state)
            pending = pending[bad]

    def fill_reset_cache(self, max_rounds: int | None = None) -> int:
        """Close on grasps in every world until each holds `reset_cache` settled states (a long run's steady
        state, where every reset restores one); returns the rounds it took. Worlds are left mid-reset: call
        `reset()` after it."""
        size = self.cfg.reset_cache
        for rounds in range(max_rounds or 3 * size):
            pending = np.array([i for i in range(self.num_envs) if len(self.state_cache[i]) < size], dtype=int)
            if size <= 0 or len(pending) == 0:
                return rounds
            self._reset_into_grasps(pending)
        return max_rounds or 3 * size

    def set_axes(self, axes: np.ndarray) -> None:
        """Override the current axes (palm frame, [N, 3] or [3]) of every world, e.g. for evaluation."""
        self.axis[:] = np.broadcast_to(np.asarray(axes, float), (self.num_envs, 3))
        self.axis /= np.linalg.norm(self.axis, axis=1, keepdims=True)
        self.axis_world[:] = rotations.rotate(self.wrist, self.axis)
        self.waypoints.reset(self.sim.object_pose[:, 3:], self.axis_world)
        self._obs = self._observations()

    def _gait_delta(self) -> np.ndarray:
        """The gait's delta in every world this step, around each episode's grasp pose."""
        from dexndm_training.gait import gait_delta

        return gait_delta(self.gait_params, self.gait_base + self.gait_offset, self.episode_length_buf.numpy(),
                          self.previous_target, self.dt, self.gait.ramp_steps)

    def _noise(self, rows: int) -> np.ndarray:
        return self.rng.uniform(-self.cfg.joint_noise, self.cfg.joint_noise, size=(rows, hand.NUM_JOINTS))

    def _resample_disturbance(self) -> None:
        cfg = self.cfg
        if cfg.disturbance_scale <= 0 or cfg.disturbance_probability <= 0:
            return
        self.force *= cfg.disturbance_decay
        ids = np.flatnonzero(self.rng.random(self.num_envs) < cfg.disturbance_probability)
        if len(ids):
            direction = self.rng.normal(size=(len(ids), 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            mass = np.array([self.sim.object_specs[i].mass for i in ids])
            self.force[ids] = cfg.disturbance_scale * mass[:, None] * direction
        self.sim.set_object_force(self.force)  # one write per step, decayed and re-drawn forces together

    # ------------------------------------------------------------------------------- VecEnv
    def get_observations(self) -> TensorDict:
        return self._obs

    def reset(self) -> TensorDict:
        self.reset_envs(np.arange(self.num_envs))
        self._obs = self._observations()
        return self._obs

    @property
    def rotation_weight(self) -> float:
        return float(rewards.rotation_weight(self.resets / self.num_envs, self.cfg.reward))

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        delta = np.clip(actions.detach().cpu().numpy().astype(np.float64), -1.0, 1.0)
        if self.cfg.action_mode == "target":
            delta = target_to_delta(delta, self.previous_target, self.cfg.target_scale)
        elif self.gait is not None:
            self.gait_offset = shift_gait_centre(self.gait_offset, delta, self.cfg)
            delta = self._gait_delta()
        target = observation.integrate_action(self.previous_target, delta)
        self._resample_disturbance()
        self.sim.set_targets(target)
        self.sim.step()
        q = self.sim.q
        pose = self.sim.object_pose
        angvel, linvel = self.sim.object_angvel, self.sim.object_linvel
        fallen = self.sim.object_fallen()
        r_goal = self.waypoints.update(pose[:, 3:], self.axis_world)
        reward, terms = rewards.total_reward(self.cfg.reward, self.rotation_weight, r_goal, angvel, linvel,
                                             self.axis_world, q, self.sim.qdot, self.sim.joint_effort, fallen)
        self.history.push(q + self._noise(self.num_envs), target)  # (q_{t+1}, a_t)
        self.privileged_history[:, :-1] = self.privileged_history[:, 1:]
        self.privileged_history[:, -1] = np.concatenate([q, target], axis=1)
        self.previous_target = target.copy()  # reset_envs writes into it; `target` stays as stepped
        self.episode_length_buf += 1
        time_out = self.episode_length_buf.numpy() >= self.cfg.episode_steps
        done = (fallen & self.cfg.terminate_on_fall) | time_out
        self.episode_return += reward
        self.last_step = {"q": q, "target": target, "object_pose": pose, "angvel": angvel, "fallen": fallen,
                          "time_out": time_out, "reward": reward}  # before any reset, for collectors
        extras = {
            "time_outs": torch.as_tensor(time_out & ~fallen, device=self.device),
            "log": {f"/reward/{k}": float(np.mean(v)) for k, v in terms.items()},
        }
        extras["log"]["/env/rotation_weight"] = self.rotation_weight
        extras["log"]["/env/omega_about_axis"] = float(np.mean(np.sum(angvel * self.axis_world, axis=1)))
        if np.any(done):
            ids = np.flatnonzero(done)
            extras["log"]["/env/fall_rate"] = float(np.mean(fallen[ids]))
            extras["log"]["/env/episode_steps"] = float(np.mean(self.episode_length_buf.numpy()[ids]))
            self.resets += len(ids)
            self.reset_envs(ids)
        self._obs = self._observations()
        rew = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
        return self._obs, rew, torch.as_tensor(done, device=self.device), extras

    # ------------------------------------------------------------------------------- observations
    def _observations(self) -> TensorDict:
        policy = self.history.observation(self.wrist, self.axis)
        privileged = self.privileged_observation()
        return TensorDict(
            {"policy": torch.from_numpy(policy).to(self.device),
             "privileged": torch.from_numpy(privileged.astype(np.float32)).to(self.device)},
            batch_size=[self.num_envs], device=self.device)

    def privileged_observation(self) -> np.ndarray:
        """The oracle's observation [N, PRIVILEGED_DIM] (PRIVILEGED_LAYOUT), palm frame."""
        n, w = self.num_envs, self.wrist
        to_palm = lambda v: rotations.rotate_inverse(w, v)  # noqa: E731
        spot = self.sim.grasp_spot
        pose = self.sim.object_pose
        tips = rotations.rotate_inverse(w[:, None, :], self.sim.fingertip_pos - spot[:, None, :]).reshape(n, 12)
        obj_quat = rotations.multiply(rotations.conjugate(w), pose[:, 3:])
        goal = rotations.to_rotvec(rotations.multiply(self.waypoints.goal, rotations.conjugate(pose[:, 3:])))
        gravity = to_palm(np.tile([0.0, 0.0, -1.0], (n, 1)))
        blocks = [
            self.privileged_history.reshape(n, -1), self.sim.qdot, self.sim.joint_effort, tips,
            to_palm(pose[:, :3] - spot), obj_quat, to_palm(self.sim.object_linvel), to_palm(self.sim.object_angvel),
            to_palm(goal), self._object_params, to_palm(self.force), gravity, w, self.axis,
        ]
        return np.concatenate(blocks, axis=1)

    def close(self) -> None:
        self.sim.close()
