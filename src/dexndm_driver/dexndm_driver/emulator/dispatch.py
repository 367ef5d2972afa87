"""Packet dispatch of the emulated bus: what the servos do with each Protocol 2.0 instruction.

Ping, read, write, reboot (to one ID or broadcast), sync read, fast sync read and sync write are
answered from the servos' control tables, with status errors as the real servo sends them; Present
Position/Velocity/Current come from the motor model at the moment of the read, and goal and torque
writes go to it. Every instruction is logged as one BusEvent before any reply goes out (so a
client holding a reply finds its instruction in the log). Replies pass the fault plan on the way
out. The caller (EmulatedBus) serialises calls.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from dexndm_description import hand

from .. import protocol as p
from .. import units
from ..registers import REGISTERS, reg
from .control_table import TABLE_SIZE, ServoTable
from .faults import FaultPlan
from .motors import MotorModel

INSTRUCTION_NAMES = {p.INST_PING: "ping", p.INST_READ: "read", p.INST_WRITE: "write", p.INST_REBOOT: "reboot",
                     p.INST_SYNC_READ: "sync_read", p.INST_SYNC_WRITE: "sync_write",
                     p.INST_FAST_SYNC_READ: "fast_sync_read"}


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


class PacketDispatch:
    def __init__(self, servos: dict[int, ServoTable], motors: MotorModel, faults: FaultPlan, log,
                 send: Callable[[bytes], None], rng: random.Random, reboot_s: float) -> None:
        self.servos = servos
        self.log = log  # list or deque of BusEvent, appended to
        self.motors = motors
        self.faults = faults
        self.reboot_s = reboot_s
        self._send_raw = send
        self._rng = rng
        self._sent = 0

    def handle(self, packet: p.Packet) -> None:
        """Answer one instruction packet and log it (with its bytes in and out)."""
        self._sent = 0
        now = time.monotonic()
        inst, params, target = packet.instruction, packet.params, packet.dxl_id
        name = INSTRUCTION_NAMES.get(inst, f"0x{inst:02x}")
        if inst in (p.INST_SYNC_READ, p.INST_FAST_SYNC_READ, p.INST_SYNC_WRITE):
            self._sync(name, inst, params, now)
        else:
            self._addressed(name, inst, params, target, now)
        self.log[-1] = replace(self.log[-1], request_bytes=packet.size, reply_bytes=self._sent)

    def sync_motor_torque(self) -> None:
        """Tell the motor model which servos have torque on (after any torque change)."""
        enabled = np.zeros(hand.NUM_JOINTS, dtype=bool)
        for i, servo in self.servos.items():
            if 0 <= i < hand.NUM_JOINTS:
                enabled[i] = bool(servo.get("torque_enable"))
        self.motors.set_torque(enabled, time.monotonic())

    # ---- replies -----------------------------------------------------------------------------
    def _send(self, packet: bytes) -> None:
        packet, delay = self.faults.outgoing(packet, self._rng)
        if packet is None:
            return
        if delay > 0:
            time.sleep(delay)
        self._sent += len(packet)
        self._send_raw(packet)

    def _answers(self, dxl_id: int, now: float) -> bool:
        servo = self.servos.get(dxl_id)
        return servo is not None and dxl_id not in self.faults.missing_ids and now >= servo.boot_until

    def _status(self, servo: ServoTable, error: int, params: bytes = b"") -> bytes:
        return p.build_status(servo.id, error | (p.ERR_ALERT_BIT if servo.alert else 0), params)

    def _present(self, now: float) -> None:
        """Present position, velocity and current from the motor model, into every servo's table."""
        q, qdot, current = self.motors.state(now)
        ticks, vel, cur = units.rad_to_ticks(q), units.rad_s_to_velocity_units(qdot), units.amps_to_current_units(current)
        for i, servo in self.servos.items():
            if 0 <= i < len(ticks):
                servo.set("present_position", int(ticks[i]))
                servo.set("present_velocity", int(vel[i]))
                servo.set("present_current", int(cur[i]))

    # ---- instructions to one ID (or broadcast) ---------------------------------------------------
    def _addressed(self, name: str, inst: int, params: bytes, target: int, now: float) -> None:
        ids = tuple(self.servos) if target == p.BROADCAST_ID else (target,)
        address = int.from_bytes(params[0:2], "little") if len(params) >= 2 else -1
        if inst == p.INST_READ:
            length = int.from_bytes(params[2:4], "little") if len(params) >= 4 else 0
            event = BusEvent(now, name, ids, address, length)
        elif inst == p.INST_WRITE:
            data = params[2:]
            event = BusEvent(now, name, ids, address, len(data), (int.from_bytes(data, "little"),))
        else:
            event = BusEvent(now, name, ids)
        self.log.append(event)
        for dxl_id in ids:
            if not self._answers(dxl_id, now):
                continue
            reply = self._single(self.servos[dxl_id], inst, params, now)
            if reply is not None and (target != p.BROADCAST_ID or inst == p.INST_PING):
                self._send(reply)

    def _single(self, servo: ServoTable, inst: int, params: bytes, now: float) -> bytes | None:
        if inst == p.INST_PING:
            model, firmware = reg("model_number"), reg("firmware_version")
            return self._status(servo, 0, servo.read(model.address, model.size)
                                + servo.read(firmware.address, firmware.size))
        if inst == p.INST_READ:
            if len(params) != 4:
                return self._status(servo, p.ERR_DATA_LENGTH)
            address, length = int.from_bytes(params[0:2], "little"), int.from_bytes(params[2:4], "little")
            if address + length > TABLE_SIZE:
                return self._status(servo, p.ERR_ACCESS)
            self._present(now)
            return self._status(servo, 0, servo.read(address, length))
        if inst == p.INST_WRITE:
            if len(params) < 3:
                return self._status(servo, p.ERR_DATA_LENGTH)
            address, data = int.from_bytes(params[0:2], "little"), params[2:]
            return self._status(servo, self._write(servo, address, data, now))
        if inst == p.INST_REBOOT:
            reply = self._status(servo, 0)
            self._reboot(servo, now)
            return reply
        return self._status(servo, p.ERR_INSTRUCTION)

    def _write(self, servo: ServoTable, address: int, data: bytes, now: float) -> int:
        error = servo.check_write(address, data)
        if error:
            return error
        servo.table[address:address + len(data)] = data
        goal, torque = reg("goal_position"), reg("torque_enable")
        if address <= torque.address < address + len(data):
            if servo.get("torque_enable"):
                self._present(now)  # the servo holds where it is until a goal arrives
            self.sync_motor_torque()
        if address <= goal.address < address + len(data) or address <= torque.address < address + len(data):
            self._push_goals(now)
        return 0

    def _push_goals(self, now: float) -> None:
        goals = np.array(hand.CANONICAL_POSE, dtype=float)
        for i, servo in self.servos.items():
            if 0 <= i < hand.NUM_JOINTS:
                goals[i] = float(units.ticks_to_rad(servo.get("goal_position")))
        self.motors.set_goal(goals, now)

    def _reboot(self, servo: ServoTable, now: float) -> None:
        self._present(now)
        servo.set("hardware_error_status", 0)
        servo.reset_ram()
        servo.set("goal_position", servo.get("present_position"))
        servo.boot_until = now + self.reboot_s
        self.sync_motor_torque()
        self._push_goals(now)

    # ---- sync instructions (many IDs, one packet) ------------------------------------------------
    def _sync(self, name: str, inst: int, params: bytes, now: float) -> None:
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
                    self._send(self._status(servo, 0, servo.read(address, length)))
        elif self.faults.fast_sync_read:
            self._fast_sync_reply(ids, address, length, now)

    def _fast_sync_reply(self, ids: tuple, address: int, length: int, now: float) -> None:
        segments = []
        for dxl_id in ids:
            if not self._answers(dxl_id, now):
                break  # the chain stops here: the client sees a truncated packet
            servo = self.servos[dxl_id]
            segments.append((p.ERR_ALERT_BIT if servo.alert else 0, dxl_id, servo.read(address, length)))
        packet = p.build_fast_sync_status(segments + [(0, 0, bytes(length))] * (len(ids) - len(segments)))
        if len(segments) < len(ids):
            packet = packet[:8 + len(segments) * (length + 4)]
        self._send(packet)
