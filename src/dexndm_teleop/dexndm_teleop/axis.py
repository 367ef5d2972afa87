"""Rotation axis from the left controller: a button table, or the controller's orientation. No rclpy.

Button mode: a press of a left-controller button selects a named axis from a table (default
X -> z, Y -> -z, squeeze -> -y, the paper's lightbulb set).
Orientation mode: the left controller's rotation since its neutral orientation (taken at the first
sample and whenever the left thumbstick is pressed), as a rotation vector in the XR space; its
component about the controller's short axis is multiplied by `short_axis_weight`, the result is
taken to the robot base frame and then to the palm frame (from the arm's pose), and normalised.
Rotations smaller than `deadband_rad` keep the previous axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dexndm_description.axes import parse_axis
from dexndm_teleop import schema
from dexndm_teleop.controls import Button
from dexndm_teleop.frames import XR_TO_ROBOT, Pose, quat_to_matrix, rotvec_from_matrix

BUTTON_INDEX = {"trigger": schema.TRIGGER, "squeeze": schema.SQUEEZE, "thumbstick": schema.THUMBSTICK,
                "x": schema.BUTTON_1, "y": schema.BUTTON_2}
DEFAULT_TABLE = "x:z,y:-z,squeeze:-y"
_BODY_AXES = {"x": 0, "y": 1, "z": 2}


def parse_table(text: str) -> dict[str, tuple[str, np.ndarray]]:
    """'x:z,y:-z,squeeze:-y' -> {button: (axis name, unit axis)}; ValueError naming what is wrong."""
    table: dict[str, tuple[str, np.ndarray]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        button, sep, axis = item.partition(":")
        button = button.strip().lower()
        if not sep or button not in BUTTON_INDEX:
            raise ValueError(f"axis table entry {item!r}: write BUTTON:AXIS with BUTTON one of {sorted(BUTTON_INDEX)}")
        if button in table:
            raise ValueError(f"axis table names button {button!r} twice")
        table[button] = (axis.strip(), parse_axis(axis.strip()))
    if not table:
        raise ValueError("the axis table is empty; e.g. 'x:z,y:-z,squeeze:-y'")
    return table


@dataclass
class AxisConfig:
    mode: str = "buttons"  # buttons | orientation
    table: str = DEFAULT_TABLE
    short_axis: str = "x"  # the controller body axis (grip space) whose rotation is down-weighted
    short_axis_weight: float = 0.3
    deadband_rad: float = 0.35
    min_change_rad: float = 0.05  # orientation mode publishes when the axis moves more than this
    palm_in_flange: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # x, y, z, w
    parsed_table: dict = field(init=False, repr=False)

    def __post_init__(self):
        if self.mode not in ("buttons", "orientation"):
            raise ValueError(f"axis mode must be 'buttons' or 'orientation', got {self.mode!r}")
        if self.short_axis not in _BODY_AXES:
            raise ValueError(f"short_axis must be x, y or z, got {self.short_axis!r}")
        if not 0.0 <= self.short_axis_weight <= 1.0:
            raise ValueError(f"short_axis_weight must be in [0, 1], got {self.short_axis_weight}")
        self.parsed_table = parse_table(self.table)


def orientation_axis(rotation_xr: np.ndarray, neutral_xr: np.ndarray, palm_in_base: np.ndarray,
                     short_axis: int, weight: float) -> tuple[np.ndarray, float]:
    """(unit axis in the palm frame, weighted rotation angle rad) for a controller rotation.

    `rotation_xr`, `neutral_xr`: controller orientations (3x3) in XR space; `palm_in_base`: the
    palm frame's orientation in the robot base frame. The angle is 0 (axis zero) without rotation.
    """
    turn = rotvec_from_matrix(rotation_xr @ neutral_xr.T)
    short = rotation_xr[:, short_axis]
    turn = turn + (weight - 1.0) * float(turn @ short) * short
    angle = float(np.linalg.norm(turn))
    if angle < 1e-9:
        return np.zeros(3), 0.0
    return palm_in_base.T @ (XR_TO_ROBOT @ turn) / angle, angle


class AxisSelector:
    """Turns left-controller samples into axis changes (None when the axis stays)."""

    def __init__(self, config: AxisConfig):
        self.config = config
        self.buttons = {name: Button() for name in config.parsed_table}
        self.axis: np.ndarray | None = None
        self.label = ""
        self._neutral: np.ndarray | None = None
        self._rezero = Button()

    def reset(self) -> None:
        for button in self.buttons.values():
            button.reset()
        self._rezero.reset()
        self._neutral = None

    def update(self, left: schema.Controller, now: float, palm_in_base: np.ndarray | None) -> np.ndarray | None:
        if self.config.mode == "buttons":
            chosen = None
            for name, button in self.buttons.items():
                if button.update(left.buttons[BUTTON_INDEX[name]], now):
                    chosen = name
            if chosen is None:
                return None
            self.label, axis = self.config.parsed_table[chosen]
            self.axis = axis.copy()
            return self.axis
        rotation = left.pose.rotation
        if self._rezero.update(left.buttons[schema.THUMBSTICK], now) or self._neutral is None:
            self._neutral = rotation
            return None
        if palm_in_base is None:
            return None
        axis, angle = orientation_axis(rotation, self._neutral, palm_in_base,
                                       _BODY_AXES[self.config.short_axis], self.config.short_axis_weight)
        if angle < self.config.deadband_rad:
            return None
        if self.axis is not None and np.arccos(np.clip(axis @ self.axis, -1.0, 1.0)) < self.config.min_change_rad:
            return None
        self.axis = axis
        self.label = "({:.2f},{:.2f},{:.2f})".format(*axis)
        return self.axis


def palm_in_base(arm: Pose | None, palm_in_flange: np.ndarray) -> np.ndarray | None:
    """The palm frame's orientation in the robot base frame, from the flange pose (None if unknown)."""
    if arm is None:
        return None
    return arm.rotation @ quat_to_matrix(palm_in_flange)
