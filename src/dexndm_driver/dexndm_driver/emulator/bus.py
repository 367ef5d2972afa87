"""Sixteen emulated XC330 servos answering Dynamixel Protocol 2.0 on a pseudo-terminal.

The emulator owns the pty master and serves it from a thread; clients (the unmodified
dynamixel-sdk through pyserial) open the slave, or a stable symlink to it (`link`), like
/dev/serial/by-id/... on hardware. It answers ping, read, write, sync read, fast sync read, sync
write and reboot with the control-table subset of registers.py, status errors like the real servo
(access, range, limit, instruction, CRC), logs every instruction in `log`, and injects faults from
`faults` (dropped, corrupted and late replies, missing servos, hardware errors, the port vanishing).
"""
from __future__ import annotations

import collections
import itertools
import os
import random
import select
import tempfile
import threading
import time
import tty
from dataclasses import dataclass, field, replace

import numpy as np

from dexndm_description import hand

from .. import protocol as p
from .. import units
from ..registers import REGISTERS, decode, encode, reg
from .motors import FirstOrderMotors, MotorModel

MODEL_NUMBER_XC330_M288 = 1200
TABLE_SIZE = 256
_WRITABLE_EEPROM = ("return_delay_time", "operating_mode")
_WRITABLE_RAM = ("torque_enable", "position_d_gain", "position_i_gain", "position_p_gain", "goal_current",
                 "goal_position")
_VALID_MODES = (0, 1, 3, 4, 5, 16)
_CURRENT_LIMIT_ADDR = 38  # Current Limit (2 bytes, mA units), EEPROM
_TEMPERATURE_LIMIT_ADDR = 31  # Temperature Limit (1 byte, deg C), EEPROM
_INSTRUCTION_NAMES = {p.INST_PING: "ping", p.INST_READ: "read", p.INST_WRITE: "write", p.INST_REBOOT: "reboot",
                      p.INST_SYNC_READ: "sync_read", p.INST_SYNC_WRITE: "sync_write",
                      p.INST_FAST_SYNC_READ: "fast_sync_read"}


@dataclass
class FaultPlan:
    """Faults to inject; counters decrement as replies are sent. Change fields while running."""

    drop_replies: int = 0  # the next N status packets are not sent
    drop_probability: float = 0.0  # each status packet is lost with this probability
    corrupt_crc: int = 0  # the next N status packets go out with a wrong CRC
    late_replies: int = 0  # the next N status packets are sent late_s late
    late_s: float = 0.0
    missing_ids: set = field(default_factory=set)  # servos that answer nothing
    fast_sync_read: bool = True  # False: servos ignore fast sync read (old firmware)


@dataclass(frozen=True)
class BusEvent:
    """One instruction the emulator received: what, to whom, which register, and the values."""

    t: float
    instruction: str
    ids: tuple
    address: int = -1
    length: int = 0
    values: tuple = ()
    request_bytes: int = 0  # instruction packet size on the wire
    reply_bytes: int = 0  # status packet bytes sent in answer

    @property
    def register(self) -> str:
        for r in REGISTERS.values():
            if r.address == self.address and r.size == self.length:
                return r.name
        return f"@{self.address}+{self.length}"


