"""The two simulated worlds as one dataclass: every source-vs-target difference is a named field.

Source world (training, the paper's simulator): ideal PD torque `tau = Kp (q_tar - q) - Kd qdot`,
clipped to +-torque_limit, evaluated every physics step (120 Hz, 6 per 50 ms control tick).

Target world (stands in for the real hand): a servo model of the XC330-M288-T in current-based
position control, per joint, evaluated every physics step (equations and units in docs/SIM.md):

    e      = deadband(q_tar(t - delay) - q, backlash / 2)           rad
    I_cmd  = c_p * (P / 128) * e / RAD_PER_TICK
             - c_d * (D / 16) * qdot * d_time_base / RAD_PER_TICK   A
    I      = clip(I_cmd, -current_limit, current_limit)              A
    tau    = clip(k_t * I, speed-limited torque)                     N m

with P = 800, D = 200 (0.75 x on the abduction motors, `hand.servo_gains`), plus joint Coulomb
friction (gear friction), viscous damping and reflected rotor inertia (armature) in MuJoCo.
Use `WorldConfig.source()`, `WorldConfig.target()` or `dataclasses.replace(...)` for variants.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from dexndm_description import hand

#: Scenes a world can hold: one object in the grasp, the Chaos Box of soft balls, or the bare hand.
SCENES: tuple[str, ...] = ("grasp", "chaos_box", "hand_only")
PHYSICS_HZ = 120.0
SUBSTEPS = int(round(PHYSICS_HZ * hand.CONTROL_DT))  # 6 physics steps per control tick


def _servo_gain_arrays() -> tuple[np.ndarray, np.ndarray]:
    gains = [hand.servo_gains(i) for i in range(hand.NUM_JOINTS)]
    return np.array([g[0] for g in gains], dtype=float), np.array([g[2] for g in gains], dtype=float)


@dataclass(frozen=True)
class WorldConfig:
    """Physics and actuation of one world. Units: s, rad, N m, A, kg m^2."""

    name: str
    #: "pd_torque" (ideal PD on torque) or "servo" (XC330 current-based position control model).
    actuation: str
    #: Physics step (s); the PD / servo law is evaluated once per step.
    timestep: float = 1.0 / PHYSICS_HZ
    #: Physics steps per 50 ms control tick.
    substeps: int = SUBSTEPS
    # --- ideal PD (source) ---
    #: Proportional gains, N m / rad, motor-ID order (paper Table 11).
    pd_kp: np.ndarray = field(default_factory=lambda: hand.SIM_KP.copy())
    #: Derivative gains, N m s / rad, motor-ID order.
    pd_kd: np.ndarray = field(default_factory=lambda: hand.SIM_KD.copy())
    #: Symmetric torque clip of the PD law, N m (the LEAP URDF effort limit).
    torque_limit: float = 0.95
    # --- servo (target) ---
    #: Position P gain in servo units, motor-ID order (800, 600 on abduction).
    servo_p: np.ndarray = field(default_factory=lambda: _servo_gain_arrays()[0])
    #: Position D gain in servo units, motor-ID order (200, 150 on abduction).
    servo_d: np.ndarray = field(default_factory=lambda: _servo_gain_arrays()[1])
    #: Current per unit of (P / 128) x error in ticks, A (the servo's current unit, ~1 mA).
    servo_current_per_p_unit: float = 0.001
    #: Current per unit of (D / 16) x velocity in ticks per `servo_d_time_base`, A.
    servo_current_per_d_unit: float = 0.001
    #: Time base of the servo's velocity estimate, s (ticks per this interval enter the D term).
    servo_d_time_base: float = 0.01
    #: Goal Current, the current limit of current-based position control, A.
    current_limit: float = hand.SERVO_CURRENT_LIMIT_MA / 1000.0
    #: Output torque per motor current, N m / A (stall 0.93 N m at 1.8 A, 5 V).
    torque_constant: float = 0.93 / 1.8
    #: Output speed at which no torque is left in the direction of motion (no-load speed), rad/s.
    no_load_speed: float = 93.0 * 2.0 * np.pi / 60.0
    #: Stall torque at the supply voltage, N m; the speed-limited torque falls linearly from it.
    stall_torque: float = 0.93
    #: Total gear play; the position error inside +-backlash/2 produces no current, rad.
    backlash: float = 0.0
    #: Physics steps between a new target and the servo acting on it (transport delay).
    delay_substeps: int = 0
    # --- joints (both) ---
    #: Reflected rotor inertia per joint, kg m^2.
    armature: float = 0.001
    #: Viscous joint damping, N m s / rad.
    damping: float = 0.0
    #: Coulomb joint friction (gear friction), N m.
    frictionloss: float = 0.0
    #: Multiplies the mass and inertia of the link each joint moves (motor-ID order; 1 = LEAP_HAND.md masses).
    #: System identification (`dexndm-train sysid`, training/) fits it with pd_kp and pd_kd.
    link_mass_scale: np.ndarray = field(default_factory=lambda: np.ones(hand.NUM_JOINTS))
    # --- contacts (both) ---
    #: MuJoCo contact solref (time constant s, damping ratio) of hand and object geoms. MuJoCo raises
    #: time constants below 2 x timestep (16.7 ms) to that, so stiffer is not available at 120 Hz.
    solref: tuple[float, float] = (0.02, 1.0)
    #: MuJoCo contact solimp (dmin, dmax, width m, midpoint, power).
    solimp: tuple[float, float, float, float, float] = (0.9, 0.95, 0.001, 0.5, 2.0)
    #: Contact dimensionality: 3 = sliding friction, 4 = plus torsional friction.
    condim: int = 3
    #: Finger-finger contacts a real hand has and the hand's contype/conaffinity bits leave out: the
    #: thumb's distal link against the index and middle distal links, neighbouring fingertips (scene.py
    #: SELF_COLLISION_PAIRS). False gives the hand without self-collision.
    self_collision: bool = True
    #: Torsional friction coefficient (m), used when condim >= 4.
    torsional_friction: float = 0.0
    #: Multiplies the object's sampled sliding friction (fingertip material).
    friction_scale: float = 1.0
    #: Sliding friction of the hand's own geoms (palm, links, tips; the object's friction wins contacts
    #: with the object because object geoms have higher priority).
    hand_friction: float = 1.0
    #: Gravity magnitude along world -z, m/s^2.
    gravity: float = 9.81

    def __post_init__(self):
        if self.actuation not in ("pd_torque", "servo"):
            raise ValueError(f"actuation must be 'pd_torque' or 'servo', got {self.actuation!r}")
        if not 0 <= self.delay_substeps < self.substeps:
            raise ValueError(f"delay_substeps must lie in 0..{self.substeps - 1} (a fraction of a tick)")
        for name in ("pd_kp", "pd_kd", "servo_p", "servo_d", "link_mass_scale"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (hand.NUM_JOINTS,):
                raise ValueError(f"{name} must hold 16 values in motor-ID order, got shape {value.shape}")
            object.__setattr__(self, name, value)
        if not np.all(np.isfinite(self.link_mass_scale) & (self.link_mass_scale > 0)):
            raise ValueError(f"link_mass_scale must be positive and finite, got {self.link_mass_scale.tolist()}")

    @classmethod
    def source(cls) -> "WorldConfig":
        """The training world: ideal PD torque, no friction, no delay, default soft contacts."""
        return cls(name="source", actuation="pd_torque")

    @classmethod
    def target(cls) -> "WorldConfig":
        """The stand-in for the real hand: XC330 servo model, gear friction, backlash, delay, other contacts."""
        return cls(
            name="target",
            actuation="servo",
            backlash=np.deg2rad(0.6),
            delay_substeps=2,
            armature=0.002,
            damping=0.01,
            frictionloss=0.008,
            solref=(0.017, 0.7),
            solimp=(0.95, 0.99, 0.002, 0.5, 2.0),
            condim=4,
            torsional_friction=0.002,
            friction_scale=0.8,
            hand_friction=0.8,
        )

    @classmethod
    def named(cls, name: str) -> "WorldConfig":
        """`source` or `target`; ValueError otherwise."""
        if name == "source":
            return cls.source()
        if name == "target":
            return cls.target()
        raise ValueError(f"unknown world {name!r}; choose 'source' or 'target'")

    def replace(self, **changes) -> "WorldConfig":
        """A copy with some fields changed (a variant world)."""
        return dataclasses.replace(self, **changes)

    def servo_stiffness(self) -> np.ndarray:
        """Small-error servo stiffness per joint, N m / rad (outside the backlash, below the current limit)."""
        return self.torque_constant * self.servo_current_per_p_unit * self.servo_p / 128.0 / hand.RAD_PER_TICK

    def servo_damping(self) -> np.ndarray:
        """Servo velocity gain per joint, N m s / rad."""
        return (self.torque_constant * self.servo_current_per_d_unit * self.servo_d / 16.0
                * self.servo_d_time_base / hand.RAD_PER_TICK)


def servo_current(cfg: WorldConfig, target: np.ndarray, q: np.ndarray, qdot: np.ndarray) -> np.ndarray:
    """Commanded motor current (A), [..., 16]: deadbanded position error and velocity in servo units."""
    err = target - q
    half = 0.5 * cfg.backlash
    err = np.sign(err) * np.maximum(np.abs(err) - half, 0.0)
    ticks = err / hand.RAD_PER_TICK
    vel_ticks = qdot * cfg.servo_d_time_base / hand.RAD_PER_TICK
    current = (cfg.servo_current_per_p_unit * cfg.servo_p / 128.0 * ticks
               - cfg.servo_current_per_d_unit * cfg.servo_d / 16.0 * vel_ticks)
    return np.clip(current, -cfg.current_limit, cfg.current_limit)


def servo_torque(cfg: WorldConfig, current: np.ndarray, qdot: np.ndarray) -> np.ndarray:
    """Output torque (N m) for a motor current (A): k_t I, limited by the motor's torque-speed line.

    Driving along the motion the torque cannot exceed stall_torque * (1 - |qdot| / no_load_speed);
    braking against the motion it is limited by the stall torque only.
    """
    tau = cfg.torque_constant * current
    speed_room = np.clip(1.0 - np.abs(qdot) / cfg.no_load_speed, 0.0, 1.0) * cfg.stall_torque
    along = np.sign(tau) == np.sign(qdot)
    limit = np.where(along, speed_room, cfg.stall_torque)
    return np.clip(tau, -limit, limit)


def pd_torque(cfg: WorldConfig, target: np.ndarray, q: np.ndarray, qdot: np.ndarray) -> np.ndarray:
    """The source world's law, tau = Kp (q_tar - q) - Kd qdot clipped to +-torque_limit (N m)."""
    return np.clip(cfg.pd_kp * (target - q) - cfg.pd_kd * qdot, -cfg.torque_limit, cfg.torque_limit)
