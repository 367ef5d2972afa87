"""Command validation: what the driver does with a target vector before any servo sees it.

Refused (nothing is written, the refusal is counted): not a sequence of numbers (`malformed`),
not 16 values (`wrong_length`), any NaN/inf (`non_finite`). Accepted targets outside the joint
limits are clamped to them and counted (`clamped`). Freshness (stale, late, before activation) is
judged by the driver, which knows the latest state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexndm_description import hand

REFUSAL_REASONS = ("malformed", "wrong_length", "non_finite", "inactive", "stale", "future", "late")


@dataclass(frozen=True)
class CommandCheck:
    """Outcome of validate_targets: targets (rad, [16], clamped) or None with a reason and message."""

    targets: np.ndarray | None
    reason: str = ""
    message: str = ""
    clamped: int = 0  # number of joints clamped into the limits

    @property
    def accepted(self) -> bool:
        return self.targets is not None


def refuse(reason: str, message: str) -> CommandCheck:
    return CommandCheck(None, reason, message)


def validate_targets(position) -> CommandCheck:
    """Check a command's 16 joint targets (rad, motor-ID order) and clamp them into the limits."""
    try:
        values = np.asarray(position, dtype=float)
    except (TypeError, ValueError):
        return refuse("malformed", f"command position is not a list of numbers ({type(position).__name__}); "
                                   f"send {hand.NUM_JOINTS} joint targets in rad, motor-ID order")
    if values.ndim != 1 or values.shape[0] != hand.NUM_JOINTS:
        return refuse("wrong_length", f"command has {values.size} values in shape {values.shape}; send exactly "
                                      f"{hand.NUM_JOINTS} joint targets in rad, motor-ID order")
    bad = ~np.isfinite(values)
    if bad.any():
        names = ", ".join(hand.JOINT_NAMES[i] for i in np.flatnonzero(bad))
        return refuse("non_finite", f"command holds NaN/inf for {names}; nothing was written, fix the sender")
    clamped = hand.clip_to_limits(values)
    n = int(np.count_nonzero(clamped != values))
    message = ""
    if n:
        names = ", ".join(hand.JOINT_NAMES[i] for i in np.flatnonzero(clamped != values))
        message = f"{n} target(s) outside the joint limits were clamped: {names}"
    return CommandCheck(clamped, "", message, n)
