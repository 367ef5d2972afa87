"""What the policy node does with each joint state: act, hold, or refuse and say why (no rclpy).

- Enabled and the state is good: one policy step; the command is the executed target.
- Disabled: the command is `disabled_command`: "hold" = the last executed target (the measured q
  if nothing was commanded yet) or "open" = the open hand pose. Enabling again resets the history.
- A bad state (wrong length, NaN/inf, wrong joint order), a stale one (stamp not newer than the last
  one answered, or older than `max_state_age` on the node's clock) or a gap of `state_timeout`
  without states: no command at all (the driver holds after its command timeout), the reason is
  kept for logs and diagnostics, and the next good state starts a fresh history.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexndm_description import hand
from dexndm_policy.runtime import PolicyOutput, PolicyRuntime, StateError, check_joint_state

DISABLED_COMMANDS = ("hold", "open")
OK, WARN, ERROR = 0, 1, 2


@dataclass
class Decision:
    target: np.ndarray | None  # [16] rad to command, None = send nothing
    output: PolicyOutput | None  # the policy step, when the policy ran
    reason: str = ""  # why nothing was sent (empty when a command goes out)


class RotationController:
    def __init__(self, runtime: PolicyRuntime, enabled: bool = True, disabled_command: str = "hold",
                 max_state_age: float = 0.0, state_timeout: float = 1.0):
        if disabled_command not in DISABLED_COMMANDS:
            raise ValueError(f"disabled_command must be one of {DISABLED_COMMANDS}, got {disabled_command!r}")
        self.runtime = runtime
        self.enabled = enabled
        self.disabled_command = disabled_command
        self.max_state_age = max_state_age  # s; 0 = do not compare stamps with the node's clock
        self.state_timeout = state_timeout  # s of wall time without a state that counts as a stop
        self.last_stamp: float | None = None
        self.last_state_wall: float | None = None
        self.last_target: np.ndarray | None = None
        self.stop_reason = ""
        self.steps = 0
        self.refused = 0

    def set_enabled(self, enabled: bool) -> None:
        if enabled and not self.enabled:
            self.runtime.base_target = None  # fresh history at the next state
        self.enabled = enabled

    def on_state(self, position, names, stamp_s: float, now_s: float, wall_s: float) -> Decision:
        """Decide the command for one joint state (stamp and node clock in s, wall clock in s)."""
        try:
            q = check_joint_state(position, names)
            if self.last_stamp is not None and stamp_s <= self.last_stamp:
                raise StateError(f"stale joint state: stamp {stamp_s:.3f} s is not newer than the last one "
                                 f"answered ({self.last_stamp:.3f} s)")
            if self.max_state_age > 0 and now_s - stamp_s > self.max_state_age:
                raise StateError(f"stale joint state: {now_s - stamp_s:.3f} s old (> max_state_age "
                                 f"{self.max_state_age} s); is the driver's clock the same as this node's?")
        except StateError as err:
            return self._refuse(str(err))
        self.last_stamp, self.last_state_wall = stamp_s, wall_s
        if self.stop_reason:
            self.stop_reason = ""
            self.runtime.base_target = None
        if not self.enabled:
            if self.disabled_command == "open":
                target = hand.OPEN_POSE.copy()
            else:
                target = self.last_target if self.last_target is not None else hand.clip_to_limits(q)
            self.last_target = target
            return Decision(target, None)
        output = self.runtime.step(q)
        self.steps += 1
        self.last_target = output.executed_target
        return Decision(output.executed_target, output)

    def check_gap(self, wall_s: float) -> str:
        """Stop (and return the reason) when no state came for state_timeout; empty string otherwise."""
        if self.last_state_wall is not None and not self.stop_reason and wall_s - self.last_state_wall > self.state_timeout:
            self.stop_reason = f"no joint state for {wall_s - self.last_state_wall:.2f} s (> state_timeout {self.state_timeout} s)"
            self.last_stamp = None  # a restarted driver may count its stamps from zero again
            return self.stop_reason
        return ""

    def status(self) -> tuple[int, str]:
        """Diagnostic level and message."""
        if self.stop_reason:
            return ERROR, f"stopped: {self.stop_reason}"
        if not self.enabled:
            return WARN, f"disabled: commanding {self.disabled_command}"
        if self.last_stamp is None:
            return WARN, "waiting for /leap_hand/joint_states"
        return OK, "running"

    def _refuse(self, reason: str) -> Decision:
        self.refused += 1
        self.stop_reason = reason
        return Decision(None, None, reason)
