"""One emulated XC330's control table: its bytes, power-on values and the servo's access rules.

Addresses come from registers.py alone. A write is judged as the real servo judges it (EEPROM
locked while torque is on, read-only registers, range and limit checks) and answered with a
Protocol 2.0 error number.
"""
from __future__ import annotations

from .. import protocol as p
from ..registers import REGISTERS, decode, encode, reg

MODEL_NUMBER_XC330_M288 = 1200
FIRMWARE_VERSION = 52
BAUD_RATE_4M = 6  # Baud Rate register value for 4,000,000 baud
TABLE_SIZE = 256
_WRITABLE_EEPROM = ("return_delay_time", "operating_mode")
_WRITABLE_RAM = ("torque_enable", "position_d_gain", "position_i_gain", "position_p_gain", "goal_current",
                 "goal_position")
_VALID_MODES = (0, 1, 3, 4, 5, 16)


class ServoTable:
    """One servo's control table and fault state; `fault_cause` holds hardware-error bits whose cause
    persists (a reboot clears the latched error only once the cause is gone)."""

    def __init__(self, dxl_id: int) -> None:
        self.id = dxl_id
        self.table = bytearray(TABLE_SIZE)
        self.fault_cause = 0
        self.boot_until = 0.0  # monotonic s: a rebooting servo answers nothing until then
        for name, value in (("model_number", MODEL_NUMBER_XC330_M288), ("firmware_version", FIRMWARE_VERSION),
                            ("id", dxl_id), ("baud_rate", BAUD_RATE_4M), ("temperature_limit", 70),
                            ("current_limit", 1750), ("max_position_limit", 4095), ("min_position_limit", 0),
                            ("status_return_level", 2),  # reply to everything
                            ("present_input_voltage", 50),  # 0.1 V units
                            ("return_delay_time", 250), ("operating_mode", 3)):
            self.set(name, value)
        self.reset_ram()

    def reset_ram(self) -> None:
        """RAM registers to power-on defaults (torque off); a persisting fault stays latched."""
        for name, value in (("torque_enable", 0), ("position_d_gain", 0), ("position_i_gain", 0),
                            ("position_p_gain", 400), ("goal_current", self.get("current_limit")),
                            ("present_temperature", 30)):
            self.set(name, value)
        self.set("hardware_error_status", self.fault_cause)

    def set(self, name: str, value: int) -> None:
        r = reg(name)
        self.table[r.address:r.address + r.size] = encode(r, value)

    def get(self, name: str) -> int:
        return decode(reg(name), self.table, reg(name).address)

    def read(self, address: int, length: int) -> bytes:
        return bytes(self.table[address:address + length])

    @property
    def alert(self) -> bool:
        """A hardware error is latched (status packets carry the alert bit)."""
        return self.get("hardware_error_status") != 0

    def latch_error(self, bits: int, temperature: int | None = None) -> None:
        """A hardware error whose cause persists: the bits latch and torque goes off."""
        self.fault_cause |= bits
        self.set("hardware_error_status", self.get("hardware_error_status") | bits)
        if temperature is not None:
            self.set("present_temperature", temperature)
        self.set("torque_enable", 0)

    def clear_fault_cause(self) -> None:
        """The cause is gone (cooled down, load removed); the error stays latched until a reboot."""
        self.fault_cause = 0
        self.set("present_temperature", 30)

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
            if match.name == "goal_current" and abs(value) > self.get("current_limit"):
                return p.ERR_DATA_LIMIT
            if match.name == "goal_position" and not (
                    self.get("min_position_limit") <= value <= self.get("max_position_limit")):
                return p.ERR_DATA_LIMIT
            pos += match.size
        return 0
