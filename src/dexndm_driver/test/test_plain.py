"""Plain-module tests: Protocol 2.0 codec, register table, command validation, diagnostics, motor model."""
from __future__ import annotations

import math

import dynamixel_sdk
import numpy as np
import pytest

from dexndm_description import hand
from dexndm_driver import diagnostics, protocol, registers, units
from dexndm_driver.commands import validate_targets
from dexndm_driver.driver import DriverStats
from dexndm_driver.dynamixel import ServoHealth
from dexndm_driver.emulator import FirstOrderMotors
from dexndm_driver.states import DriverState


def test_crc_matches_the_sdk_and_the_datasheet_example():
    # e-manual example: ping ID 1 is FF FF FD 00 01 03 00 01 19 4E
    assert protocol.build_packet(1, protocol.INST_PING) == bytes.fromhex("fffffd0001030001194e")
    sdk_crc = dynamixel_sdk.Protocol2PacketHandler().updateCRC
    data = bytes(range(256)) * 2
    assert protocol.crc16(data) == sdk_crc(0, list(data), len(data))


def test_byte_stuffing_round_trip_through_the_reader():
    params = bytes([0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x01])  # holds a header pattern
    packet = protocol.build_packet(3, protocol.INST_WRITE, params)
    assert b"\xff\xff\xfd\xfd" in packet and protocol.unstuff(protocol.stuff(params)) == params
    reader = protocol.PacketReader()
    parsed = reader.feed(b"\x00\x12" + packet[:5]) + reader.feed(packet[5:])
    assert parsed == [protocol.Packet(3, protocol.INST_WRITE, params, len(packet))]
    bad = bytearray(packet)
    bad[-1] ^= 1
    assert reader.feed(bytes(bad)) == [] and reader.crc_errors == 1


def test_register_table_and_signed_values():
    assert registers.reg("goal_position").address == 116 and registers.reg("goal_position").size == 4
    assert (registers.STATE_BLOCK_START, registers.STATE_BLOCK_SIZE) == (126, 10)
    r = registers.reg("present_velocity")
    assert registers.decode(r, registers.encode(r, -5)) == -5
    assert registers.decode_hardware_error(0x24) == ["overheating", "overload"]
    with pytest.raises(KeyError, match="known: return_delay_time"):
        registers.reg("goal_velocity")


def test_unit_conversions_round_trip():
    q = np.linspace(-1.0, 2.0, 16)
    assert np.allclose(units.ticks_to_rad(units.rad_to_ticks(q)), q, atol=hand.RAD_PER_TICK)
    assert units.rad_to_ticks(np.zeros(1))[0] == 2048  # sim 0 = real pi
    assert units.velocity_units_to_rad_s(units.rad_s_to_velocity_units(np.array([1.0])))[0] == pytest.approx(1.0, abs=0.03)
    assert units.amps_to_current_units(np.array([0.35]))[0] == 350


def test_validation_refuses_bad_input_and_clamps_out_of_limit():
    assert validate_targets(hand.CANONICAL_POSE).accepted
    short = validate_targets(np.zeros(15))
    assert short.reason == "wrong_length" and "exactly 16" in short.message
    assert validate_targets(np.zeros((2, 16))).reason == "wrong_length"
    nan = hand.CANONICAL_POSE.copy()
    nan[13] = math.nan
    check = validate_targets(nan)
    assert check.reason == "non_finite" and "th_axl" in check.message and check.targets is None
    inf = hand.CANONICAL_POSE.copy()
    inf[0] = math.inf
    assert validate_targets(inf).reason == "non_finite"
    assert validate_targets(["a"] * 16).reason == "malformed"
    wide = hand.CANONICAL_POSE.copy()
    wide[[1, 14]] = [5.0, -5.0]
    check = validate_targets(wide)
    assert check.accepted and check.clamped == 2
    assert check.targets[1] == hand.UPPER[1] and check.targets[14] == hand.LOWER[14]


def test_diagnostics_report_servo_errors_and_refusals():
    stats = DriverStats(backend="emulated", port="/tmp/x", state=DriverState.ACTIVE, connected=True)
    stats.refused["stale"] = 3
    stats.last_refusal = "stale: ..."
    stats.health = ServoHealth({0: 35, 5: 72}, {5: ["overload"]})
    by_name = {s.name: s for s in diagnostics.build(stats)}
    assert by_name["hand_driver: bus"].level == diagnostics.OK
    commands = by_name["hand_driver: commands"]
    assert commands.level == diagnostics.WARN and commands.values["refused_stale"] == "3"
    assert commands.values["refused_total"] == "3"
    servo5 = by_name["hand_driver: servo 5 mf_mcp"]
    assert servo5.level == diagnostics.ERROR and servo5.values["error_flags"] == "overload"
    assert by_name["hand_driver: servo 0 if_abd"].level == diagnostics.OK
    stats.connected = False
    assert diagnostics.build(stats)[0].level == diagnostics.ERROR


def test_first_order_motors_track_goals_only_with_torque():
    motors = FirstOrderMotors(q0=np.zeros(16), tau=0.05)
    motors.set_goal(np.ones(16), 0.0)
    assert np.allclose(motors.state(1.0)[0], 0.0)  # limp: no torque
    motors.set_torque(np.ones(16, dtype=bool), 1.0)
    q, qdot, current = motors.state(1.05)
    assert np.allclose(q, 1.0 - math.exp(-1.0)) and np.all(qdot > 0) and np.all(current > 0)
    assert np.allclose(motors.state(2.0)[0], 1.0, atol=1e-6)
