"""Button edges with hysteresis and debounce, so analog triggers and noisy presses act once. No rclpy."""
from __future__ import annotations


class Button:
    """Rising-edge detector on a 0..1 value with hysteresis (press above `on`, release below `off`).

    The first value after a reset only sets the state: a button already held when the stream
    (re)starts is not a press, so a reconnect with the squeeze held never engages the clutch.
    `debounce_s` ignores a press that follows the previous accepted press too soon (s).
    """

    def __init__(self, on: float = 0.6, off: float = 0.4, debounce_s: float = 0.0):
        if not 0.0 <= off < on <= 1.0:
            raise ValueError(f"need 0 <= off < on <= 1, got on={on} off={off}")
        self.on, self.off, self.debounce_s = on, off, debounce_s
        self.held = False
        self._known = False
        self._last_press = float("-inf")

    def reset(self) -> None:
        self._known = False
        self.held = False

    def update(self, value: float, now: float) -> bool:
        """Feed one value at time `now` (s); True exactly when this value is an accepted press."""
        was_known, was_held = self._known, self.held
        if self.held and value < self.off:
            self.held = False
        elif not self.held and value > self.on:
            self.held = True
        self._known = True
        if not (was_known and self.held and not was_held):
            return False
        if now - self._last_press < self.debounce_s:
            return False
        self._last_press = now
        return True
