"""Dynamixel Protocol 2.0 framing: CRC-16 (polynomial 0x8005), byte stuffing, packet build and parse.

Used by the emulated servos (the driver itself talks through the unmodified dynamixel-sdk) and by
the benchmark to count the bytes on the wire. Packet layout:
FF FF FD 00 | ID | LEN_L LEN_H | INST | params... | CRC_L CRC_H, LEN = len(INST + params + CRC).
"""
from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REBOOT = 0x08
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
INST_FAST_SYNC_READ = 0x8A

# Status-packet error byte: bit 7 = hardware alert, low 7 bits = error number.
ERR_RESULT_FAIL = 0x01
ERR_INSTRUCTION = 0x02
ERR_CRC = 0x03
ERR_DATA_RANGE = 0x04
ERR_DATA_LENGTH = 0x05
ERR_DATA_LIMIT = 0x06
ERR_ACCESS = 0x07
ERR_ALERT_BIT = 0x80


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """Dynamixel CRC-16 (polynomial 0x8005, MSB first, init 0) of data, continuing from crc."""
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert 0xFD after every FF FF FD in body (instruction onward) so it never looks like a header."""
    out = bytearray()
    for byte in body:
        out.append(byte)
        if byte == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Remove the 0xFD that stuffing added after FF FF FD (an FF FF FD followed by anything else stays)."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if (body[i] == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF
                and i + 1 < len(body) and body[i + 1] == 0xFD):
            i += 1  # skip the stuffed byte
        i += 1
    return bytes(out)


def build_packet(dxl_id: int, instruction: int, params: bytes = b"", stuffing: bool = True) -> bytes:
    """A complete packet (header, ID, length, instruction, params, CRC) with byte stuffing."""
    body = bytes([instruction]) + bytes(params)
    if stuffing:
        body = stuff(body)
    length = len(body) + 2
    head = HEADER + bytes([dxl_id, length & 0xFF, length >> 8])
    crc = crc16(head + body)
    return head + body + bytes([crc & 0xFF, crc >> 8])


def build_status(dxl_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet (instruction 0x55) from one servo."""
    return build_packet(dxl_id, INST_STATUS, bytes([error]) + bytes(params))


def build_fast_sync_status(segments: list[tuple[int, int, bytes]]) -> bytes:
    """The single status packet of a fast sync read: [(error, id, data), ...] in request order.

    Layout after INST: ERR ID DATA CRC per servo, where each servo's CRC is the running CRC of the
    packet so far and the last one is the packet CRC. Not stuffed (the SDK does not unstuff it).
    """
    length = 1 + sum(len(d) + 4 for _, _, d in segments)
    packet = bytearray(HEADER + bytes([BROADCAST_ID, length & 0xFF, length >> 8, INST_STATUS]))
    for error, dxl_id, data in segments:
        packet += bytes([error, dxl_id]) + bytes(data)
        crc = crc16(packet)
        packet += bytes([crc & 0xFF, crc >> 8])
    return bytes(packet)


@dataclass(frozen=True)
class Packet:
    """A parsed instruction or status packet (params unstuffed)."""

    dxl_id: int
    instruction: int
    params: bytes
    size: int = 0  # bytes on the wire, header to CRC, stuffing included


class PacketReader:
    """Incremental parser: feed bytes, get complete packets; drops garbage and bad-CRC packets.

    `crc_errors` counts packets whose CRC did not match (a servo answers those with nothing).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.crc_errors = 0

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        packets = []
        while True:
            start = self._buf.find(HEADER[:3])
            if start < 0:
                del self._buf[:-2]
                return packets
            del self._buf[:start]
            if len(self._buf) < 7:
                return packets
            if self._buf[3] != 0x00:  # FF FF FD FD is stuffed data, not a header
                del self._buf[:1]
                continue
            length = self._buf[5] | (self._buf[6] << 8)
            if length < 3 or length > 1024:
                del self._buf[:1]
                continue
            total = 7 + length
            if len(self._buf) < total:
                return packets
            raw = bytes(self._buf[:total])
            del self._buf[:total]
            if crc16(raw[:-2]) != (raw[-2] | (raw[-1] << 8)):
                self.crc_errors += 1
                continue
            body = unstuff(raw[7:-2])
            packets.append(Packet(raw[4], body[0], body[1:], total))
