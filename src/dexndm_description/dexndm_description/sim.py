"""Batched LEAP-hand simulation: N independent MuJoCo worlds stepped one 50 ms control tick at a time.

    sim = BatchedHandSim(num_envs=64, world="source", scene="grasp", wrist="palm_up",
                         object="normal_cylinder", seed=0, threads=2)
    sim.reset()                     # canonical grasp, object placed in it
    sim.set_targets(targets)        # [N, 16] rad, motor-ID order, clipped to the limits
    sim.step()                      # one control tick = 6 physics steps at 120 Hz
    sim.q, sim.qdot, sim.object_pose, sim.object_fallen()

Every array is in motor-ID order and world frame (z up), quaternions x y z w. Each world owns its
MjModel and MjData (objects, wrists and randomized physics differ per world). In the source world
(MuJoCo position actuators: the PD law lives inside the physics) a control tick of every world is one
call in C on `threads` threads with no Python between physics steps (a `mujoco.batch` of one shared model
with per-world fields, or `mujoco.rollout` where the worlds' models differ in structure); the target
world's servo law runs vectorized in Python between physics steps and a thread pool does the physics
(`mujoco.mj_step` releases the GIL). Each world draws from its own random stream spawned from `seed`,
so a world's trajectory does not depend on the others or on the number of threads.
"""
from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
from mujoco import batch as mj_batch
from mujoco import rollout as mj_rollout

from dexndm_description import grasp_search, hand, mjcf, objects, scene as scenes, wrist as wrists
from dexndm_description.worlds import WorldConfig, servo_current, servo_torque

#: An object whose centre is farther than this from the grasp spot has left the hand (m).
FALL_DISTANCE = 0.1
#: Control ticks spent closing the fingers on a freshly placed object during reset.
GRASP_SETTLE_TICKS = 10
#: Control ticks the Chaos Box balls get to fall and settle during reset.
BALL_SETTLE_TICKS = 16