class _Servo:
    """One servo's control table and fault state."""

    def __init__(self, dxl_id: int) -> None:
        self.id = dxl_id
        self.table = bytearray(TABLE_SIZE)
        self.fault_cause = 0  # hardware error bits whose cause persists (cleared by clear_fault)
        self.boot_until = 0.0
        self._set(0, 2, MODEL_NUMBER_XC330_M288)
        self._set(6, 1, 52)  # firmware version
        self._set(7, 1, dxl_id)
        self._set(8, 1, 6)  # baud rate index 6 = 4 Mbps
        self._set(_TEMPERATURE_LIMIT_ADDR, 1, 70)
        self._set(_CURRENT_LIMIT_ADDR, 2, 1750)
        self._set(48, 4, 4095)  # max position limit
        self._set(52, 4, 0)  # min position limit
        self._set(68, 1, 2)  # status return level: reply to everything
        self._set(144, 2, 50)  # present input voltage, 0.1 V
        self.set("return_delay_time", 250)
        self.set("operating_mode", 3)
        self.reset_ram()

    def reset_ram(self) -> None:
        """RAM registers to power-on defaults (torque off)."""
        for name, value in (("torque_enable", 0), ("position_d_gain", 0), ("position_i_gain", 0),
                            ("position_p_gain", 400), ("goal_current", self.get_at(_CURRENT_LIMIT_ADDR, 2)),
                            ("present_temperature", 30)):
            self.set(name, value)
        self.set("hardware_error_status", self.fault_cause)

    def _set(self, address: int, size: int, value: int) -> None:
        self.table[address:address + size] = (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def get_at(self, address: int, size: int) -> int:
        return int.from_bytes(self.table[address:address + size], "little")

    def set(self, name: str, value: int) -> None:
        r = reg(name)
        self.table[r.address:r.address + r.size] = encode(r, value)

    def get(self, name: str) -> int:
        return decode(reg(name), self.table, reg(name).address)

    @property
    def alert(self) -> bool:
        return self.get("hardware_error_status") != 0

    def check_write(self, address: int, data: bytes) -> int:
        """0 when writing data at address is allowed, else a Protocol 2.0 error number."""
        end, pos = address + len(data), address
        while pos < end:
            match = next((r for r in REGISTERS.values() if r.address == pos), None)
            if match is None or match.name not in _WRITABLE_EEPROM + _WRITABLE_RAM or pos + match.size > end:
                return p.ERR_ACCESS
            if match.name in _WRITABLE_EEPROM and self.get("torque_enable"):
                return p.ERR_ACCESS  # EEPROM is locked while torque is on
            value = decode(match, data, pos - address)
            if match.name == "operating_mode" and value not in _VALID_MODES:
                return p.ERR_DATA_RANGE
            if match.name == "torque_enable":
                if value not in (0, 1):
                    return p.ERR_DATA_RANGE
                if value and self.alert:
                    return p.ERR_RESULT_FAIL  # torque stays off until a reboot clears the error
            if match.name == "return_delay_time" and not 0 <= value <= 254:
                return p.ERR_DATA_RANGE
            if match.name.endswith("_gain") and not 0 <= value <= 16383:
                return p.ERR_DATA_RANGE
            if match.name == "goal_current" and abs(value) > self.get_at(_CURRENT_LIMIT_ADDR, 2):
                return p.ERR_DATA_LIMIT
            if match.name == "goal_position" and not (
                    self.get_at(52, 4) <= value <= self.get_at(48, 4)):
                return p.ERR_DATA_LIMIT
            pos += match.size
        return 0


class EmulatedBus:
    """Sixteen XC330 servos on a pty. Use as a context manager or call start()/stop().

    `port` is the path clients open (the symlink `link` when given, else the pty slave).
    Servo IDs are motor IDs 0..15; the motor model maps ID i to joint i.
    """

    def __init__(self, motors: MotorModel | None = None, ids=hand.MOTOR_IDS, link: str | None = None,
                 faults: FaultPlan | None = None, seed: int = 0, reboot_s: float = 0.05,
                 log_limit: int | None = None) -> None:
        self.motors = motors if motors is not None else FirstOrderMotors()
        self.servos = {i: _Servo(i) for i in ids}
        self.faults = faults if faults is not None else FaultPlan()
        #: Every instruction received, oldest first; only the last log_limit when given (long runs).
        self.log: list[BusEvent] | collections.deque = (
            [] if log_limit is None else collections.deque(maxlen=log_limit))
        self.crc_errors = 0
        self.reboot_s = reboot_s
        self._own_dir = None
        if link is None:
            self._own_dir = tempfile.mkdtemp(prefix="dexndm-bus-")
            link = os.path.join(self._own_dir, "ttyDXL")
        self.link = link
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._sent = 0
        self._open_pty()
        self._sync_motor_torque()

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return self.link

    def start(self) -> "EmulatedBus":
        """Serve the pty from a daemon thread."""
        self._thread = threading.Thread(target=self._serve, name="dexndm-emulated-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close_pty()
        if self._own_dir is not None:
            try:
                os.rmdir(self._own_dir)
            except OSError:
                pass

    def __enter__(self) -> "EmulatedBus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass through as on a UART
        tty.setraw(master)
        self._master, self._slave = master, slave
        tmp = self.link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)

    def _close_pty(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            if os.path.lexists(self.link):
                os.unlink(self.link)

    def vanish(self) -> None:
        """The adapter is unplugged: the pty closes (clients get I/O errors) and the path disappears."""
        self._close_pty()

    def restore(self) -> None:
        """The adapter is plugged back in: a new pty behind the same path; servos kept their state."""
        with self._lock:
            if self._master < 0:
                self._open_pty()

    # ---- fault injection -------------------------------------------------------------------
    def inject_hardware_error(self, dxl_id: int, bits: int, temperature: int | None = None) -> None:
        """Latch hardware error bits on a servo (its torque goes off, status packets carry the alert)."""
        with self._lock:
            servo = self.servos[dxl_id]
            servo.fault_cause |= bits
            servo.set("hardware_error_status", servo.get("hardware_error_status") | bits)
            if temperature is not None:
                servo.set("present_temperature", temperature)
            servo.set("torque_enable", 0)
            self._sync_motor_torque()

    def clear_fault_cause(self, dxl_id: int) -> None:
        """The cause is gone (cooled down, load removed); the error stays latched until a reboot."""
        with self._lock:
            servo = self.servos[dxl_id]
            servo.fault_cause = 0
            servo.set("present_temperature", 30)

    def events(self, since: int = 0) -> list[BusEvent]:
        """The logged instructions from index since on (indices of an unlimited log)."""
        with self._lock:
            return list(itertools.islice(self.log, since, None))

    # ---- serving ---------------------------------------------------------------------------
    def _serve(self) -> None:
        reader = p.PacketReader()
        master = -1
        while not self._stop.is_set():
            with self._lock:
                if self._master != master:
                    master, reader = self._master, p.PacketReader()
            if master < 0:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except (OSError, ValueError):
                time.sleep(0.01)
                continue
            for packet in reader.feed(data):
                with self._lock:
                    self._sent = 0
                    self._handle(packet, master)  # logs exactly one event
                    self.log[-1] = replace(self.log[-1], request_bytes=packet.size, reply_bytes=self._sent)
            self.crc_errors = reader.crc_errors

    def _send(self, master: int, packet: bytes) -> None:
        f = self.faults
        if f.drop_replies > 0:
            f.drop_replies -= 1
            return
        if f.drop_probability > 0 and self._rng.random() < f.drop_probability:
            return
        if f.corrupt_crc > 0:
            f.corrupt_crc -= 1
            packet = packet[:-1] + bytes([packet[-1] ^ 0x5A])
        if f.late_replies > 0:
            f.late_replies -= 1
            time.sleep(f.late_s)
        view = memoryview(packet)
        self._sent += len(packet)
        try:
            while view:
                view = view[os.write(master, view):]
        except OSError:
            pass

    def _present(self, now: float) -> None:
        q, qdot, current = self.motors.state(now)
        ticks, vel, cur = units.rad_to_ticks(q), units.rad_s_to_velocity_units(qdot), units.amps_to_current_units(current)
        for i, servo in self.servos.items():
            if 0 <= i < len(ticks):
                servo.set("present_position", int(ticks[i]))
                servo.set("present_velocity", int(vel[i]))
                servo.set("present_current", int(cur[i]))

    def _sync_motor_torque(self) -> None:
        enabled = np.zeros(hand.NUM_JOINTS, dtype=bool)
        for i, servo in self.servos.items():
            if 0 <= i < hand.NUM_JOINTS:
                enabled[i] = bool(servo.get("torque_enable"))
        self.motors.set_torque(enabled, time.monotonic())

    def _answers(self, dxl_id: int, now: float) -> bool:
        servo = self.servos.get(dxl_id)
        return servo is not None and dxl_id not in self.faults.missing_ids and now >= servo.boot_until

    def _status(self, servo: _Servo, error: int, params: bytes = b"") -> bytes:
        return p.build_status(servo.id, error | (p.ERR_ALERT_BIT if servo.alert else 0), params)

    def _handle(self, packet: p.Packet, master: int) -> None:
        now = time.monotonic()
        inst, params, target = packet.instruction, packet.params, packet.dxl_id
        name = _INSTRUCTION_NAMES.get(inst, f"0x{inst:02x}")
        with self._lock:
            if inst in (p.INST_SYNC_READ, p.INST_FAST_SYNC_READ, p.INST_SYNC_WRITE):
                self._handle_sync(name, inst, params, master, now)
                return
            ids = tuple(self.servos) if target == p.BROADCAST_ID else (target,)
            address = int.from_bytes(params[0:2], "little") if len(params) >= 2 else -1
            if inst == p.INST_READ:
                length = int.from_bytes(params[2:4], "little") if len(params) >= 4 else 0
                self.log.append(BusEvent(now, name, ids, address, length))
            elif inst == p.INST_WRITE:
                data = params[2:]
                self.log.append(BusEvent(now, name, ids, address, len(data), (int.from_bytes(data, "little"),)))
            else:
                self.log.append(BusEvent(now, name, ids))
            for dxl_id in ids:
                if not self._answers(dxl_id, now):
                    continue
                reply = self._single(self.servos[dxl_id], inst, params, now)
                if reply is not None and (target != p.BROADCAST_ID or inst == p.INST_PING):
                    self._send(master, reply)

    def _single(self, servo: _Servo, inst: int, params: bytes, now: float) -> bytes | None:
        if inst == p.INST_PING:
            return self._status(servo, 0, servo.table[0:2] + servo.table[6:7])
        if inst == p.INST_READ:
            if len(params) != 4:
                return self._status(servo, p.ERR_DATA_LENGTH)
            address, length = int.from_bytes(params[0:2], "little"), int.from_bytes(params[2:4], "little")
            if address + length > TABLE_SIZE:
                return self._status(servo, p.ERR_ACCESS)
            self._present(now)
            return self._status(servo, 0, bytes(servo.table[address:address + length]))
        if inst == p.INST_WRITE:
            if len(params) < 3:
                return self._status(servo, p.ERR_DATA_LENGTH)
            address, data = int.from_bytes(params[0:2], "little"), params[2:]
            error = self._write(servo, address, data, now)
            return self._status(servo, error)
        if inst == p.INST_REBOOT:
            reply = self._status(servo, 0)
            self._reboot(servo, now)
            return reply
        return self._status(servo, p.ERR_INSTRUCTION)

    def _write(self, servo: _Servo, address: int, data: bytes, now: float) -> int:
        error = servo.check_write(address, data)
        if error:
            return error
        servo.table[address:address + len(data)] = data
        goal, torque = reg("goal_position"), reg("torque_enable")
        if address <= torque.address < address + len(data):
            if servo.get("torque_enable"):
                self._present(now)  # the servo holds where it is until a goal arrives
            self._sync_motor_torque()
        if address <= goal.address < address + len(data) or address <= torque.address < address + len(data):
            self._push_goals(now)
        return 0

    def _push_goals(self, now: float) -> None:
        goals = np.array(hand.CANONICAL_POSE, dtype=float)
        for i, servo in self.servos.items():
            if 0 <= i < hand.NUM_JOINTS:
                goals[i] = float(units.ticks_to_rad(servo.get("goal_position")))
        self.motors.set_goal(goals, now)

    def _reboot(self, servo: _Servo, now: float) -> None:
        self._present(now)
        servo.set("hardware_error_status", 0)
        servo.reset_ram()
        servo.set("goal_position", servo.get("present_position"))
        servo.boot_until = now + self.reboot_s
        self._sync_motor_torque()
        self._push_goals(now)

    def _handle_sync(self, name: str, inst: int, params: bytes, master: int, now: float) -> None:
        if len(params) < 4:
            self.log.append(BusEvent(now, name, ()))
            return
        address, length = int.from_bytes(params[0:2], "little"), int.from_bytes(params[2:4], "little")
        if inst == p.INST_SYNC_WRITE:
            body, values, ids = params[4:], [], []
            for k in range(0, len(body) - length, length + 1):
                dxl_id, data = body[k], body[k + 1:k + 1 + length]
                ids.append(dxl_id)
                values.append(int.from_bytes(data, "little"))
                if self._answers(dxl_id, now):
                    self._write(self.servos[dxl_id], address, data, now)
            self.log.append(BusEvent(now, name, tuple(ids), address, length, tuple(values)))
            return
        ids = tuple(params[4:])
        self.log.append(BusEvent(now, name, ids, address, length))
        if address + length > TABLE_SIZE:
            return
        self._present(now)
        if inst == p.INST_SYNC_READ:
            for dxl_id in ids:
                if self._answers(dxl_id, now):
                    servo = self.servos[dxl_id]
                    self._send(master, self._status(servo, 0, bytes(servo.table[address:address + length])))
            return
        if not self.faults.fast_sync_read:
            return
        segments = []
        for dxl_id in ids:
            if not self._answers(dxl_id, now):
                break  # the chain stops here: the client sees a truncated packet
            servo = self.servos[dxl_id]
            segments.append((p.ERR_ALERT_BIT if servo.alert else 0, dxl_id, bytes(servo.table[address:address + length])))
        packet = p.build_fast_sync_status(segments + [(0, 0, bytes(length))] * (len(ids) - len(segments)))
        if len(segments) < len(ids):
            packet = packet[:8 + len(segments) * (length + 4)]
        self._send(master, packet)
