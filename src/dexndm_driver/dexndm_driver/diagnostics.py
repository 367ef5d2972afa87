"""Diagnostics the driver reports on /diagnostics, as plain data (the node turns them into messages).

Statuses: "hand_driver: bus" (state, timing, read/write failures, port), "hand_driver: commands"
(accepted, refused per reason, clamped, watchdog) and one "hand_driver: servo ID NAME" per servo
once health has been polled (temperature, hardware error flags). Keys are listed in docs/DRIVER.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexndm_description import hand

from .driver import DriverStats
from .states import DriverState

OK, WARN, ERROR = 0, 1, 2
TEMPERATURE_WARN_C = 60


@dataclass(frozen=True)
class DiagStatus:
    level: int
    name: str
    message: str
    values: dict


def _ms(samples, q: float) -> str:
    return f"{1e3 * float(np.percentile(list(samples), q)):.3f}" if samples else "nan"


def build(stats: DriverStats, hardware_id: str = "leap_hand") -> list[DiagStatus]:
    """Diagnostic statuses from the driver's counters (values are strings, as in DiagnosticStatus)."""
    state = stats.state.value
    bus_level, bus_msg = OK, f"ok: {state}"
    if stats.consecutive_read_failures:
        bus_level, bus_msg = WARN, stats.last_error
    if stats.state is DriverState.UNCONFIGURED and not stats.last_error:
        bus_level, bus_msg = OK, "unconfigured: the port is closed (configure opens it)"
    elif not stats.connected or stats.consecutive_read_failures >= 5:
        bus_level, bus_msg = ERROR, stats.last_error or "not connected"
    bus = DiagStatus(bus_level, "hand_driver: bus", bus_msg, {
        "backend": stats.backend, "port": stats.port, "state": state, "connected": str(stats.connected),
        "ticks": str(stats.ticks), "cycle_p50_ms": _ms(stats.cycle_s, 50), "cycle_p99_ms": _ms(stats.cycle_s, 99),
        "read_p50_ms": _ms(stats.read_s, 50), "tick_jitter_p99_ms": _ms(stats.jitter_s, 99),
        "dropped_reads": str(stats.dropped_reads), "consecutive_read_failures": str(stats.consecutive_read_failures),
        "write_failures": str(stats.write_failures), "port_lost": str(stats.port_lost),
        "reconnects": str(stats.reconnects), "overruns": str(stats.overruns),
        "fast_sync_read": str(stats.fast_sync_read), "rebooted": ",".join(map(str, stats.rebooted)),
        "last_error": stats.last_error, "last_read_error": stats.last_read_error,
        "start_gates_pending": ",".join(stats.waiting_for)})
    refused_total = sum(stats.refused.values())
    cmd_values = {"accepted": str(stats.accepted), "refused_total": str(refused_total),
                  "clamped_commands": str(stats.clamped_commands), "clamped_joints": str(stats.clamped_joints),
                  "watchdog_timeouts": str(stats.watchdog_timeouts), "holding": str(stats.holding),
                  "last_refusal": stats.last_refusal}
    cmd_values.update({f"refused_{reason}": str(n) for reason, n in stats.refused.items()})
    cmd_level = WARN if stats.holding or refused_total or stats.clamped_commands else OK
    cmd_msg = "holding the last target (no command within command_timeout)" if stats.holding else (
        stats.last_refusal or "ok")
    statuses = [bus, DiagStatus(cmd_level, "hand_driver: commands", cmd_msg, cmd_values)]
    health = stats.health
    if health is not None:
        for dxl_id, temperature in sorted(health.temperature.items()):
            errors = health.errors.get(dxl_id, [])
            level = ERROR if errors else (WARN if temperature >= TEMPERATURE_WARN_C else OK)
            message = ("hardware error: " + ", ".join(errors) + "; call /leap_hand/enable true to reboot it"
                       if errors else "ok")
            statuses.append(DiagStatus(level, f"hand_driver: servo {dxl_id} {hand.JOINT_NAMES[dxl_id]}", message, {
                "id": str(dxl_id), "temperature_c": str(temperature), "hardware_error": str(bool(errors)),
                "error_flags": ",".join(errors)}))
    return statuses