def _rotate_wxyz(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v [N, 3] by unit quaternions q [N, 4] (MuJoCo's w x y z order)."""
    w, u = q[:, :1], q[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _step_each(models, datas) -> None:
    """One physics step of each world (mj_step releases the GIL)."""
    for m, d in zip(models, datas):
        mujoco.mj_step(m, d)


def _as_env_array(value, num_envs: int, width: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (num_envs, arr.shape[0]))
    if arr.shape != (num_envs, width):
        raise ValueError(f"{what} must have shape [{width}] or [{num_envs}, {width}], got {list(np.shape(value))}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or inf; send finite values")
    return arr


#: Model fields a world may change after it is built (object physics at every reset, gains and link masses in
#: system identification, gravity while a grasp closes) and the constants mj_setConst derives from them: the
#: shared-model stepper gives each world its own copy of these, plus any other field that differs between
#: the worlds' models when it starts.
PER_WORLD_FIELDS = (
    "body_mass", "body_inertia", "body_ipos", "body_iquat", "body_subtreemass", "body_invweight0", "geom_friction",
    "dof_M0", "dof_invweight0", "actuator_gainprm", "actuator_biasprm", "actuator_forcerange", "actuator_acc0",
    "actuator_length0", "opt.gravity",
)


class _SharedModelStepper:
    """Source-world control ticks as `mujoco.batch.Batch` calls on ONE model with per-world fields.

    With a model per world (1024 x 245 kB), a call per control tick reloads every world's model into the caches
    and cost 1.15-1.2 x one call over many ticks; on one shared model the per-tick calls ran as fast as that one
    call (docs/TRAINING.md, "Where the time goes"). The batch keeps each world's integration state (warm start
    included), so its ticks equal mj_step's on the world's own model exactly. The worlds' MjModel and MjData stay
    the API: a world whose MjData were handed out since the last tick (resets, `datas`) has its state and its
    per-world fields copied in before the next one."""

    def __init__(self, models: list[mujoco.MjModel], threads: int):
        m0 = models[0]
        self.models = models
        self.fields = [f for f in mj_batch.MODEL_FIELDS if self._varies(models, f) or f in PER_WORLD_FIELDS]
        self.batch = mj_batch.Batch(m0, len(models), nthread=max(1, threads))
        self.expanded = {f: self.batch.expand(f) for f in self.fields}
        self.ctrl, self.xfrc = self.batch.bind("ctrl"), self.batch.bind("xfrc_applied")
        self.sensordata, self.actuator_force = self.batch.bind("sensordata"), self.batch.bind("actuator_force")
        spec = mujoco.mjtState
        # the FULLPHYSICS columns of an INTEGRATION state row (components are stored in bit order)
        cols, start = [], 0
        for bit in range(spec.mjNSTATE.value):
            if not spec.mjSTATE_INTEGRATION.value & (1 << bit):
                continue
            size = mujoco.mj_stateSize(m0, 1 << bit)
            if spec.mjSTATE_FULLPHYSICS.value & (1 << bit):
                cols.extend(range(start, start + size))
            start += size
        self.full_columns = np.array(cols)

    @staticmethod
    def _varies(models, field: str) -> bool:
        get = (lambda m: getattr(m.opt, field[4:])) if field.startswith("opt.") else (lambda m: getattr(m, field))
        first = np.asarray(get(models[0]))
        return any(not np.array_equal(np.asarray(get(m)), first) for m in models[1:])

    @staticmethod
    def compatible(models: list[mujoco.MjModel]) -> bool:
        """Whether the worlds can share one model: the same sizes everywhere and no integer field (geom types,
        mesh ids, ...) that differs, as for objects of one set that differ in size and physics only."""
        m0 = models[0]
        for field in mj_batch.MODEL_FIELDS:
            if field.startswith("opt."):
                continue
            a = getattr(m0, field, None)
            if not isinstance(a, np.ndarray):
                continue
            for m in models[1:]:
                b = getattr(m, field)
                if b.shape != a.shape or (a.dtype.kind in "iub" and not np.array_equal(a, b)):
                    return False
        return True

    def load(self, ids: np.ndarray, datas: list[mujoco.MjData]) -> None:
        """Worlds ids' per-world fields from their MjModel, the constants derived from them (mj_setConst: the
        solver also reads model statistics such as the mean inertia) and their states from their MjData."""
        if len(ids) == 0:
            return
        for i in ids:
            m = self.models[i]
            for f in self.fields:
                self.expanded[f][i] = getattr(m.opt, f[4:]) if f.startswith("opt.") else getattr(m, f)
            mujoco.mj_getState(m, datas[i], self.batch.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)
        self.batch.set_const(ids)

    def store(self, i: int, data: mujoco.MjData) -> None:
        """World i's state into `data`."""
        mujoco.mj_setState(self.models[i], data, self.batch.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)

    def tick(self, targets: np.ndarray, xfrc: np.ndarray, substeps: int) -> None:
        self.ctrl[:] = targets
        self.xfrc[:] = xfrc
        self.batch.step(nstep=substeps)

    def hold_seconds(self, targets: np.ndarray, xfrc: np.ndarray, nstep: int) -> float:
        """Seconds to step every world `nstep` physics steps in one call with targets and forces held; the
        worlds' states are put back afterwards (a benchmark of the stepper, not a tick)."""
        saved = self.batch.state.copy()
        self.ctrl[:] = targets
        self.xfrc[:] = xfrc
        start = time.perf_counter()
        self.batch.step(nstep=nstep)
        seconds = time.perf_counter() - start
        self.batch.state[:] = saved
        return seconds

    def full_state(self) -> np.ndarray:
        """[N, nstate] every world's mjSTATE_FULLPHYSICS state (a new C-ordered array, as mj_getState needs)."""
        return np.ascontiguousarray(self.batch.state[:, self.full_columns])


class BatchedHandSim:
    """N independent LEAP-hand worlds (source or target physics), stepped together per control tick.

    randomize=True draws each world's object shape from its set and re-draws mass, friction and
    centre of mass at every reset; randomize=False gives every world the set's nominal object
    (middle size, 0.03 kg, friction 1.0, centred mass).
    """

    def __init__(self, num_envs: int = 1, world: str | WorldConfig = "source", scene: str = "grasp",
                 wrist="palm_up", object: str | None = "normal_cylinder", seed: int = 0, threads: int = 2,
                 randomize: bool = True, stand_cylinders: bool = True):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = n = int(num_envs)
        self.config = world if isinstance(world, WorldConfig) else WorldConfig.named(world)
        if scene not in scenes.SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(scenes.SCENES)}")
        self.scene = scene
        self.object_set = None if (object is None or object == "none" or scene != "grasp") else objects.check_set(object)
        if scene == "grasp" and self.object_set is None:
            raise ValueError("the grasp scene needs an object set; pass scene='hand_only' to simulate no object")
        self.randomize = bool(randomize)
        self.stand_cylinders = bool(stand_cylinders)  # palm up, cylinders stand on the palm (grasp_search.rest_placement)
        self.seed = int(seed)
        self._wrists = self._parse_wrists(wrist, n)
        if scene == "chaos_box":
            up = np.array([wrists.quat_to_matrix(w)[:, 2] @ [0.0, 0.0, -1.0] for w in self._wrists])
            if np.any(up > 0.95):
                raise ValueError("the Chaos Box takes any wrist orientation except palm_up (balls would rest on the palm)")
        self._rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(n)]
        self.object_specs: list[objects.ObjectSpec | None] = []
        self.models: list[mujoco.MjModel] = []
        self._datas: list[mujoco.MjData] = []
        compiled: dict[str, mujoco.MjModel] = {}
        for i in range(n):
            spec = (objects.sample_shape(self.object_set, self._rngs[i], nominal=not self.randomize)
                    if self.object_set else None)
            xml = scenes.scene_xml(self.config, scene, self._wrists[i], spec, self._rngs[i])
            if xml not in compiled:
                compiled[xml] = mujoco.MjModel.from_xml_string(xml)
            model = copy.copy(compiled[xml])
            self.object_specs.append(spec)
            self.models.append(model)
            self._datas.append(mujoco.MjData(model))
        self._index(self.models[0])
        self._grasps: list[np.ndarray | None] = [None] * n  # per world: state of its canonical grasp
        self._threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 and n > 1 else None
        self._rollout = None  # the source world's stepper (mujoco.rollout), made on first use
        #: the shared-model stepper (_SharedModelStepper), made on first use; False where the worlds' models
        #: differ in structure (then mujoco.rollout steps them)
        self._shared: _SharedModelStepper | bool | None = None
        self._reload = np.ones(n, dtype=bool)  # world's MjData were handed out since the shared stepper loaded them
        # After a rollout tick the truth is in _phys_state (and _datas lag until `datas` is read); applied
        # forces live in _xfrc so setting them each tick does not touch the MjData.
        self._phys_state: np.ndarray | None = None  # [N, nstate], valid where not _touched
        self._stale = np.zeros(n, dtype=bool)  # world's MjData lag _phys_state
        self._touched = np.ones(n, dtype=bool)  # world's MjData were handed out since _phys_state was read
        self._xfrc_dirty = np.zeros(n, dtype=bool)
        self._xfrc = np.zeros((n, self.models[0].nbody, 6))
        self._targets = np.tile(hand.CANONICAL_POSE, (n, 1))
        self._previous_targets = self._targets.copy()  # the targets in force during the last tick
        self._q = np.zeros((n, hand.NUM_JOINTS))
        self._qdot = np.zeros((n, hand.NUM_JOINTS))
        self._effort = np.zeros((n, hand.NUM_JOINTS))
        self._object_pose = np.tile([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], (n, 1))
        self._object_linvel = np.zeros((n, 3))
        self._object_angvel = np.zeros((n, 3))
        self._fingertips = np.zeros((n, 4, 3))
        self._spot = np.zeros((n, 3))
        self._time = np.zeros(n)
        self._obs_nq = self._obj_qadr + 7 if self._has_object else hand.NUM_JOINTS
        self._obs_nv = self._obj_vadr + 6 if self._has_object else hand.NUM_JOINTS
        self._raw_qpos = np.zeros((n, self._obs_nq))
        self._raw_qvel = np.zeros((n, self._obs_nv))
        self._raw_xmat = np.zeros((n, 9))
        #: Set to [[] for each world] to record q (motor order) after every physics step of step().
        self.substep_trace: list[list[np.ndarray]] | None = None
        self.reset()

    # ----------------------------------------------------------------------------------- setup
    @staticmethod
    def _parse_wrists(wrist, n: int) -> np.ndarray:
        if isinstance(wrist, str):
            return np.tile(wrists.parse_wrist(wrist), (n, 1))
        if isinstance(wrist, (list, tuple)) and wrist and all(isinstance(w, str) for w in wrist):
            if len(wrist) != n:
                raise ValueError(f"got {len(wrist)} wrist names for {n} worlds")
            return np.stack([wrists.parse_wrist(w) for w in wrist])
        arr = np.asarray(wrist, dtype=float)
        if arr.shape == (4,):
            return np.tile(wrists.parse_wrist(arr), (n, 1))
        if arr.ndim == 2 and arr.shape == (n, 4):
            return np.stack([wrists.parse_wrist(row) for row in arr])
        raise ValueError(f"wrist must be a name, a quaternion x,y,z,w [4] or one per world [{n}, 4]; got shape {list(arr.shape)}")

    def _index(self, m: mujoco.MjModel) -> None:
        joints = [m.joint(name).id for name in hand.JOINT_NAMES]
        self._qadr = m.jnt_qposadr[joints].copy()
        self._vadr = m.jnt_dofadr[joints].copy()
        # the hand's joints come first in the tree: qpos[:16] and qvel[:16] hold them in chain order
        self._hand_nq = hand.NUM_JOINTS
        if sorted(self._qadr) != list(range(hand.NUM_JOINTS)) or sorted(self._vadr) != list(range(hand.NUM_JOINTS)):
            raise RuntimeError("the hand's joints must be the first 16 of the model")
        self._tip_sites = np.array([m.site(s).id for s in mjcf.FINGERTIP_SITES])
        self._tip_sensors = np.concatenate([np.arange(3) + m.sensor_adr[m.sensor(f"{s}_pos").id]
                                            for s in mjcf.FINGERTIP_SITES])
        self._act_ids = np.array([m.actuator(name).id for name in hand.JOINT_NAMES]) if m.nu else np.zeros(0, int)
        self._tip_geoms = np.array([m.geom(f"{b}_tip").id for b in mjcf.FINGERTIP_BODIES])
        self._spot_site = m.site("palm_centre").id
        self._has_object = self.object_set is not None
        if self._has_object:
            self._obj_body = m.body("object").id
            self._obj_geom = m.geom("object").id
            jnt = m.joint("object").id
            self._obj_qadr = int(m.jnt_qposadr[jnt])
            self._obj_vadr = int(m.jnt_dofadr[jnt])

    def _run(self, fn, env_ids: np.ndarray) -> None:
        """Call fn(ids) on parts of env_ids, one part per thread of the pool."""
        if self._pool is None or len(env_ids) < 2:
            fn(env_ids)
            return
        parts = [p for p in np.array_split(env_ids, self._threads) if len(p)]
        for future in [self._pool.submit(fn, part) for part in parts]:
            future.result()

    # ----------------------------------------------------------------------------------- physics
    def _advance(self, ids: np.ndarray, target: np.ndarray, previous: np.ndarray, record: bool = True,
                 pool: ThreadPoolExecutor | None = None) -> None:
        """One control tick of worlds ids (targets [len(ids), 16]): the world's actuation law at every
        physics step. The servo law runs vectorized over ids between the physics steps; with a pool
        the physics steps of each round are split over its threads."""
        cfg = self.config
        models = [self.models[i] for i in ids]
        datas = [self._d(i) for i in ids]
        traces = [self.substep_trace[i] for i in ids] if (record and self.substep_trace is not None) else None
        if cfg.actuation == "pd_torque":
            for j, (m, d) in enumerate(zip(models, datas)):
                d.ctrl[:] = target[j]  # MuJoCo position actuators: kp (ctrl - q) - kv qdot, clipped by forcerange
                if traces is None:
                    mujoco.mj_step(m, d, nstep=cfg.substeps)
                else:
                    for _ in range(cfg.substeps):
                        mujoco.mj_step(m, d)
                        traces[j].append(d.qpos[self._qadr].copy())
                self._effort[ids[j]] = d.actuator_force
            return
        nq = self._hand_nq
        current = np.zeros_like(target)
        parts = [p for p in np.array_split(np.arange(len(ids)), self._threads) if len(p)] if pool else None
        for k in range(cfg.substeps):
            goal = previous if k < cfg.delay_substeps else target
            q = np.stack([d.qpos[:nq] for d in datas])[:, self._qadr]
            qdot = np.stack([d.qvel[:nq] for d in datas])[:, self._vadr]
            current = servo_current(cfg, goal, q, qdot)
            torque = servo_torque(cfg, current, qdot)
            for j, d in enumerate(datas):
                d.ctrl[:] = torque[j]
            if parts:  # the servo law ran above for every world; the physics steps go to the pool
                for future in [pool.submit(_step_each, [models[j] for j in p], [datas[j] for j in p]) for p in parts]:
                    future.result()
            else:
                _step_each(models, datas)
            if traces is not None:
                for j, d in enumerate(datas):
                    traces[j].append(d.qpos[self._qadr].copy())
        self._effort[ids] = current

    def _observe(self, ids: np.ndarray) -> None:
        """Copy the state of worlds ids into the batched arrays (few copies per world, then vectorized)."""
        nq, nv = self._obs_nq, self._obs_nv
        for i in ids:
            d = self._d(i)
            self._raw_qpos[i] = d.qpos[:nq]
            self._raw_qvel[i] = d.qvel[:nv]
            self._fingertips[i] = d.site_xpos[self._tip_sites]
            self._spot[i] = d.site_xpos[self._spot_site]
            self._time[i] = d.time
            if self._has_object:
                self._raw_xmat[i] = d.xmat[self._obj_body]
        self._q[ids] = self._raw_qpos[ids][:, self._qadr]
        self._qdot[ids] = self._raw_qvel[ids][:, self._vadr]
        if self._has_object:
            a, v = self._obj_qadr, self._obj_vadr
            pose = self._raw_qpos[ids, a:a + 7]
            self._object_pose[ids] = pose[:, [0, 1, 2, 4, 5, 6, 3]]  # MuJoCo w x y z -> x y z w
            vel = self._raw_qvel[ids, v:v + 6]
            self._object_linvel[ids] = vel[:, :3]
            rot = self._raw_xmat[ids].reshape(-1, 3, 3)
            self._object_angvel[ids] = np.einsum("nij,nj->ni", rot, vel[:, 3:])  # body frame -> world

    def _tick(self, ids: np.ndarray) -> None:
        self._advance(ids, self._targets[ids], self._previous_targets[ids])
        self._observe(ids)

    def _randomize_object(self, i: int) -> None:
        m, d, spec = self.models[i], self._d(i), self.object_specs[i]
        if self.randomize:
            objects.randomize_physics(spec, self._rngs[i])
        b = self._obj_body
        m.body_mass[b] = spec.mass
        m.body_inertia[b] = spec.mass * objects.unit_inertia(spec)
        m.body_ipos[b] = spec.com
        m.geom_friction[self._obj_geom, 0] = spec.friction * self.config.friction_scale
        mujoco.mj_setConst(m, d)

    def _ticks(self, ids: np.ndarray, goal: np.ndarray, count: int) -> None:
        """`count` control ticks of worlds ids holding targets goal ([N, 16], rows by world id), spread
        over the pool like step(); nothing is observed or traced."""
        if self.config.actuation == "servo":
            for _ in range(count):
                self._advance(ids, goal[ids], goal[ids], record=False, pool=self._pool)
        else:
            self._run(lambda part: [self._advance(part, goal[part], goal[part], record=False) for _ in range(count)], ids)

    def _place(self, i: int, q0: np.ndarray, spot, yaw: float, into_palm: float, upright: bool = False) -> None:
        """Object at `spot` (palm frame m; axes along the palm's, turned by `yaw` rad about the palm
        normal, and with upright=True its long axis (y) turned onto the palm normal), fingers at half of q0,
        gravity `into_palm` x g pointing into the palm."""
        m, d = self.models[i], self._d(i)
        rot = wrists.quat_to_matrix(self._wrists[i])
        mujoco.mj_resetData(m, d)
        a = self._obj_qadr
        d.qpos[a:a + 3] = scenes.HAND_ORIGIN + rot @ np.asarray(spot)
        turn = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        if upright:  # a quarter turn about the object's x axis after the yaw: its y axis along the palm normal
            stand = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])
            mujoco.mju_mulQuat(turn, turn.copy(), stand)
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, scenes.xyzw_to_wxyz(self._wrists[i]), turn)
        d.qpos[a + 3:a + 7] = quat
        d.qpos[self._qadr] = 0.5 * q0
        m.opt.gravity[:] = rot @ [0.0, 0.0, into_palm * self.config.gravity]

    def _close(self, ids: np.ndarray, goal: np.ndarray, gentle: np.ndarray | None = None) -> None:
        """Fingers of worlds ids close to goal for GRASP_SETTLE_TICKS, then real gravity returns. Worlds where
        `gentle` ([N] bool, by world id) is set close from half of goal over GRASP_SETTLE_TICKS and then settle
        as long (a standing object: a thumb that closes at once knocks it over in the target world)."""
        if gentle is None or not np.any(gentle[ids]):
            self._ticks(ids, goal, GRASP_SETTLE_TICKS)
        else:
            for k in range(1, 2 * GRASP_SETTLE_TICKS + 1):
                share = np.where(gentle[:, None], min(1.0, k / GRASP_SETTLE_TICKS), 1.0)
                self._ticks(ids, goal * (0.5 + 0.5 * share), 1)
        for i in ids:
            self.models[i].opt.gravity[:] = (0.0, 0.0, -self.config.gravity)

    # ----------------------------------------------------------------------------------- API
    def reset(self, env_ids=None, q=None, yaw=None) -> None:
        """Reset worlds (all by default) to joint angles q (rad, [16] or [len(env_ids), 16]; default
        the canonical grasp), re-place the object in the grasp (and re-draw its mass, friction and
        centre of mass when randomize=True); targets are set to q, time to 0.

        With the default q each world uses the grasp found for its object and wrist at its first
        reset (see grasp_search.GRASP_CANDIDATES); with an explicit q the object is placed over the palm and the
        fingers close to q with gravity pointing into the palm; `yaw` (rad, [len(env_ids)]) turns each placed
        object about the palm normal first (default 0: aligned with the palm)."""
        ids = self._env_ids(env_ids)
        q0 = _as_env_array(hand.CANONICAL_POSE if q is None else q, len(ids), hand.NUM_JOINTS, "q")
        q0 = hand.clip_to_limits(q0)
        self._targets[ids] = q0
        self._previous_targets[ids] = q0
        goal = self._targets.copy()
        if self._has_object:
            for i in ids:
                self._randomize_object(i)
            if q is None:
                found = grasp_search.search(self, np.array([i for i in ids if self._grasps[i] is None], dtype=int), goal)
                for i, state in found.items():
                    self._grasps[i] = state
                for i in ids:
                    mujoco.mj_resetData(self.models[i], self._d(i))
                    mujoco.mj_setState(self.models[i], self._d(i), self._grasps[i], mujoco.mjtState.mjSTATE_INTEGRATION)
            else:
                standing = np.zeros(self.num_envs, dtype=bool)
                yaws = np.zeros(len(ids)) if yaw is None else _as_env_array(np.reshape(yaw, -1), 1, len(ids), "yaw")[0]
                for i, turn in zip(ids, yaws):
                    spot, standing[i] = grasp_search.rest_placement(self.object_set, self._wrists[i], self.stand_cylinders)
                    self._place(i, goal[i], spot, float(turn), 1.0, upright=standing[i])
                self._close(ids, goal, gentle=standing)
        else:
            for i in ids:
                mujoco.mj_resetData(self.models[i], self._d(i))
                self._d(i).qpos[self._qadr] = goal[i]
            if self.scene == "chaos_box":
                self._ticks(ids, goal, BALL_SETTLE_TICKS)
        for i in ids:
            self._d(i).time = 0.0
            mujoco.mj_forward(self.models[i], self._d(i))
        self._xfrc_dirty[ids] = True  # the applied force holds across a reset (mj_resetData cleared the MjData's)
        self._observe(ids)

    def save_states(self, env_ids=None) -> np.ndarray:
        """The full integration state of worlds env_ids, [len(ids), nstate] (for `restore_states`)."""
        ids = self._env_ids(env_ids)
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        out = np.empty((len(ids), mujoco.mj_stateSize(self.models[0], spec)))
        for j, i in enumerate(ids):
            mujoco.mj_getState(self.models[i], self._d(i), out[j], spec)
        return out

    def restore_states(self, env_ids, states: np.ndarray) -> None:
        """Put worlds env_ids back into saved states (from `save_states` of the same worlds): a reset with no
        settling ticks. The object's mass, friction and centre of mass are re-drawn first when randomize=True
        (as in `reset`); targets become the restored joint angles, time 0."""
        ids = self._env_ids(env_ids)
        states = np.asarray(states, dtype=float)
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        size = mujoco.mj_stateSize(self.models[0], spec)
        if states.shape != (len(ids), size):
            raise ValueError(f"states must have shape [{len(ids)}, {size}] (from save_states), got {list(states.shape)}")
        for j, i in enumerate(ids):
            if self._has_object:
                self._randomize_object(i)
            mujoco.mj_setState(self.models[i], self._d(i), states[j], spec)
            self._d(i).time = 0.0
            mujoco.mj_forward(self.models[i], self._d(i))
        self._observe(ids)
        self._targets[ids] = self._q[ids]
        self._previous_targets[ids] = self._q[ids]

    def set_targets(self, targets) -> np.ndarray:
        """Joint targets for the next tick, [N, 16] (or [16] for all) rad, motor-ID order; returns
        what will be applied after clipping to the joint limits."""
        t = hand.clip_to_limits(_as_env_array(targets, self.num_envs, hand.NUM_JOINTS, "targets"))
        self._targets = t.copy()
        return t

    def step(self) -> None:
        """Advance every world by one 50 ms control tick."""
        ids = np.arange(self.num_envs)
        if self.config.actuation == "pd_torque" and self.substep_trace is None:
            if self._shared is None:
                shareable = self.num_envs > 1 and _SharedModelStepper.compatible(self.models)
                self._shared = _SharedModelStepper(self.models, self._threads) if shareable else False
            if self._shared:
                self._shared_tick()
            else:
                self._rollout_tick()
        elif self.config.actuation == "servo":
            # the servo law needs Python between physics steps: run it once for all worlds, vectorized,
            # and let the pool do only the GIL-free physics
            self._advance(ids, self._targets, self._previous_targets, pool=self._pool)
            self._run(self._observe, ids)
        else:
            self._run(self._tick, ids)
        self._previous_targets = self._targets.copy()

    def _rollout_tick(self) -> None:
        """One control tick of every source world as one mujoco.rollout call (targets and applied forces as
        its controls); the observation is read from its state and sensor outputs, vectorized. The MjData
        catch up only when something reads `datas`. The solver warm start is not carried across ticks
        (rollout does not return it; trajectories match mj_step's to ~1e-10 rad over 40 ticks)."""
        n, substeps, nu = self.num_envs, self.config.substeps, hand.NUM_JOINTS
        m0 = self.models[0]
        if self._rollout is None:
            self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
            self._control_spec = mujoco.mjtState.mjSTATE_CTRL | mujoco.mjtState.mjSTATE_XFRC_APPLIED
            self._control_buf = np.empty((n, substeps, mujoco.mj_stateSize(m0, self._control_spec)))
            threads = self._threads if self._threads > 1 and n > 1 else 0
            self._scratch = [mujoco.MjData(m0) for _ in range(max(threads, 1))]
            nstate = mujoco.mj_stateSize(m0, self._state_spec)
            self._states_out = np.empty((n, substeps, nstate))
            self._sensors_out = np.empty((n, substeps, m0.nsensordata))
            self._rollout = mj_rollout.Rollout(nthread=threads)
            act = self._act_ids
            self._pd_kp = np.stack([m.actuator_gainprm[act, 0] for m in self.models])
            self._pd_kv = np.stack([-m.actuator_biasprm[act, 2] for m in self.models])
            self._pd_limit = np.stack([m.actuator_forcerange[act, 1] for m in self.models])
        start = self.physics_state()
        self._control_buf[:, :, :nu] = self._targets[:, None, :]  # targets and forces hold for the whole tick
        self._control_buf[:, :, nu:] = self._xfrc.reshape(n, 1, -1)
        self._rollout.rollout(self.models, self._scratch, start, self._control_buf,
                              control_spec=self._control_spec, nstep=substeps, state=self._states_out,
                              sensordata=self._sensors_out, skip_checks=True)
        nq, nv = m0.nq, m0.nv
        final = self._states_out[:, -1]
        # the PD force of the last physics step, from the state it started from (what actuator_force holds)
        before = self._states_out[:, -2] if substeps > 1 else start
        q0 = before[:, 1:1 + nq][:, self._qadr]
        qdot0 = before[:, 1 + nq:1 + nq + nv][:, self._vadr]
        self._effort[:] = np.clip(self._pd_kp * (self._targets - q0) - self._pd_kv * qdot0, -self._pd_limit, self._pd_limit)
        self._phys_state[:] = final
        self._stale[:] = True
        self._observe_state(final, self._sensors_out[:, -1])

    def _shared_tick(self) -> None:
        """One control tick of every source world on the shared-model stepper; the observation as in
        _rollout_tick."""
        st = self._shared
        st.load(np.flatnonzero(self._reload), self._datas)
        self._reload[:] = False
        st.tick(self._targets, self._xfrc, self.config.substeps)
        self._phys_state = st.full_state()
        self._touched[:] = False
        self._stale[:] = True
        self._effort[:] = st.actuator_force[:, self._act_ids]
        self._observe_state(self._phys_state, st.sensordata)

    def _observe_state(self, final: np.ndarray, sensors: np.ndarray) -> None:
        """The observation from every world's FULLPHYSICS state [N, nstate] and sensor outputs [N, nsensordata]
        (fingertips from the sensors of the last physics step, as site_xpos after mj_step)."""
        n, nq = self.num_envs, self.models[0].nq
        self._time[:] = final[:, 0]
        self._raw_qpos[:] = final[:, 1:1 + self._obs_nq]
        self._raw_qvel[:] = final[:, 1 + nq:1 + nq + self._obs_nv]
        self._q[:] = self._raw_qpos[:, self._qadr]
        self._qdot[:] = self._raw_qvel[:, self._vadr]
        self._fingertips[:] = sensors[:, self._tip_sensors].reshape(n, 4, 3)
        if self._has_object:
            a, v = self._obj_qadr, self._obj_vadr
            wxyz = self._raw_qpos[:, a + 3:a + 7]
            self._object_pose[:, :3] = self._raw_qpos[:, a:a + 3]
            self._object_pose[:, 3:] = wxyz[:, [1, 2, 3, 0]]
            self._object_linvel[:] = self._raw_qvel[:, v:v + 3]
            self._object_angvel[:] = _rotate_wxyz(wxyz, self._raw_qvel[:, v + 3:v + 6])  # body frame -> world

    def _d(self, i: int) -> mujoco.MjData:
        """World i's MjData for code that reads or changes it: brought up to date with the last tick, and
        marked as the place the next tick reads that world's state from."""
        if self._stale[i]:
            if self._shared:  # its whole integration state, warm start included
                self._shared.store(i, self._datas[i])
            else:
                mujoco.mj_setState(self.models[i], self._datas[i], self._phys_state[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
            mujoco.mj_kinematics(self.models[i], self._datas[i])
            self._stale[i] = False
        if self._xfrc_dirty[i]:
            self._datas[i].xfrc_applied[:] = self._xfrc[i]
            self._xfrc_dirty[i] = False
        self._touched[i] = True
        self._reload[i] = True
        return self._datas[i]

    @property
    def datas(self) -> list[mujoco.MjData]:
        """Each world's MjData, brought up to date with the last tick (kinematics included). Reading it
        hands the state to the caller: the next tick starts from whatever the MjData then hold."""
        return [self._d(i) for i in range(self.num_envs)]

    @property
    def shared_stepper(self) -> _SharedModelStepper | None:
        """The source world's shared-model stepper once a tick has made it; None before, or where the worlds'
        models differ in structure and mujoco.rollout steps them."""
        return self._shared or None

    def physics_state(self) -> np.ndarray:
        """[N, nstate] each world's mjSTATE_FULLPHYSICS state now (time, qpos, qvel, ...), read from the
        MjData only for worlds something touched since the last tick."""
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        if self._phys_state is None:
            self._phys_state = np.empty((self.num_envs, mujoco.mj_stateSize(self.models[0], spec)))
            self._touched[:] = True
        for i in np.flatnonzero(self._touched):
            mujoco.mj_getState(self.models[i], self._datas[i], self._phys_state[i], spec)
        self._touched[:] = False
        return self._phys_state.copy()

    def set_object_force(self, force) -> None:
        """Apply a constant force (N, world frame, [N, 3] or [3]) at each object's centre of mass until
        changed (the paper's disturbance forces); zero to remove. Ignored without an object."""
        f = _as_env_array(force, self.num_envs, 3, "object force")
        if not self._has_object:
            return
        self._xfrc[:, self._obj_body, :3] = f
        self._xfrc_dirty[:] = True

    def fingertip_contacts(self) -> np.ndarray:
        """[N, 4] bool: whether each fingertip pad (index, middle, ring, thumb) touches something other
        than the hand (the object or a ball) right now."""
        out = np.zeros((self.num_envs, 4), dtype=bool)
        for i, d in enumerate(self.datas):
            if d.ncon == 0:
                continue
            pairs = d.contact.geom[:d.ncon]
            for k, tip in enumerate(self._tip_geoms):
                out[i, k] = bool(np.any(pairs == tip))
        return out

    def object_fallen(self) -> np.ndarray:
        """[N] bool: the object's centre is more than FALL_DISTANCE from the grasp spot (always False without object)."""
        if not self._has_object:
            return np.zeros(self.num_envs, dtype=bool)
        return np.linalg.norm(self._object_pose[:, :3] - self._spot, axis=1) > FALL_DISTANCE

    def close(self) -> None:
        """Stop the thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _env_ids(self, env_ids) -> np.ndarray:
        if env_ids is None:
            return np.arange(self.num_envs)
        ids = np.atleast_1d(np.asarray(env_ids))
        if ids.dtype == bool:
            if ids.shape != (self.num_envs,):
                raise ValueError(f"a boolean env mask needs {self.num_envs} entries, got {ids.shape[0]}")
            ids = np.flatnonzero(ids)
        ids = ids.astype(int)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env ids must lie in 0..{self.num_envs - 1}, got {ids.tolist()}")
        return ids

    @property
    def q(self) -> np.ndarray:
        """[N, 16] joint angles, rad."""
        return self._q.copy()

    @property
    def qdot(self) -> np.ndarray:
        """[N, 16] joint velocities, rad/s."""
        return self._qdot.copy()

    @property
    def targets(self) -> np.ndarray:
        """[N, 16] the joint targets applied in the next tick, rad."""
        return self._targets.copy()

    @property
    def joint_effort(self) -> np.ndarray:
        """[N, 16]: actuator torque (N m) in a pd_torque world, servo current (A) in a servo world."""
        return self._effort.copy()

    @property
    def object_pose(self) -> np.ndarray:
        """[N, 7] object position (m) and quaternion x y z w, world frame."""
        return self._object_pose.copy()

    @property
    def object_linvel(self) -> np.ndarray:
        """[N, 3] object linear velocity, world frame, m/s."""
        return self._object_linvel.copy()

    @property
    def object_angvel(self) -> np.ndarray:
        """[N, 3] object angular velocity, world frame, rad/s."""
        return self._object_angvel.copy()

    @property
    def fingertip_pos(self) -> np.ndarray:
        """[N, 4, 3] fingertip sites (index, middle, ring, thumb), world frame, m."""
        return self._fingertips.copy()

    @property
    def grasp_spot(self) -> np.ndarray:
        """[N, 3] the grasp spot (where objects are placed) in the world frame, m."""
        return self._spot.copy()

    @property
    def wrist_quat(self) -> np.ndarray:
        """[N, 4] wrist (palm frame) orientation, x y z w."""
        return self._wrists.copy()

    @property
    def time(self) -> np.ndarray:
        """[N] simulated time since the last reset, s."""
        return self._time.copy()

    @property
    def control_dt(self) -> float:
        """Seconds per control tick."""
        return self.config.timestep * self.config.substeps
