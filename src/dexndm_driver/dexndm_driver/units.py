"""Servo units <-> SI, in one place for the bus layer (built on dexndm_description.hand).

Positions: ticks (real = sim + pi, 4096/rev) <-> sim rad. Velocity: 0.229 rpm units <-> rad/s.
Current: ~1 mA units <-> A. Register values are signed integers here (two's complement is in
registers.py).
"""
from __future__ import annotations

import numpy as np

from dexndm_description import hand

rad_to_ticks = hand.sim_to_ticks
ticks_to_rad = hand.ticks_to_sim
velocity_units_to_rad_s = hand.velocity_units_to_rad_s
current_units_to_amps = hand.current_units_to_amps


def rad_s_to_velocity_units(qdot: np.ndarray) -> np.ndarray:
    """rad/s to Present Velocity units (0.229 rpm), rounded to int64."""
    return np.rint(np.asarray(qdot, dtype=float) / (hand.VELOCITY_RPM_PER_UNIT * 2.0 * np.pi / 60.0)).astype(np.int64)


def amps_to_current_units(current: np.ndarray) -> np.ndarray:
    """A to Present Current units (~1 mA), rounded to int64."""
    return np.rint(np.asarray(current, dtype=float) / hand.CURRENT_A_PER_UNIT).astype(np.int64)
