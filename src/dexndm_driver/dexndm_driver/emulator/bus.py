"""Sixteen emulated XC330 servos answering Dynamixel Protocol 2.0 on a pseudo-terminal.

EmulatedBus puts together the parts of the emulator: each servo's control table
(control_table.py), the faults to inject (faults.py), the pty its clients open (pty_transport.py),
and what the servos do with each instruction (dispatch.py). Clients (the unmodified dynamixel-sdk
through pyserial) open the slave's stable symlink `link`, like /dev/serial/by-id/... on hardware.
Every instruction received is logged in `log`.
"""
from __future__ import annotations

import collections
import itertools
import os
import random
import tempfile
import threading

from dexndm_description import hand

from .. import protocol as p
from .control_table import ServoTable
from .dispatch import BusEvent, PacketDispatch
from .faults import FaultPlan
from .motors import FirstOrderMotors, MotorModel
from .pty_transport import PtyTransport


class EmulatedBus:
    """Sixteen XC330 servos on a pty. Use as a context manager or call start()/stop().

    `port` is the path clients open (the symlink `link` when given, else one in a fresh temporary
    folder). Servo IDs are motor IDs 0..15; the motor model maps ID i to joint i.
    """

    def __init__(self, motors: MotorModel | None = None, ids=hand.MOTOR_IDS, link: str | None = None,
                 faults: FaultPlan | None = None, seed: int = 0, reboot_s: float = 0.05,
                 log_limit: int | None = None) -> None:
        self.motors = motors if motors is not None else FirstOrderMotors()
        self.servos = {i: ServoTable(i) for i in ids}
        self.faults = faults if faults is not None else FaultPlan()
        #: Every instruction received, oldest first; only the last log_limit when given (long runs).
        self.log: list[BusEvent] | collections.deque = (
            [] if log_limit is None else collections.deque(maxlen=log_limit))
        self.crc_errors = 0
        self._own_dir = None
        if link is None:
            self._own_dir = tempfile.mkdtemp(prefix="dexndm-bus-")
            link = os.path.join(self._own_dir, "ttyDXL")
        self._lock = threading.RLock()  # servos, log and motors: the serving thread and the test's calls
        self._reader = p.PacketReader()
        self._transport = PtyTransport(link, self._on_data, self._on_connect)
        self._dispatch = PacketDispatch(self.servos, self.motors, self.faults, self.log, self._transport.send,
                                        random.Random(seed), reboot_s)
        with self._lock:
            self._dispatch.sync_motor_torque()

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return self._transport.link

    @property
    def link(self) -> str:
        return self._transport.link

    def start(self) -> "EmulatedBus":
        """Serve the pty from a daemon thread."""
        self._transport.start()
        return self

    def stop(self) -> None:
        self._transport.stop()
        if self._own_dir is not None:
            try:
                os.rmdir(self._own_dir)
            except OSError:
                pass

    def __enter__(self) -> "EmulatedBus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def vanish(self) -> None:
        """The adapter is unplugged: the pty closes (clients get I/O errors) and the path disappears."""
        self._transport.vanish()

    def restore(self) -> None:
        """The adapter is plugged back in: a new pty behind the same path; servos kept their state."""
        self._transport.restore()

    # ---- fault injection and inspection ----------------------------------------------------
    def inject_hardware_error(self, dxl_id: int, bits: int, temperature: int | None = None) -> None:
        """Latch hardware error bits on a servo (its torque goes off, status packets carry the alert)."""
        with self._lock:
            self.servos[dxl_id].latch_error(bits, temperature)
            self._dispatch.sync_motor_torque()

    def clear_fault_cause(self, dxl_id: int) -> None:
        """The cause is gone (cooled down, load removed); the error stays latched until a reboot."""
        with self._lock:
            self.servos[dxl_id].clear_fault_cause()

    def events(self, since: int = 0) -> list[BusEvent]:
        """The logged instructions from index since on (indices of an unlimited log)."""
        with self._lock:
            return list(itertools.islice(self.log, since, None))

    def torque(self) -> list[int]:
        """Torque Enable of every servo, in ID order, as the control tables hold it now."""
        with self._lock:
            return [servo.get("torque_enable") for servo in self.servos.values()]

    # ---- serving (the transport's thread) --------------------------------------------------
    def _on_connect(self) -> None:
        self._reader = p.PacketReader()  # a new pty: no half packet carries over

    def _on_data(self, data: bytes) -> None:
        for packet in self._reader.feed(data):
            with self._lock:
                self._dispatch.handle(packet)
        self.crc_errors = self._reader.crc_errors
