"""The page -> server message schema and its validation. No rclpy.

Every WebSocket text message is one JSON object, at most MAX_MESSAGE_BYTES long:

    {"type": "frame", "seq": 12, "t": 1732180000123.4,
     "left":  {"pos": [x, y, z], "quat": [x, y, z, w], "buttons": [v0..v7], "axes": [a0..a3]} | null,
     "right": {...} | null}
    {"type": "idle", "seq": 13, "t": 1732180000323.4}        # keep-alive outside the XR session

`pos` in metres and `quat` in the XR `local-floor` space (grip pose), `t` the page's clock in ms
(performance.timeOrigin + XR frame time; the headset's clock, not the server's), `buttons` the
xr-standard values 0..1 (0 trigger, 1 squeeze, 3 thumbstick, 4 X|A, 5 Y|B, 6 thumbrest, 7 menu),
`axes` -1..1. Anything else is refused with a SchemaError that says what was wrong.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from dexndm_teleop.frames import Pose

MAX_MESSAGE_BYTES = 2048
MAX_POSITION_M = 20.0
MAX_BUTTONS = 8
MAX_AXES = 4
MAX_SEQ = 2**53
TRIGGER, SQUEEZE, THUMBSTICK, BUTTON_1, BUTTON_2, THUMBREST, MENU = 0, 1, 3, 4, 5, 6, 7

_HAND_KEYS = {"pos", "quat", "buttons", "axes"}
_KEYS = {"frame": {"type", "seq", "t", "left", "right"}, "idle": {"type", "seq", "t"}}


class SchemaError(ValueError):
    """A message that does not follow the schema; the text says which field and why."""


@dataclass(frozen=True)
class Controller:
    """One controller in one XR frame: grip pose in XR space, buttons[8] 0..1, axes[4] -1..1."""

    pose: Pose
    buttons: tuple[float, ...]
    axes: tuple[float, ...]


@dataclass(frozen=True)
class Sample:
    """A validated message. `left`/`right` are None when that controller is not tracked."""

    kind: str
    seq: int
    page_time_ms: float
    left: Controller | None = None
    right: Controller | None = None


def _number(value, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{where} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise SchemaError(f"{where} must be finite")
    if not low <= value <= high:
        raise SchemaError(f"{where}={value} is outside [{low}, {high}]")
    return value


def _numbers(value, where: str, min_len: int, max_len: int, low: float, high: float) -> list[float]:
    if not isinstance(value, list):
        raise SchemaError(f"{where} must be a list")
    if not min_len <= len(value) <= max_len:
        raise SchemaError(f"{where} must hold {min_len}..{max_len} numbers, got {len(value)}")
    return [_number(v, f"{where}[{i}]", low, high) for i, v in enumerate(value)]


def _controller(value, side: str) -> Controller | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SchemaError(f"{side} must be an object or null")
    if set(value) != _HAND_KEYS:
        raise SchemaError(f"{side} must have exactly the keys {sorted(_HAND_KEYS)}, got {sorted(map(str, value))}")
    pos = _numbers(value["pos"], f"{side}.pos", 3, 3, -MAX_POSITION_M, MAX_POSITION_M)
    quat = np.array(_numbers(value["quat"], f"{side}.quat", 4, 4, -1.0001, 1.0001))
    norm = float(np.linalg.norm(quat))
    if not 0.98 <= norm <= 1.02:
        raise SchemaError(f"{side}.quat must be a unit quaternion, norm is {norm:.4f}")
    buttons = _numbers(value["buttons"], f"{side}.buttons", 0, MAX_BUTTONS, 0.0, 1.0)
    axes = _numbers(value["axes"], f"{side}.axes", 0, MAX_AXES, -1.0, 1.0)
    return Controller(
        pose=Pose(np.array(pos), quat / norm),
        buttons=tuple(buttons + [0.0] * (MAX_BUTTONS - len(buttons))),
        axes=tuple(axes + [0.0] * (MAX_AXES - len(axes))),
    )


def parse_message(text: str | bytes) -> Sample:
    """Validate one WebSocket message; SchemaError (with the reason) for anything off-schema."""
    if isinstance(text, (bytes, bytearray)):
        raise SchemaError("binary messages are not accepted; send JSON text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise SchemaError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(SchemaError(f"{c} is not allowed")))
    except json.JSONDecodeError as err:
        raise SchemaError(f"not JSON: {err.msg} at position {err.pos}") from None
    except RecursionError:
        raise SchemaError("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise SchemaError("a message must be a JSON object")
    kind = data.get("type")
    if kind not in _KEYS:
        raise SchemaError(f"type must be one of {sorted(_KEYS)}, got {kind!r}"[:200])
    if set(data) != _KEYS[kind]:
        raise SchemaError(f"a {kind} message has exactly the keys {sorted(_KEYS[kind])}")
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_SEQ:
        raise SchemaError("seq must be an integer in [0, 2^53)")
    page_time = _number(data["t"], "t", 0.0, 1e15)
    if kind == "idle":
        return Sample("idle", seq, page_time)
    return Sample("frame", seq, page_time, _controller(data["left"], "left"), _controller(data["right"], "right"))
