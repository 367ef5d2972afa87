"""The Dynamixel backend: the LEAP hand's 16 XC330 servos over one Protocol 2.0 bus.

connect -> setup -> (enable -> read/write per tick) -> close. Per tick: one (fast) sync read of
the 10-byte block at 126 and one sync write of goal positions. Every target is clamped to the
joint limits here, whatever the caller did. Temperature and hardware errors are polled by
`poll_health` at a low rate; `reboot` clears a servo's latched hardware error and re-applies setup.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dexndm_description import hand

from . import units
from .registers import MODE_CURRENT_BASED_POSITION, STATE_BLOCK_SIZE, STATE_BLOCK_START, decode, decode_hardware_error, reg
from .sdk_io import BusError, DynamixelIO, PortLost, SdkIO, ServoError


class HardwareError(RuntimeError):
    """The hand cannot be brought up; the message says what to check."""


@dataclass
class JointReading:
    """One read of all joints: rad, rad/s, A ([16] each), read at `stamp_ns` (wall clock, ns)."""

    q: np.ndarray
    qdot: np.ndarray
    effort: np.ndarray
    stamp_ns: int
    read_s: float = 0.0  # duration of the bus read (s)


@dataclass
class ServoHealth:
    """Low-rate servo status: temperature (deg C) and latched hardware-error names per motor ID."""

    temperature: dict[int, int] = field(default_factory=dict)
    errors: dict[int, list[str]] = field(default_factory=dict)


def setup_writes(dxl_id: int) -> list[tuple[str, int]]:
    """The documented register writes of setup for one servo, in order (torque comes on later)."""
    p_gain, i_gain, d_gain = hand.servo_gains(dxl_id)
    return [
        ("torque_enable", 0),
        ("operating_mode", MODE_CURRENT_BASED_POSITION),
        ("return_delay_time", 0),
        ("position_p_gain", p_gain),
        ("position_i_gain", i_gain),
        ("position_d_gain", d_gain),
        ("goal_current", hand.SERVO_CURRENT_LIMIT_MA),
    ]


class DynamixelHand:
    """The hand on a Dynamixel bus, driven by the register table through a DynamixelIO."""

    def __init__(self, io: DynamixelIO | None = None, port: str = "/dev/ttyUSB0", baudrate: int = 4_000_000,
                 ids: tuple[int, ...] = hand.MOTOR_IDS, fast_sync_read: bool | None = None) -> None:
        self.io = io if io is not None else SdkIO(port, baudrate)
        self.ids = tuple(ids)
        self.fast = fast_sync_read  # None: probe at connect
        self.last_targets: np.ndarray | None = None
        self.torque_on = False

    # ---- bring-up --------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port, ping every ID (HardwareError names the missing ones), probe fast sync read."""
        try:
            self.io.open()
        except PortLost as err:
            raise HardwareError(str(err)) from err
        missing = [i for i in self.ids if not self._ping(i)]
        if missing:
            self.io.close()
            raise HardwareError(
                f"servo ID(s) {', '.join(map(str, missing))} did not answer on {self.io.port_name}: check the "
                f"5 V supply, the daisy-chain cables to those servos, their IDs (0..15) and that every servo is "
                f"set to {getattr(self.io, 'baudrate', 4_000_000)} baud (Dynamixel Wizard)")
        if self.fast is None:
            self.fast = False
            for _ in range(3):  # a single lost reply must not demote the bus to plain sync read
                try:
                    self.io.sync_read(STATE_BLOCK_START, STATE_BLOCK_SIZE, self.ids, fast=True)
                except PortLost:
                    raise
                except BusError:
                    continue
                self.fast = True
                break

    def _ping(self, dxl_id: int) -> bool:
        return any(self.io.ping(dxl_id) for _ in range(2))

    def _write(self, dxl_id: int, name: str, value: int, attempts: int = 3) -> None:
        """Write one register, retrying lost or corrupt replies (not errors the servo reported)."""
        for attempt in range(attempts):
            try:
                self.io.write(dxl_id, reg(name), value)
                return
            except (PortLost, ServoError):
                raise
            except BusError:
                if attempt == attempts - 1:
                    raise

    def setup(self, ids: tuple[int, ...] | None = None) -> None:
        """Torque off, mode 5, return delay 0, P/I/D (0.75 x on abduction), current limit, per servo."""
        for dxl_id in self.ids if ids is None else ids:
            for name, value in setup_writes(dxl_id):
                self._write(dxl_id, name, value)
        self.torque_on = False

    def set_torque(self, on: bool, hold: np.ndarray | None = None) -> None:
        """Torque on (goal = hold, else the present position, first, so nothing jumps) or off."""
        if on:
            if hold is None:
                hold = self.read().q
            self.write(hold)
        for dxl_id in self.ids:
            self._write(dxl_id, "torque_enable", 1 if on else 0)
        self.torque_on = on

    # ---- per tick --------------------------------------------------------------------------
    def read(self) -> JointReading:
        """One sync read of the 10-byte block at 126 (fast sync read when the servos support it)."""
        t0 = time.perf_counter()
        stamp_ns = time.time_ns()
        raw = self.io.sync_read(STATE_BLOCK_START, STATE_BLOCK_SIZE, self.ids, fast=bool(self.fast))
        read_s = time.perf_counter() - t0
        cur_r, vel_r, pos_r = reg("present_current"), reg("present_velocity"), reg("present_position")
        ticks = np.array([decode(pos_r, raw[i], pos_r.address - STATE_BLOCK_START) for i in self.ids])
        vel = np.array([decode(vel_r, raw[i], vel_r.address - STATE_BLOCK_START) for i in self.ids])
        cur = np.array([decode(cur_r, raw[i], cur_r.address - STATE_BLOCK_START) for i in self.ids])
        return JointReading(units.ticks_to_rad(ticks), units.velocity_units_to_rad_s(vel),
                            units.current_units_to_amps(cur), stamp_ns, read_s)

    def write(self, targets: np.ndarray) -> np.ndarray:
        """One sync write of goal positions; returns the targets actually sent (clamped, rad)."""
        sent = hand.clip_to_limits(np.asarray(targets, dtype=float))
        ticks = units.rad_to_ticks(sent)
        self.io.sync_write(reg("goal_position"), {dxl_id: int(ticks[k]) for k, dxl_id in enumerate(self.ids)})
        self.last_targets = sent
        return sent

    # ---- health ----------------------------------------------------------------------------
    def poll_health(self) -> ServoHealth:
        """Sync reads of Hardware Error Status and Present Temperature (two round trips)."""
        health = ServoHealth()
        for name in ("hardware_error_status", "present_temperature"):
            r = reg(name)
            raw = self.io.sync_read(r.address, r.size, self.ids, fast=bool(self.fast))
            for dxl_id in self.ids:
                value = decode(r, raw[dxl_id])
                if name == "present_temperature":
                    health.temperature[dxl_id] = value
                elif value:
                    health.errors[dxl_id] = decode_hardware_error(value)
        return health

    def reboot(self, ids: list[int], wait_s: float = 0.5) -> list[int]:
        """Reboot servos (clears latched hardware errors), wait until they answer, re-apply setup.

        Returns the IDs that came back; torque stays off on them (enable re-applies it).
        """
        for dxl_id in ids:
            self.io.reboot(dxl_id)
        back, deadline = [], time.monotonic() + wait_s
        for dxl_id in ids:
            while True:
                if self.io.ping(dxl_id):
                    back.append(dxl_id)
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        self.setup(tuple(back))
        return back

    def close(self) -> None:
        """Torque off (best effort: the bus may be gone) and close the port."""
        try:
            if self.torque_on:
                for dxl_id in self.ids:
                    try:
                        self._write(dxl_id, "torque_enable", 0)
                    except ServoError:
                        pass  # a servo in a hardware error has no torque anyway
        except BusError:
            pass
        finally:
            self.torque_on = False
            self.io.close()
