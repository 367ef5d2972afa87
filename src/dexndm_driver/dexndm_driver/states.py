"""The driver's lifecycle, as plain data: the primary states of a ROS 2 managed node and the
transitions between them, with what each does to the hand (no rclpy).

    unconfigured --configure (open the port / build the sim)--> inactive
    inactive --activate (goal := hold pose, torque on)--> active
    active --deactivate (torque off)--> inactive
    inactive --cleanup (close the port / free the sim)--> unconfigured
    any --shutdown (torque off if on, close if open)--> finalized

Activate is also allowed from active: the re-enable of `/leap_hand/enable true`, which reboots
servos with a latched hardware error and turns their torque back on.
"""
from __future__ import annotations

from enum import Enum


class DriverState(Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"

    @property
    def configured(self) -> bool:
        """The port is open (or the sim built): the loop reads and publishes states."""
        return self in (DriverState.INACTIVE, DriverState.ACTIVE)


class Transition(Enum):
    CONFIGURE = "configure"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    CLEANUP = "cleanup"
    SHUTDOWN = "shutdown"


#: transition -> (the states it may start from, the state it ends in on success)
TRANSITIONS: dict[Transition, tuple[frozenset[DriverState], DriverState]] = {
    Transition.CONFIGURE: (frozenset({DriverState.UNCONFIGURED}), DriverState.INACTIVE),
    Transition.ACTIVATE: (frozenset({DriverState.INACTIVE, DriverState.ACTIVE}), DriverState.ACTIVE),
    Transition.DEACTIVATE: (frozenset({DriverState.ACTIVE}), DriverState.INACTIVE),
    Transition.CLEANUP: (frozenset({DriverState.INACTIVE}), DriverState.UNCONFIGURED),
    Transition.SHUTDOWN: (frozenset({DriverState.UNCONFIGURED, DriverState.INACTIVE, DriverState.ACTIVE}),
                          DriverState.FINALIZED),
}


def refusal(transition: Transition, state: DriverState) -> str | None:
    """Why transition cannot start from state (None when it can)."""
    sources, _ = TRANSITIONS[transition]
    if state in sources:
        return None
    allowed = ", ".join(sorted(s.value for s in sources))
    return f"cannot {transition.value} the driver while it is {state.value} (only from {allowed})"
