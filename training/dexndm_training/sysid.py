"""System identification (paper App. C): fit the source world's PD model to a reference world's joints.

1. **Probe.** A fixed target sequence is replayed on the free hand (`scene="hand_only"`) of the reference
   world (the target world, standing in for the real hand) under each probe wrist, and the joint angles are
   recorded at every 50 ms tick. The probe moves one joint per finger at a time (slot k = the k-th joint of
   every finger: the fingers are independent chains on a fixed palm, so four joints can be probed at once
   without coupling as long as no two fingers touch): square waves (step responses), then sines; it ends
   with small whole-hand sines. A slot's joints follow one waveform, so neighbouring fingers move in
   parallel, and the probe is checked to be free of finger-finger contact (`self_contact_ticks`). See
   `ProbeConfig`.
2. **Search.** Per joint: Kp (N m/rad), Kd (N m s/rad) and the mass of the link the joint moves, searched
   as log-scales of the starting source model, by the cross-entropy method over `population` candidate
   models stepped together in one `BatchedHandSim` (each world's MjModel gets its candidate's gains and
   masses). A joint's three numbers are ranked by that joint's own mean |q_candidate - q_reference| over
   the probe (plus a small prior holding the masses at LEAP_HAND.md's, `mass_prior`), so 16 small searches
   share every simulated candidate (a joint's error depends mostly on its
   own parameters and those of the links beyond it, which their own joints fit). Candidate 0 is the
   current mean, candidate 1 the best seen so far; the best is kept per finger (without contact the fingers
   are independent, so per-finger bests combine into one model whose error is their sum).
3. **Result.** `OUT/sysid.json`: the identified `pd_kp`, `pd_kd`, `link_mass_scale`, the nominal values
   and the match error before / after (mean absolute joint error over the probe, rad), checked by
   re-simulating the probe in the world `identified_world(OUT/sysid.json)` builds (a `WorldConfig` any
   `BatchedHandSim` or `EnvConfig` consumer takes: the "sysid-ed source world" baseline).

Crash-safe: the recorded reference (`reference.npz`) and the search state (`search_state.npz`) are
written atomically every iteration; running again with the same settings resumes (more iterations extend
the search), other settings are refused unless `fresh=True`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from dexndm_description import hand, mjcf
from dexndm_description import scene as scenes
from dexndm_description.sim import BatchedHandSim
from dexndm_description.worlds import WorldConfig
from dexndm_description.wrist import parse_wrist

NUM_JOINTS = hand.NUM_JOINTS
#: Rows of a parameter array [3, 16]: Kp (N m/rad), Kd (N m s/rad), link mass scale (x LEAP_HAND.md).
PARAMETERS = ("kp", "kd", "mass_scale")
#: Joints probed together: slot k moves the k-th joint of every finger (motor IDs k, 4+k, 8+k, 12+k).
SLOTS = tuple(tuple(4 * f + k for f in range(4)) for k in range(4))
#: Motor IDs of each finger (index, middle, ring, thumb).
FINGERS = tuple(list(range(4 * f, 4 * f + 4)) for f in range(4))
RESULT_FILE, REFERENCE_FILE, STATE_FILE, HISTORY_FILE = "sysid.json", "reference.npz", "search_state.npz", "history.json"
RESULT_KIND = "dexndm_sysid"


@dataclass(frozen=True)
class ProbeConfig:
    """The probing trajectory about a rest pose: per slot a square wave then a sine (one waveform for the
    slot's four joints, amplitude and frequency drawn per slot), then whole-hand sines (random phases).
    Angles rad, Hz."""

    square_ticks: int = 40
    sine_ticks: int = 40
    whole_hand_ticks: int = 60
    #: Square wave amplitude about the rest pose (rad); errors above ~0.09 rad saturate the target's servos.
    square_amplitude: tuple[float, float] = (0.1, 0.3)
    square_hz: float = 1.0
    sine_amplitude: tuple[float, float] = (0.3, 0.6)
    sine_hz: tuple[float, float] = (0.4, 1.0)
    whole_hand_amplitude: float = 0.1
    whole_hand_hz: tuple[float, float] = (0.5, 1.5)
    #: Abduction moves at this fraction of the waveform: neighbouring fingertips are ~26 mm apart at mid-range.
    abduction_scale: float = 0.4
    #: The thumb's CMC joint rests here (rad; the rest of the rest pose is mid-range), away from the index tip.
    thumb_cmc_rest: float = 0.4
    seed: int = 0

    def __post_init__(self):
        if min(self.square_ticks, self.sine_ticks, self.whole_hand_ticks) < 0 or self.ticks() < 2:
            raise ValueError("probe segment lengths must be >= 0 ticks and add up to at least 2 ticks")

    def ticks(self) -> int:
        return len(SLOTS) * (self.square_ticks + self.sine_ticks) + self.whole_hand_ticks

    def rest_pose(self) -> np.ndarray:
        rest = hand.MID.copy()
        rest[hand.JOINT_NAMES.index("th_cmc")] = self.thumb_cmc_rest
        return hand.clip_to_limits(rest)


@dataclass(frozen=True)
class SysIdConfig:
    """Settings of the search (the probe and the wrists it runs under included)."""

    wrists: tuple[str, ...] = ("palm_up", "thumb_up")  # wrist orientations the probe runs under
    population: int = 64  # candidate models simulated per iteration
    iterations: int = 20  # CEM iterations (a resumed run extends to this)
    elite_fraction: float = 0.2
    #: Weight of the previous mean/std in each CEM update.
    smoothing: float = 0.2
    #: Initial std of log(Kp / Kp_start), log(Kd / Kd_start) and log(mass scale / start).
    init_std: tuple[float, float, float] = (0.5, 0.5, 0.3)
    min_std: float = 0.01
    #: Allowed scale against the starting model: Kp and Kd, link masses.
    gain_bounds: tuple[float, float] = (0.1, 10.0)
    mass_bounds: tuple[float, float] = (0.25, 4.0)
    #: Prior on the link masses (known from LEAP_HAND.md), rad of match error per (log mass scale)^2, added
    #: to a joint's score: at 20 Hz scaling Kp, Kd and the masses together barely changes the trajectory, and
    #: the prior picks the known masses along that valley (10 % off costs 0.09 mrad).
    mass_prior: float = 0.01
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    seed: int = 0

    def __post_init__(self):
        if not self.wrists:
            raise ValueError("give at least one probe wrist (e.g. palm_up)")
        for w in self.wrists:
            parse_wrist(w)  # ValueError naming the accepted wrists
        if self.population < 4:
            raise ValueError(f"population must be >= 4 candidate models, got {self.population}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 0.0 < self.elite_fraction < 1.0 or not 0.0 <= self.smoothing < 1.0:
            raise ValueError("elite_fraction must lie in (0, 1) and smoothing in [0, 1)")
        for lo, hi in (self.gain_bounds, self.mass_bounds):
            if not 0.0 < lo < 1.0 < hi:
                raise ValueError(f"bounds must bracket 1 (the starting model), got ({lo}, {hi})")

    def fingerprint(self) -> dict:
        """What must match to resume: everything but the iteration count."""
        d = asdict(self)
        d.pop("iterations")
        return json.loads(json.dumps(d))


def world_dict(cfg: WorldConfig) -> dict:
    """A WorldConfig as plain JSON values."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(cfg).items()}


# ------------------------------------------------------------------------------------------- probe
def probe_targets(cfg: ProbeConfig) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Targets [T, 16] (rad, clipped to the limits) and segments (label, first tick, end tick)."""
    rng = np.random.default_rng([cfg.seed, 0x5151D])
    dt = hand.CONTROL_DT
    parts, segments, start = [], [], 0

    def add(label: str, block: np.ndarray) -> None:
        nonlocal start
        if len(block):
            parts.append(block)
            segments.append((label, start, start + len(block)))
            start += len(block)

    rest = cfg.rest_pose()
    gain = np.ones(NUM_JOINTS)
    gain[list(hand.ABDUCTION_IDS)] = cfg.abduction_scale
    for k, joints in enumerate(SLOTS):
        idx = list(joints)
        t = np.arange(cfg.square_ticks)[:, None] * dt
        wave = rng.uniform(*cfg.square_amplitude) * np.sign(np.sin(2 * np.pi * cfg.square_hz * t + 1e-6))
        block = np.tile(rest, (cfg.square_ticks, 1))
        block[:, idx] += gain[idx] * wave
        add(f"square slot {k}", block)
        t = np.arange(cfg.sine_ticks)[:, None] * dt
        wave = rng.uniform(*cfg.sine_amplitude) * np.sin(2 * np.pi * rng.uniform(*cfg.sine_hz) * t)
        block = np.tile(rest, (cfg.sine_ticks, 1))
        block[:, idx] += gain[idx] * wave
        add(f"sine slot {k}", block)
    t = np.arange(cfg.whole_hand_ticks)[:, None] * dt
    hz = rng.uniform(*cfg.whole_hand_hz, size=NUM_JOINTS)
    phase = rng.uniform(0, 2 * np.pi, size=NUM_JOINTS)
    add("whole hand", rest + gain * cfg.whole_hand_amplitude * np.sin(2 * np.pi * hz * t + phase))
    return hand.clip_to_limits(np.concatenate(parts)), segments


def self_contact_ticks(world: WorldConfig | str, q: np.ndarray) -> int:
    """How many of the poses q [..., 16] (rad) put two parts of the hand in contact, by the contact pairs of
    `world` (kinematics and collision detection only)."""
    cfg = world if isinstance(world, WorldConfig) else WorldConfig.named(world)
    model = mujoco.MjModel.from_xml_string(scenes.scene_xml(cfg, "hand_only", parse_wrist("palm_down")))
    data = mujoco.MjData(model)
    adr = np.array([model.jnt_qposadr[model.joint(name).id] for name in hand.JOINT_NAMES])
    touching = 0
    for pose in np.asarray(q, dtype=float).reshape(-1, NUM_JOINTS):
        data.qpos[adr] = pose
        mujoco.mj_kinematics(model, data)
        mujoco.mj_collision(model, data)
        touching += int(data.ncon > 0)
    return touching


def record_probe(world: WorldConfig | str, targets: np.ndarray, wrists, threads: int = 2) -> np.ndarray:
    """Replay targets [T, 16] on the free hand of `world` under each wrist; q after every tick [W, T, 16] rad.

    The hand starts at rest at the first target."""
    targets = _check_targets(targets)
    wrists = list(wrists)
    with BatchedHandSim(num_envs=len(wrists), world=world, scene="hand_only", wrist=wrists, object=None,
                        threads=threads, randomize=False) as sim:
        return _replay(sim, targets).reshape(len(wrists), len(targets), NUM_JOINTS)


def _check_targets(targets) -> np.ndarray:
    targets = np.asarray(targets, dtype=float)
    if targets.ndim != 2 or targets.shape[1] != NUM_JOINTS or len(targets) < 2:
        raise ValueError(f"probe targets must have shape [T >= 2, {NUM_JOINTS}], got {list(targets.shape)}")
    if not np.all(np.isfinite(targets)):
        raise ValueError("probe targets hold NaN or inf")
    return targets


def _replay(sim: BatchedHandSim, targets: np.ndarray) -> np.ndarray:
    """q of every world after each tick [N, T, 16] for targets [T, 16], from rest at targets[0]."""
    sim.reset(q=targets[0])
    out = np.empty((sim.num_envs, len(targets), NUM_JOINTS))
    for t, target in enumerate(targets):
        sim.set_targets(target)
        sim.step()
        out[:, t] = sim.q
    return out


def joint_errors(q: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean |q - reference| per joint over wrists and ticks (rad): q [..., W, T, 16], reference [W, T, 16]."""
    return np.mean(np.abs(q - reference), axis=(-3, -2))


# ------------------------------------------------------------------------------------------- candidates
class CandidateWorlds:
    """`population` candidate source models x the probe wrists, stepped together in one BatchedHandSim.

    Each world's MjModel is given its candidate's Kp, Kd (the position actuator's gain and bias) and link
    masses (mass and inertia scaled together, as WorldConfig.link_mass_scale does in the MJCF), then
    mj_setConst. Trajectories match a world compiled from that WorldConfig to ~2e-4 rad (the constraint
    weights mj_setConst derives differ slightly from the compiler's, which matters at joint limits only);
    the reported match error is always re-simulated in the compiled world."""

    def __init__(self, start: WorldConfig, population: int, wrists, threads: int = 2):
        if start.actuation != "pd_torque":
            raise ValueError(f"sysid fits the source world's ideal PD model; world {start.name!r} has actuation "
                             f"{start.actuation!r}: start from WorldConfig.source() or a pd_torque variant")
        self.start, self.population, self.wrists = start, int(population), list(wrists)
        self.sim = BatchedHandSim(num_envs=self.population * len(self.wrists), world=start, scene="hand_only",
                                  wrist=self.wrists * self.population, object=None, threads=threads, randomize=False)
        m = self.sim.models[0]
        self._actuators = np.array([m.actuator(name).id for name in hand.JOINT_NAMES])
        self._bodies = np.array([m.body(mjcf.link_body_of_joint(name)).id for name in hand.JOINT_NAMES])
        #: LEAP_HAND.md mass (kg) of the link each joint moves, and its inertia (the start world's scale divided out)
        self.link_mass = m.body_mass[self._bodies] / start.link_mass_scale
        self._inertia = m.body_inertia[self._bodies] / start.link_mass_scale[:, None]

    def simulate(self, params: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Joint trajectories [P, W, T, 16] of candidate parameters [P, 3, 16] (kp, kd, mass scale)."""
        params = np.asarray(params, dtype=float)
        if params.shape != (self.population, len(PARAMETERS), NUM_JOINTS):
            raise ValueError(f"parameters must have shape {[self.population, len(PARAMETERS), NUM_JOINTS]}, "
                             f"got {list(params.shape)}")
        w = len(self.wrists)
        for i, (m, d) in enumerate(zip(self.sim.models, self.sim.datas)):
            kp, kd, scale = params[i // w]
            m.actuator_gainprm[self._actuators, 0] = kp
            m.actuator_biasprm[self._actuators, 1] = -kp
            m.actuator_biasprm[self._actuators, 2] = -kd
            m.body_mass[self._bodies] = self.link_mass * scale
            m.body_inertia[self._bodies] = self._inertia * scale[:, None]
            mujoco.mj_setConst(m, d)
        q = _replay(self.sim, _check_targets(targets))
        return q.reshape(self.population, w, len(targets), NUM_JOINTS)

    def close(self) -> None:
        self.sim.close()


def start_parameters(world: WorldConfig) -> np.ndarray:
    """[3, 16] Kp, Kd and link mass scale of a pd_torque world."""
    return np.stack([world.pd_kp, world.pd_kd, world.link_mass_scale]).astype(float)


def parameters_world(world: WorldConfig, params: np.ndarray, name: str = "sysid") -> WorldConfig:
    """`world` with Kp, Kd and link mass scales [3, 16] replaced."""
    kp, kd, scale = np.asarray(params, dtype=float)
    return world.replace(name=name, pd_kp=kp, pd_kd=kd, link_mass_scale=scale)


# ------------------------------------------------------------------------------------------- search
def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _reference(out: Path, reference: WorldConfig, cfg: SysIdConfig, threads: int, fresh: bool) -> tuple[np.ndarray, np.ndarray]:
    """The probe targets and the reference world's recorded joints, from out/reference.npz when it matches."""
    targets, _ = probe_targets(cfg.probe)
    key = json.dumps({"reference": world_dict(reference), "wrists": list(cfg.wrists), "probe": asdict(cfg.probe)},
                     sort_keys=True)
    path = out / REFERENCE_FILE
    if path.exists() and not fresh:
        saved = np.load(path)
        if str(saved["key"]) == key:
            return saved["targets"], saved["q"]
        raise ValueError(f"{path} was recorded with another reference world, probe or wrists; pass a new output "
                         "directory, or --fresh to start over there")
    q = record_probe(reference, targets, cfg.wrists, threads)
    if not np.all(np.isfinite(q)):
        raise RuntimeError(f"the reference world {reference.name!r} produced NaN joint angles on the probe")
    _atomic_savez(path, targets=targets, q=q, key=np.array(key))
    return targets, q


def identify(out: str | os.PathLike, reference: WorldConfig | str = "target", start: WorldConfig | None = None,
             cfg: SysIdConfig | None = None, threads: int = 2, fresh: bool = False, progress: bool = True) -> dict:
    """Fit `start`'s (default: the source world's) Kp, Kd and link masses to `reference`'s probe trajectories.

    Resumes from out/ when the settings match (see the module doc); returns the sysid.json contents."""
    cfg = cfg or SysIdConfig()
    reference = reference if isinstance(reference, WorldConfig) else WorldConfig.named(reference)
    start = start or WorldConfig.source()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.time()
    targets, q_ref = _reference(out, reference, cfg, threads, fresh)
    base = start_parameters(start)
    log_lo = np.log(np.array([cfg.gain_bounds[0], cfg.gain_bounds[0], cfg.mass_bounds[0]]))[:, None]
    log_hi = np.log(np.array([cfg.gain_bounds[1], cfg.gain_bounds[1], cfg.mass_bounds[1]]))[:, None]
    fingerprint = json.dumps({"search": cfg.fingerprint(), "start": world_dict(start),
                              "reference": world_dict(reference)}, sort_keys=True)
    state_path = out / STATE_FILE
    if state_path.exists() and not fresh:
        state = np.load(state_path)
        if str(state["fingerprint"]) != fingerprint:
            raise ValueError(f"{state_path} belongs to a search with other settings; pass a new output directory, "
                             "or --fresh to start over there")
        mean, std, best, best_err = state["mean"], state["std"], state["best"], state["best_err"]
        best_score = state["best_score"]
        err_before, first, spent = state["err_before"], int(state["iteration"]), float(state["seconds"])
        candidates = int(state["candidates"])
        history = json.loads((out / HISTORY_FILE).read_text()) if (out / HISTORY_FILE).exists() else []
    else:
        mean = np.zeros((len(PARAMETERS), NUM_JOINTS))
        std = np.tile(np.asarray(cfg.init_std, dtype=float)[:, None], (1, NUM_JOINTS))
        best, best_err, err_before = mean.copy(), np.full(NUM_JOINTS, np.inf), None
        best_score = best_err.copy()
        first, spent, candidates, history = 0, 0.0, 0, []
    elites = max(2, round(cfg.population * cfg.elite_fraction))
    worlds = CandidateWorlds(start, cfg.population, cfg.wrists, threads)
    bar = _progress(range(first, cfg.iterations), first, cfg.iterations, progress)
    try:
        for it in bar:
            t0 = time.time()
            rng = np.random.default_rng([cfg.seed, it])
            z = mean + std * rng.normal(size=(cfg.population, len(PARAMETERS), NUM_JOINTS))
            z[0], z[1] = mean, best
            z = np.clip(z, log_lo, log_hi)
            errors = joint_errors(worlds.simulate(base * np.exp(z), targets), q_ref)  # [P, 16]
            if err_before is None:  # iteration 0, candidate 0: the starting model itself
                err_before = errors[0].copy()
            score = errors + cfg.mass_prior * z[:, 2] ** 2  # [P, 16]
            order = np.argsort(score, axis=0)[:elites]  # [elites, 16] per-joint ranking
            elite = np.take_along_axis(z, order[:, None, :], axis=0)  # [elites, 3, 16]
            mean = cfg.smoothing * mean + (1 - cfg.smoothing) * elite.mean(0)
            std = cfg.smoothing * std + (1 - cfg.smoothing) * elite.std(0) + cfg.min_std
            # the best model is kept per finger: fingers are independent chains, so per-finger bests combine
            # into a model whose error is their sum (joints within a finger are not)
            finger_score = score.reshape(cfg.population, 4, 4).sum(-1)
            for f, cand in enumerate(np.argmin(finger_score, axis=0)):
                joints = FINGERS[f]
                if finger_score[cand, f] < best_score[joints].sum():
                    best[:, joints], best_score[joints] = z[cand][:, joints], score[cand, joints]
                    best_err[joints] = errors[cand, joints]
            candidates += cfg.population
            spent += time.time() - t0
            history.append({"iteration": it, "best_err_rad": float(best_err.mean()),
                            "mean_model_err_rad": float(errors[0].mean()),
                            "population_err_rad": float(errors.mean()), "seconds": time.time() - t0})
            _atomic_savez(state_path, mean=mean, std=std, best=best, best_err=best_err, best_score=best_score,
                          err_before=err_before, iteration=it + 1, seconds=spent, candidates=candidates,
                          fingerprint=np.array(fingerprint))
            _atomic_write(out / HISTORY_FILE, json.dumps(history))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(err_mrad=f"{1e3 * best_err.mean():.2f}", before_mrad=f"{1e3 * err_before.mean():.2f}")
    finally:
        worlds.close()
    params = base * np.exp(best)
    identified = parameters_world(start, params)
    err_after = joint_errors(record_probe(identified, targets, cfg.wrists, threads), q_ref)  # the built world itself
    result = {
        "kind": RESULT_KIND, "version": 1, "joint_names": list(hand.JOINT_NAMES),
        "identified": {"pd_kp": params[0].tolist(), "pd_kd": params[1].tolist(), "link_mass_scale": params[2].tolist()},
        "nominal": {"pd_kp": base[0].tolist(), "pd_kd": base[1].tolist(), "link_mass_scale": base[2].tolist()},
        "link_mass_kg": {"nominal": (worlds.link_mass * base[2]).tolist(), "identified": (worlds.link_mass * params[2]).tolist()},
        "err_before_rad": float(err_before.mean()), "err_after_rad": float(err_after.mean()),
        # ticks x wrists of the reference run with two parts of the hand touching (0: the fingers stayed
        # independent, as the per-finger bookkeeping assumes)
        "reference_self_contact_ticks": self_contact_ticks(reference, q_ref),
        "per_joint_err_before_rad": err_before.tolist(), "per_joint_err_after_rad": err_after.tolist(),
        "reference_world": world_dict(reference), "start_world": world_dict(start),
        "search": {**asdict(cfg), "threads": threads}, "iterations_done": max(first, cfg.iterations),
        "candidates": candidates, "probe_ticks": len(targets), "search_seconds": float(spent),
        "seconds": float(time.time() - began),
    }
    _atomic_write(out / RESULT_FILE, json.dumps(result, indent=1))
    return result


def _progress(iterations, first: int, total: int, enabled: bool):
    if not enabled:
        return iterations
    from tqdm import tqdm

    return tqdm(iterations, initial=first, total=total, desc="sysid", unit="iter", dynamic_ncols=True)


# ------------------------------------------------------------------------------------------- results
def load_result(path: str | os.PathLike) -> dict:
    """A sysid.json (or the directory holding it), checked."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `dexndm-train sysid --out DIR` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rerun `dexndm-train sysid`") from None
    if data.get("kind") != RESULT_KIND or data.get("joint_names") != list(hand.JOINT_NAMES):
        raise ValueError(f"{path} is not a sysid result for this joint table (kind {data.get('kind')!r}); "
                         "rerun `dexndm-train sysid`")
    for key in ("pd_kp", "pd_kd", "link_mass_scale"):
        values = np.asarray(data.get("identified", {}).get(key, []), dtype=float)
        if values.shape != (NUM_JOINTS,) or not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"{path}: identified.{key} must hold 16 positive numbers")
    return data


def identified_world(path: str | os.PathLike, base: WorldConfig | None = None) -> WorldConfig:
    """The sysid-ed source world: `base` (default the source world) with the identified Kp, Kd, link masses."""
    found = load_result(path)["identified"]
    params = np.array([found["pd_kp"], found["pd_kd"], found["link_mass_scale"]], dtype=float)
    return parameters_world(base or WorldConfig.source(), params)


def table(result: dict) -> str:
    """The identified parameters per joint against the nominal ones, and the match error, as text."""
    ident, nom = result["identified"], result["nominal"]
    mass_n, mass_i = result["link_mass_kg"]["nominal"], result["link_mass_kg"]["identified"]
    before, after = result["per_joint_err_before_rad"], result["per_joint_err_after_rad"]
    header = (f"{'joint':<7} {'Kp nom':>7} {'Kp id':>7} {'x':>5}  {'Kd nom':>7} {'Kd id':>7} {'x':>5}  "
              f"{'m nom g':>7} {'m id g':>7}  {'err before':>10} {'err after':>9} (mrad)")
    lines = [header]
    for i, name in enumerate(hand.JOINT_NAMES):
        lines.append(f"{name:<7} {nom['pd_kp'][i]:7.3f} {ident['pd_kp'][i]:7.3f} {ident['pd_kp'][i] / nom['pd_kp'][i]:5.2f}  "
                     f"{nom['pd_kd'][i]:7.4f} {ident['pd_kd'][i]:7.4f} {ident['pd_kd'][i] / nom['pd_kd'][i]:5.2f}  "
                     f"{1e3 * mass_n[i]:7.1f} {1e3 * mass_i[i]:7.1f}  {1e3 * before[i]:10.2f} {1e3 * after[i]:9.2f}")
    lines.append(f"match error (mean |q - q_ref| over the probe): {1e3 * result['err_before_rad']:.2f} mrad before, "
                 f"{1e3 * result['err_after_rad']:.2f} mrad after")
    return "\n".join(lines)
