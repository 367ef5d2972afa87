"""The seam between the driver and the Dynamixel SDK: a typing.Protocol and its dynamixel-sdk implementation.

`DynamixelIO` is everything the backend needs from a bus; `SdkIO` implements it with the
unmodified dynamixel-sdk (Protocol 2.0) on any serial device: a U2D2 or the emulator's pty.
Communication failures raise BusError; a port that disappeared raises PortLost.
"""
from __future__ import annotations

import select
import termios
from typing import Iterable, Protocol

import dynamixel_sdk as sdk
import serial

from .registers import Register


class BusError(RuntimeError):
    """A bus transaction failed (timeout, corrupt reply, servo error)."""


class PortLost(BusError):
    """The serial device went away (unplugged adapter, closed pty)."""


class ServoError(BusError):
    """A servo answered with an error in its status packet (access, range, limit, ...)."""


class DynamixelIO(Protocol):
    """A Protocol 2.0 bus as the backend uses it. Values are raw register integers (unsigned)."""

    port_name: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def ping(self, dxl_id: int) -> bool: ...

    def write(self, dxl_id: int, register: Register, value: int) -> None: ...

    def read(self, dxl_id: int, register: Register) -> int: ...

    def reboot(self, dxl_id: int) -> None: ...

    def sync_read(self, start: int, size: int, ids: Iterable[int], fast: bool) -> dict[int, bytes]: ...

    def sync_write(self, register: Register, values: dict[int, int]) -> None: ...


_PORT_ERRORS = (serial.SerialException, OSError, termios.error, TypeError, AttributeError)


class SdkIO:
    """DynamixelIO over dynamixel_sdk.PortHandler + Protocol 2.0 packet handler.

    `latency_ms` replaces the SDK's fixed 16 ms USB latency allowance in its reply timeout
    (timeout = bytes x 10 bit / baud + 2 x latency + 2 ms); 16 keeps the SDK's own value, a U2D2
    whose FTDI latency timer is set to 1 ms can use 4.
    """

    def __init__(self, port_name: str, baudrate: int = 4_000_000, latency_ms: float = 16.0) -> None:
        self.port_name = port_name
        self.baudrate = baudrate
        self.latency_ms = latency_ms
        self._port: sdk.PortHandler | None = None
        self._ph = sdk.PacketHandler(2.0)
        self._groups: dict[tuple, sdk.GroupSyncRead] = {}

    def open(self) -> None:
        port = _TimedPortHandler(self.port_name, self.latency_ms)
        try:
            ok = port.setBaudRate(self.baudrate)
        except _PORT_ERRORS as err:
            raise PortLost(f"cannot open {self.port_name}: {err}. Check the cable and the path "
                           f"(prefer /dev/serial/by-id/...) and that your user is in the dialout group") from err
        if not ok:
            raise PortLost(f"{self.port_name} refused {self.baudrate} baud")
        self._port, self._groups = port, {}

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            except _PORT_ERRORS:
                pass
            self._port = None

    def _need_port(self) -> sdk.PortHandler:
        if self._port is None:
            raise PortLost(f"{self.port_name} is not open")
        return self._port

    def _check(self, what: str, result: int, error: int = 0) -> None:
        if result != sdk.COMM_SUCCESS:
            raise BusError(f"{what}: {self._ph.getTxRxResult(result)}")
        if error & 0x7F:
            raise ServoError(f"{what}: {self._ph.getRxPacketError(error)}")

    def _call(self, fn, *args):
        port = self._need_port()
        try:
            return fn(port, *args)
        except _PORT_ERRORS as err:
            port.is_using = False
            raise PortLost(f"{self.port_name} went away: {err}") from err

    def ping(self, dxl_id: int) -> bool:
        _, result, _ = self._call(self._ph.ping, dxl_id)
        return result == sdk.COMM_SUCCESS

    def write(self, dxl_id: int, register: Register, value: int) -> None:
        data = list(int(value).to_bytes(register.size, "little"))
        result, error = self._call(self._ph.writeTxRx, dxl_id, register.address, register.size, data)
        self._check(f"write {register.name}={value} to ID {dxl_id}", result, error)

    def read(self, dxl_id: int, register: Register) -> int:
        data, result, error = self._call(self._ph.readTxRx, dxl_id, register.address, register.size)
        self._check(f"read {register.name} from ID {dxl_id}", result, error)
        return int.from_bytes(bytes(data), "little")

    def reboot(self, dxl_id: int) -> None:
        result, error = self._call(self._ph.reboot, dxl_id)
        self._check(f"reboot ID {dxl_id}", result, error)

    def sync_read(self, start: int, size: int, ids: Iterable[int], fast: bool) -> dict[int, bytes]:
        ids = tuple(ids)
        port = self._need_port()
        group = self._groups.get((start, size, ids))
        if group is None:
            group = sdk.GroupSyncRead(port, self._ph, start, size)
            for dxl_id in ids:
                group.addParam(dxl_id)
            self._groups[(start, size, ids)] = group
        try:
            result = group.fastSyncRead() if fast else group.txRxPacket()
        except _PORT_ERRORS as err:
            port.is_using = False
            raise PortLost(f"{self.port_name} went away: {err}") from err
        except IndexError as err:  # the SDK indexes a short fast-sync-read reply
            port.is_using = False
            raise BusError(f"{'fast ' if fast else ''}sync read at {start}: truncated reply") from err
        self._check(f"{'fast ' if fast else ''}sync read of {size} bytes at {start}", result)
        return {dxl_id: bytes(group.data_dict[dxl_id]) for dxl_id in ids}

    def sync_write(self, register: Register, values: dict[int, int]) -> None:
        port = self._need_port()
        group = sdk.GroupSyncWrite(port, self._ph, register.address, register.size)
        for dxl_id, value in values.items():
            group.addParam(dxl_id, list((int(value) & ((1 << (8 * register.size)) - 1)).to_bytes(register.size, "little")))
        try:
            result = group.txPacket()
        except _PORT_ERRORS as err:
            port.is_using = False
            raise PortLost(f"{self.port_name} went away: {err}") from err
        self._check(f"sync write {register.name}", result)


class _TimedPortHandler(sdk.PortHandler):
    """PortHandler with a configurable USB latency allowance (ms) in its reply timeout, and a read
    that sleeps in select() until bytes arrive (at most 1 ms) instead of spinning: the SDK polls
    readPort in a busy loop, which would burn a core and starve other threads of the GIL."""

    def __init__(self, port_name: str, latency_ms: float) -> None:
        super().__init__(port_name)
        self.latency_ms = latency_ms

    def setPacketTimeout(self, packet_length):  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2.0 * self.latency_ms + 2.0

    def readPort(self, length):  # noqa: N802 (SDK name)
        if self.ser.in_waiting == 0:
            select.select([self.ser.fd], [], [], 0.001)
        return self.ser.read(length)
