"""The teleop logic between validated samples and ROS outputs: clutch, axis, policy toggle, holds.

No rclpy: the node feeds samples, arm state and clock ticks in and publishes what comes out.
Holding: whenever the arm may not follow (clutch released, stream stale or lost, no arm pose) the
node republishes the last target as the hold pose (`hold_pose`), so the arm stays where it was last
sent and the topic shows it. While the arm reports a reflex or an error nothing is published and
the last target is forgotten: after recovery the controller starts from the arm's own pose and a
new squeeze press re-anchors from there. Every forced release needs a fresh squeeze press.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dexndm_teleop import schema
from dexndm_teleop.axis import AxisConfig, AxisSelector, palm_in_base
from dexndm_teleop.clutch import ArmClutch, ClutchConfig
from dexndm_teleop.controls import Button
from dexndm_teleop.frames import Pose, xr_to_robot

RECOVER_BUTTONS = {"a": schema.BUTTON_1, "b": schema.BUTTON_2, "thumbstick": schema.THUMBSTICK}


@dataclass
class TeleopConfig:
    clutch: ClutchConfig = field(default_factory=ClutchConfig)
    axis: AxisConfig = field(default_factory=AxisConfig)
    max_stream_age_s: float = 0.2
    toggle_debounce_s: float = 0.5
    recover_button: str = "a"  # on the right controller

    def __post_init__(self):
        if self.recover_button not in RECOVER_BUTTONS:
            raise ValueError(f"recover_button must be one of {sorted(RECOVER_BUTTONS)}, got {self.recover_button!r}")
        if not self.max_stream_age_s > 0.0:
            raise ValueError("max_stream_age_s must be positive")


@dataclass
class Output:
    """What to do after one input: publish `target`, publish `axis`, request the policy state, recover."""

    target: Pose | None = None
    axis: np.ndarray | None = None
    policy_request: bool | None = None
    recover: bool = False


class StreamAge:
    """Age (s) of a sample from its page clock, without trusting that clock's offset.

    age = (receipt - page time) - min over this connection of (receipt - page time): the constant
    clock offset cancels, a stream that falls behind (buffered Wi-Fi bursts) shows as age.
    """

    def __init__(self):
        self.best_offset_s: float | None = None

    def reset(self) -> None:
        self.best_offset_s = None

    def age(self, received_wall_s: float, page_time_ms: float) -> float:
        offset = received_wall_s - page_time_ms / 1e3
        if self.best_offset_s is None or offset < self.best_offset_s:
            self.best_offset_s = offset
        return offset - self.best_offset_s


class TeleopCore:
    def __init__(self, config: TeleopConfig):
        self.config = config
        self.clutch = ArmClutch(config.clutch)
        self.axis = AxisSelector(config.axis)
        self.squeeze = Button()
        self.trigger = Button(debounce_s=config.toggle_debounce_s)
        self.recover = Button(debounce_s=1.0)
        self.stream_age = StreamAge()
        self.arm_pose: Pose | None = None
        self.arm_fault = False
        self.connected = False
        self.policy_enabled: bool | None = None  # None: unknown until the service answers
        self.hold_reason = "released"
        self._last_sample_s: float | None = None
        self._last_page_ms: float | None = None

    # --- inputs --------------------------------------------------------------------------
    def on_connect(self, now: float) -> None:
        self.connected = True
        self._reset_stream(now)

    def on_disconnect(self) -> None:
        self.connected = False
        self._release("disconnected")

    def on_arm_state(self, pose: Pose | None, fault: bool) -> None:
        self.arm_pose = pose if pose is not None else self.arm_pose
        self.arm_fault = fault
        if fault:
            self._release("arm_fault", forget_target=True)

    def on_sample(self, sample: schema.Sample, now: float, wall_now: float) -> Output:
        """One validated sample received at monotonic `now` and wall-clock `wall_now` (s)."""
        out = Output()
        dt = 0.0 if self._last_page_ms is None else (sample.page_time_ms - self._last_page_ms) / 1e3
        self._last_sample_s, self._last_page_ms = now, sample.page_time_ms
        if self.stream_age.age(wall_now, sample.page_time_ms) > self.config.max_stream_age_s:
            self._release("stale")
            return out
        if sample.kind == "idle":  # the page is connected but not in VR
            self._release("not in VR")
            self.squeeze.reset()
            return out
        if sample.left is not None:
            out.axis = self.axis.update(sample.left, now, palm_in_base(self.arm_pose, np.asarray(self.config.axis.palm_in_flange)))
        right = sample.right
        if right is None:
            self._release("right controller not tracked")
            self.squeeze.reset()
            return out
        if self.trigger.update(right.buttons[schema.TRIGGER], now):
            out.policy_request = not bool(self.policy_enabled)
        out.recover = self.recover.update(right.buttons[RECOVER_BUTTONS[self.config.recover_button]], now)
        pressed = self.squeeze.update(right.buttons[schema.SQUEEZE], now)
        controller = xr_to_robot(right.pose)
        if not self.squeeze.held:
            self.clutch.release()
            self.hold_reason = "arm_fault" if self.arm_fault else "released"
        elif pressed:
            if self.arm_fault:
                self.hold_reason = "arm_fault"
            elif self.arm_pose is None:
                self.hold_reason = "no arm pose"
            else:
                self.clutch.engage(controller, self.arm_pose)
                self.hold_reason = ""
        if self.clutch.engaged:
            out.target = self.clutch.follow(controller, dt)
        return out

    def tick(self, now: float) -> Pose | None:
        """Watchdog; returns the hold pose to republish (None: publish nothing)."""
        if self.connected and self._last_sample_s is not None and now - self._last_sample_s > self.config.max_stream_age_s:
            self._release("stale")
        if self.clutch.engaged or self.arm_fault:
            return None
        return self.clutch.target

    # --- state ---------------------------------------------------------------------------
    @property
    def following(self) -> bool:
        return self.clutch.engaged

    def status(self) -> dict:
        """What the page shows: connection is implied, the rest comes from here."""
        policy = {None: "unknown", True: "on", False: "off"}[self.policy_enabled]
        arm = "fault" if self.arm_fault else ("ok" if self.arm_pose is not None else "no pose")
        axis = None if self.axis.axis is None else [round(float(v), 3) for v in self.axis.axis]
        return {"type": "status", "following": self.following, "hold": self.hold_reason,
                "axis": axis, "axis_label": self.axis.label, "policy": policy, "arm": arm}

    def _release(self, reason: str, forget_target: bool = False) -> None:
        if self.clutch.engaged or reason in ("disconnected", "arm_fault", "not in VR") or self.hold_reason == "":
            self.hold_reason = reason
        self.clutch.release(forget_target)

    def _reset_stream(self, now: float) -> None:
        self.stream_age.reset()
        self.squeeze.reset()
        self.trigger.reset()
        self.recover.reset()
        self.axis.reset()
        self._last_sample_s, self._last_page_ms = now, None
