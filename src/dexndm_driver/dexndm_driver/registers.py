"""The XC330 control-table subset the driver and the emulator use: name -> (address, size).

Addresses and sizes are from ../shared/LEAP_HAND.md (XC330-M288-T, Protocol 2.0), the EEPROM entries
from the XC330 e-manual. The bus code and the emulated servos are driven by this table; no other
module spells a register address.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    """One control-table entry: byte address, width in bytes, whether values are signed."""

    name: str
    address: int
    size: int
    signed: bool = False


_TABLE = (
    Register("return_delay_time", 9, 1),
    Register("operating_mode", 11, 1),
    Register("torque_enable", 64, 1),
    Register("hardware_error_status", 70, 1),
    Register("position_d_gain", 80, 2),
    Register("position_i_gain", 82, 2),
    Register("position_p_gain", 84, 2),
    Register("goal_current", 102, 2, signed=True),
    Register("goal_position", 116, 4, signed=True),
    Register("present_current", 126, 2, signed=True),
    Register("present_velocity", 128, 4, signed=True),
    Register("present_position", 132, 4, signed=True),
    Register("present_temperature", 146, 1),
    # EEPROM identity and limits: the emulated servos hold and serve them; the driver does not write them.
    Register("model_number", 0, 2),
    Register("firmware_version", 6, 1),
    Register("id", 7, 1),
    Register("baud_rate", 8, 1),
    Register("temperature_limit", 31, 1),
    Register("current_limit", 38, 2),
    Register("max_position_limit", 48, 4),
    Register("min_position_limit", 52, 4),
    Register("status_return_level", 68, 1),
    Register("present_input_voltage", 144, 2),
)

REGISTERS: dict[str, Register] = {r.name: r for r in _TABLE}

#: Operating Mode value: current-based position control.
MODE_CURRENT_BASED_POSITION = 5

#: The per-tick read: present current, velocity and position in one block from address 126.
STATE_BLOCK_START = REGISTERS["present_current"].address
STATE_BLOCK_SIZE = (
    REGISTERS["present_position"].address + REGISTERS["present_position"].size - STATE_BLOCK_START
)

#: Hardware Error Status bits (XC330 e-manual): bit -> meaning.
HARDWARE_ERROR_BITS: dict[int, str] = {
    0: "input_voltage",
    2: "overheating",
    3: "motor_encoder",
    4: "electrical_shock",
    5: "overload",
}


def reg(name: str) -> Register:
    """The register called name; KeyError lists the known names."""
    try:
        return REGISTERS[name]
    except KeyError:
        raise KeyError(f"unknown register {name!r}; known: {', '.join(REGISTERS)}") from None


def decode_hardware_error(value: int) -> list[str]:
    """Names of the bits set in a Hardware Error Status byte (unknown bits as 'bitN')."""
    return [HARDWARE_ERROR_BITS.get(b, f"bit{b}") for b in range(8) if value & (1 << b)]


def to_unsigned(value: int, size: int) -> int:
    """A signed integer as its two's-complement register value of size bytes."""
    return int(value) & ((1 << (8 * size)) - 1)


def to_signed(value: int, size: int) -> int:
    """A register value of size bytes read as two's complement."""
    value = int(value) & ((1 << (8 * size)) - 1)
    return value - (1 << (8 * size)) if value & (1 << (8 * size - 1)) else value


def decode(register: Register, raw: bytes | bytearray, offset: int = 0) -> int:
    """Value of register from little-endian bytes (raw[offset:offset+size])."""
    value = int.from_bytes(bytes(raw[offset:offset + register.size]), "little")
    return to_signed(value, register.size) if register.signed else value


def encode(register: Register, value: int) -> bytes:
    """Little-endian bytes of value for register (two's complement when signed)."""
    return to_unsigned(value, register.size).to_bytes(register.size, "little")
