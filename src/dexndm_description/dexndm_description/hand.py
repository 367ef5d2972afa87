"""The LEAP hand's joint table: names, motor IDs, limits, default poses, gains, unit conversions.

Every array here is in canonical order = Dynamixel motor ID 0..15, angles in sim radians
(0 = flat open hand). Sources: ../shared/LEAP_HAND.md (LEAP API, URDF, DexNDM paper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NUM_JOINTS = 16


@dataclass(frozen=True)
class Joint:
    motor_id: int
    name: str
    lower: float  # rad
    upper: float  # rad


_FINGER = (("abd", -1.047, 1.047), ("mcp", -0.314, 2.23), ("pip", -0.506, 1.885), ("dip", -0.366, 2.042))
_THUMB = (("cmc", -0.349, 2.094), ("axl", -0.47, 2.443), ("mcp", -1.20, 1.90), ("ipl", -1.34, 1.88))

JOINTS: tuple[Joint, ...] = tuple(
    Joint(4 * f + k, f"{prefix}_{part}", lo, hi)
    for f, (prefix, parts) in enumerate((("if", _FINGER), ("mf", _FINGER), ("rf", _FINGER), ("th", _THUMB)))
    for k, (part, lo, hi) in enumerate(parts)
)

JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in JOINTS)
MOTOR_IDS: tuple[int, ...] = tuple(j.motor_id for j in JOINTS)
LOWER = np.array([j.lower for j in JOINTS])
UPPER = np.array([j.upper for j in JOINTS])
MID = 0.5 * (LOWER + UPPER)

#: Motors that get 0.75 x P and D on hardware (index, middle, ring abduction).
ABDUCTION_IDS: tuple[int, ...] = (0, 4, 8)

#: Finger of each joint, for finger-wise models: 0 index, 1 middle, 2 ring, 3 thumb.
FINGER_OF_JOINT = np.repeat(np.arange(4), 4)

#: MJCF body-chain order (mcp before abd) to motor ID: motor_id = MJCF_CHAIN_TO_MOTOR[chain_index].
MJCF_CHAIN_TO_MOTOR: tuple[int, ...] = (1, 0, 2, 3, 5, 4, 6, 7, 9, 8, 10, 11, 12, 13, 14, 15)

#: The DexNDM paper's canonical grasp pose (rad), motor-ID order.
CANONICAL_POSE = np.array(
    [0.082, 1.244, 0.265, 0.298, 0.005, 1.096, 0.080, 0.150, 0.029, 1.337, 0.285, 0.317, 1.163, 1.104, 0.953, -0.138]
)

#: Flat open hand, the pose before a grasp and after torque-on.
OPEN_POSE = np.zeros(NUM_JOINTS)

#: Identified PD gains for simulation (paper Table 11, motor-ID order): Nm/rad and Nm s/rad.
SIM_KP = np.array([1.78, 3.52, 2.84, 2.30, 2.30, 2.26, 3.76, 4.64, 3.44, 1.86, 4.82, 1.53, 1.94, 2.18, 2.55, 2.01])
SIM_KD = np.array([0.106, 0.194, 0.091, 0.195, 0.135, 0.088, 0.027, 0.081, 0.042, 0.123, 0.082, 0.068, 0.199, 0.192, 0.149, 0.050])

#: Hardware position-control gains (servo units) and current limit, as the DexNDM paper runs them.
SERVO_P_GAIN = 800
SERVO_I_GAIN = 0
SERVO_D_GAIN = 200
SERVO_ABDUCTION_GAIN_SCALE = 0.75
SERVO_CURRENT_LIMIT_MA = 350

CONTROL_HZ = 20.0
CONTROL_DT = 1.0 / CONTROL_HZ  # s
ACTION_SCALE = 1.0 / 24.0  # a_t = a_{t-1} + ACTION_SCALE * delta

TICKS_PER_REV = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
VELOCITY_RPM_PER_UNIT = 0.229
CURRENT_A_PER_UNIT = 0.001  # XC330: ~1 mA per unit


def clip_to_limits(q: np.ndarray) -> np.ndarray:
    """Clip joint angles (rad, [..., 16]) into the joint limits."""
    return np.clip(q, LOWER, UPPER)


def within_limits(q: np.ndarray, tol: float = 0.0) -> bool:
    """True when every angle of q (rad, [..., 16]) lies inside the limits widened by tol."""
    q = np.asarray(q)
    return bool(np.all(q >= LOWER - tol) and np.all(q <= UPPER + tol))


def sim_to_ticks(q: np.ndarray) -> np.ndarray:
    """Sim radians to servo ticks (int64): the servo reads real = sim + pi, 2048 ticks = pi."""
    return np.rint((np.asarray(q, dtype=float) + math.pi) / RAD_PER_TICK).astype(np.int64)


def ticks_to_sim(ticks: np.ndarray) -> np.ndarray:
    """Servo ticks to sim radians."""
    return np.asarray(ticks, dtype=float) * RAD_PER_TICK - math.pi


def velocity_units_to_rad_s(units: np.ndarray) -> np.ndarray:
    """Present Velocity register units (0.229 rpm) to rad/s."""
    return np.asarray(units, dtype=float) * VELOCITY_RPM_PER_UNIT * 2.0 * math.pi / 60.0


def current_units_to_amps(units: np.ndarray) -> np.ndarray:
    """Present Current register units (~1 mA) to A."""
    return np.asarray(units, dtype=float) * CURRENT_A_PER_UNIT


def servo_gains(motor_id: int) -> tuple[int, int, int]:
    """(P, I, D) position gains in servo units for one motor; abduction motors get 0.75 x P and D."""
    scale = SERVO_ABDUCTION_GAIN_SCALE if motor_id in ABDUCTION_IDS else 1.0
    return int(round(SERVO_P_GAIN * scale)), SERVO_I_GAIN, int(round(SERVO_D_GAIN * scale))
