"""Faults the emulated bus injects into its replies: lost, corrupted and late status packets,
servos that answer nothing, and servos without fast sync read. Hardware errors latch in the servo's
control table (ServoTable.latch_error); the port vanishing is the pty transport's (vanish/restore).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


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

    def outgoing(self, packet: bytes, rng: random.Random) -> tuple[bytes | None, float]:
        """What goes on the wire for one status packet: the bytes (None: lost), and how late (s)."""
        if self.drop_replies > 0:
            self.drop_replies -= 1
            return None, 0.0
        if self.drop_probability > 0 and rng.random() < self.drop_probability:
            return None, 0.0
        if self.corrupt_crc > 0:
            self.corrupt_crc -= 1
            packet = packet[:-1] + bytes([packet[-1] ^ 0x5A])
        delay = 0.0
        if self.late_replies > 0:
            self.late_replies -= 1
            delay = self.late_s
        return packet, delay
