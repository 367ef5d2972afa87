"""Wire tests: the real driver code and the unmodified dynamixel-sdk against the emulated bus on a pty."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from dexndm_description import hand
from dexndm_driver.backends import BusBackend
from dexndm_driver.driver import DriverConfig, HandDriver
from dexndm_driver.dynamixel import DynamixelHand, HardwareError
from dexndm_driver.registers import REGISTERS
from dexndm_driver.states import DriverState
from driver_support import BUS_SLACK_MS, ManualClock, bring_up, wait_for


#: The stepped-clock tests count instructions per tick of the driver's clock; the SDK's reply timeout is
#: real time, so they give it more room than its 34 ms (which a loaded machine can miss). The fault tests
#: (`running`) keep the SDK's own timing: late replies must miss it.
SLACK_MS = BUS_SLACK_MS


def writes(events):
    """(id, register, value) of each write; a retry of a write whose reply was lost counts once."""
    out = []
    for e in events:
        if e.instruction == "write" and (not out or out[-1] != (e.ids[0], e.register, e.values[0])):
            out.append((e.ids[0], e.register, e.values[0]))
    return out


def test_setup_writes_exactly_the_documented_registers(bus, io):
    dyn = DynamixelHand(io)
    dyn.connect()
    start = len(bus.log)
    dyn.setup()
    events = bus.events(start)
    assert {e.instruction for e in events} == {"write"}
    expected = []
    for i in range(16):
        scale = 0.75 if i in (0, 4, 8) else 1.0
        expected += [(i, "torque_enable", 0), (i, "operating_mode", 5), (i, "return_delay_time", 0),
                     (i, "position_p_gain", round(800 * scale)), (i, "position_i_gain", 0),
                     (i, "position_d_gain", round(200 * scale)), (i, "goal_current", 350)]
    assert writes(events) == expected
    servo = bus.servos[4]
    assert (servo.get("operating_mode"), servo.get("position_p_gain"), servo.get("position_d_gain")) == (5, 600, 150)


def test_connect_pings_every_id_and_names_the_missing_ones(bus, io):
    bus.faults.missing_ids = {3, 11}
    with pytest.raises(HardwareError, match=r"servo ID\(s\) 3, 11 did not answer .*check the 5 V supply"):
        DynamixelHand(io).connect()
    assert {e.ids[0] for e in bus.log if e.instruction == "ping"} == set(range(16))


def test_emulator_refuses_eeprom_writes_with_torque_on_and_out_of_range_values(bus, io):
    from dexndm_driver.sdk_io import BusError
    io.write(2, REGISTERS["torque_enable"], 1)
    with pytest.raises(BusError, match="not available to target address"):
        io.write(2, REGISTERS["operating_mode"], 5)
    with pytest.raises(BusError, match="exceeds the limit"):
        io.write(2, REGISTERS["goal_position"], 5000)
    with pytest.raises(BusError, match="not available"):
        io.write(2, REGISTERS["present_position"], 10)
    assert bus.servos[2].get("operating_mode") == 3


def test_read_and_write_convert_units_and_clamp(bus, io):
    dyn = DynamixelHand(io)
    dyn.connect()
    dyn.setup()
    dyn.set_torque(True, hold=hand.CANONICAL_POSE)
    target = hand.MID.copy()
    target[1] = 9.0  # far beyond if_mcp's upper limit
    sent = dyn.write(target)
    assert sent[1] == pytest.approx(hand.UPPER[1]) and np.allclose(np.delete(sent, 1), np.delete(hand.MID, 1))
    last = wait_for(lambda: bus.events()[-1] if bus.events()[-1].instruction == "sync_write" else None)
    assert last.register == "goal_position" and last.values[1] == int(hand.sim_to_ticks(hand.UPPER)[1])

    def settled():
        r = dyn.read()
        return r if np.allclose(r.q, sent, atol=0.01) else None

    reading = wait_for(settled, timeout=2.0)
    assert reading is not None, "emulated servos never reached the goals"
    assert reading.q.shape == reading.qdot.shape == reading.effort.shape == (16,)


def test_fast_sync_read_is_probed_and_plain_sync_read_is_the_fallback(bus, io):
    dyn = DynamixelHand(io)
    dyn.connect()
    assert dyn.fast is True
    bus.faults.fast_sync_read = False
    before = len(bus.log)
    slow = DynamixelHand(io)
    slow.connect()
    assert slow.fast is False
    # The probe sent three fast sync reads that nobody answered; the emulator may log the last one after the
    # client has timed out on it, so wait for all three before counting what the next read sends.
    probes = lambda: [e for e in bus.events(before) if e.instruction == "fast_sync_read"]  # noqa: E731
    assert wait_for(lambda: len(probes()) == 3), probes()
    start = len(bus.log)
    q = slow.read().q
    assert [e.instruction for e in bus.events(start)] == ["sync_read"]
    assert np.allclose(q, hand.CANONICAL_POSE, atol=2 * hand.RAD_PER_TICK)


class Answerer:
    """A policy stand-in: answers every published state with a command carrying its stamp, as it comes."""

    def __init__(self, driver, sink):
        self.driver, self.sink, self.stop, self.results = driver, sink, threading.Event(), []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        answered = 0
        while not self.stop.is_set():
            if not self.sink.wait_until(lambda: self.stop.is_set() or len(self.sink.states) > answered, timeout=1.0):
                continue
            if self.stop.is_set():
                return
            stamp, reading = self.sink.states[-1]
            answered = len(self.sink.states)
            target = hand.CANONICAL_POSE + 0.1 * np.sin(answered / 5.0)
            self.results.append(self.driver.submit(target, stamp))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        with self.sink._changed:
            self.sink._changed.notify_all()
        self.thread.join()


@pytest.fixture
def running(bus, sink):
    backend = BusBackend(bus.port)
    driver = bring_up(HandDriver(backend, sink, DriverConfig(health_period=0.25, diagnostics_period=0.1)))
    assert sink.wait_until(lambda: len(sink.states) > 2)
    with Answerer(driver, sink) as answerer:
        yield driver, answerer
    driver.stop()
    assert driver.state is DriverState.FINALIZED
    assert all(s.get("torque_enable") == 0 for s in bus.servos.values()), "torque must be off after stop"


@pytest.fixture
def stepped(bus, sink):
    """The driver loop on a ManualClock: each tick happens when the test advances the clock to it."""
    clock = ManualClock()
    driver = HandDriver(BusBackend(bus.port, latency_ms=SLACK_MS), sink,
                        DriverConfig(health_period=0.25, diagnostics_period=0.1, command_timeout=0.3), clock)
    bring_up(driver)
    assert sink.wait_until(lambda: sink.states)
    yield driver, clock
    driver.stop()
    assert driver.state is DriverState.FINALIZED


def next_tick(driver, clock, sink, waits=0):
    """Advance the clock to the driver's next tick deadline; returns once that tick is done and the loop
    blocks again (its read published a state, or failed)."""
    deadline = clock.wait_for_waiter(after=waits)
    assert deadline is not None, "the driver loop is not waiting for a tick"
    waits = clock.waits
    clock.advance_to(deadline)
    assert clock.wait_for_waiter(after=waits) is not None
    return deadline


def test_a_tick_is_one_sync_read_plus_one_sync_write(bus, io):
    dyn = DynamixelHand(io)
    dyn.connect()
    dyn.setup()
    dyn.set_torque(True, hold=hand.CANONICAL_POSE)
    for _ in range(5):
        start = len(bus.log)
        dyn.write(dyn.read().q)
        events = wait_for(lambda: len(bus.events(start)) == 2 and bus.events(start))
        assert [(e.instruction, e.register) for e in events] == [("fast_sync_read", "@126+10"),
                                                                 ("sync_write", "goal_position")]
        assert events[0].ids == events[1].ids == tuple(range(16))


def test_the_driver_loop_sends_one_sync_read_per_tick_and_one_sync_write_per_command(bus, sink, stepped):
    driver, clock = stepped
    start, ticks0, accepted0, dropped0 = len(bus.log), driver.stats.ticks, driver.stats.accepted, driver.stats.dropped_reads
    first = None
    for k in range(20):  # 1 s of the driver's clock, every state answered as it comes
        deadline = next_tick(driver, clock, sink)
        first = first if first is not None else deadline
        waits = clock.waits
        assert driver.submit(hand.CANONICAL_POSE + 0.01 * k, sink.states[-1][0]).accepted
        assert clock.wait_for_waiter(after=waits) is not None  # written; the loop waits for the next tick
    assert deadline - first == pytest.approx(19 * 0.05)  # ticks every 1/rate_hz of the driver's clock
    ticks, accepted = driver.stats.ticks - ticks0, driver.stats.accepted - accepted0
    # The SDK's reply timeout is real time: on a loaded machine a reply can miss it (a dropped read, no state).
    dropped = driver.stats.dropped_reads - dropped0
    # a sync write has no reply: the emulator logs it a moment after the SDK returns
    assert wait_for(lambda: sum(e.instruction == "sync_write" for e in bus.events(start)) == 20)
    events = bus.events(start)
    state_reads = [e for e in events if e.instruction == "fast_sync_read" and e.address == 126 and e.length == 10]
    goal_writes = [e for e in events if e.instruction == "sync_write" and e.register == "goal_position"]
    health = [e for e in events if e.instruction == "fast_sync_read" and e.register in
              ("hardware_error_status", "present_temperature")]
    assert len(events) == len(state_reads) + len(goal_writes) + len(health), "unexpected instructions"
    assert len(state_reads) == ticks + dropped == 20 and ticks > 0 and len(goal_writes) == accepted == 20
    assert 6 <= len(health) <= 10  # two reads per 0.25 s health period
    kinds = "".join("r" if e.instruction == "fast_sync_read" else "w" for e in events if e not in health)
    assert kinds == "rw" * 20, "one sync read per tick, one sync write per answered state"


@pytest.mark.parametrize("fault", ["drop", "corrupt_crc", "late", "missing_servo"])
def test_bus_faults_are_survived_reported_and_recovered(bus, sink, running, fault):
    driver, _ = running
    if fault == "drop":
        bus.faults.drop_replies = 3
    elif fault == "corrupt_crc":
        bus.faults.corrupt_crc = 3
    elif fault == "late":
        bus.faults.late_s, bus.faults.late_replies = 0.05, 2  # beyond the SDK's 34 ms reply timeout
    else:
        bus.faults.missing_ids = {7}
        assert wait_for(lambda: driver.stats.consecutive_read_failures >= 3)
        bus.faults.missing_ids = set()
    assert wait_for(lambda: driver.stats.dropped_reads >= 1)
    reported = wait_for(lambda: int(sink.diags[-1][0].values["dropped_reads"]) >= 1 and sink.diags[-1])
    assert "sync read of 10 bytes at 126" in reported[0].values["last_read_error"]
    recovered = len(sink.states)
    assert wait_for(lambda: len(sink.states) >= recovered + 10, timeout=3.0), "state stopped after the fault"
    assert driver.stats.consecutive_read_failures == 0 and driver.state is DriverState.ACTIVE
    assert not [m for level, m in sink.logs if "driver loop failed" in m]


def test_overload_error_is_reported_and_enable_reboots_the_servo(bus, sink, running):
    driver, _ = running
    bus.inject_hardware_error(5, 0x20)  # overload: the servo drops torque and latches the error
    wait_for(lambda: next((s for s in sink.diags[-1] if s.name.startswith("hand_driver: servo 5 ")), None)
                     if sink.diags and sink.diags[-1][-1].values.get("error_flags", "x") is not None else None)
    assert wait_for(lambda: driver.stats.health and 5 in driver.stats.health.errors)
    assert wait_for(lambda: [s for s in sink.diags[-1] if s.name == "hand_driver: servo 5 mf_mcp"])
    assert wait_for(lambda: [s for s in sink.diags[-1] if s.name == "hand_driver: servo 5 mf_mcp"][0].level == 2)
    status = [s for s in sink.diags[-1] if s.name == "hand_driver: servo 5 mf_mcp"][0]
    assert status.values["error_flags"] == "overload" and "reboot" in status.message
    assert bus.servos[5].get("torque_enable") == 0
    bus.clear_fault_cause(5)
    ok, message = driver.activate()  # /leap_hand/enable true while active: the re-enable
    assert ok and "rebooted servo(s) [5]" in message
    assert bus.servos[5].get("hardware_error_status") == 0 and bus.servos[5].get("torque_enable") == 1
    assert bus.servos[5].get("position_p_gain") == 800 and bus.servos[5].get("operating_mode") == 5
    assert wait_for(lambda: driver.stats.health and not driver.stats.health.errors)


def test_overheat_stays_latched_while_the_cause_persists(bus, sink, running):
    driver, _ = running
    bus.inject_hardware_error(12, 0x04, temperature=78)
    assert wait_for(lambda: driver.stats.health and driver.stats.health.errors.get(12) == ["overheating"])
    assert driver.stats.health.temperature[12] == 78
    ok, _ = driver.activate()  # reboot cannot clear a cause that is still there
    assert wait_for(lambda: driver.stats.health and 12 in driver.stats.health.errors)
    assert bus.servos[12].get("torque_enable") == 0 or not ok


def test_port_vanishing_and_coming_back(bus, sink, stepped):
    driver, clock = stepped
    bus.vanish()
    for _ in range(3):
        next_tick(driver, clock, sink)
    assert driver.stats.port_lost == 1 and not driver.stats.connected
    lost_at = len(sink.states)
    for _ in range(10):  # 0.5 s of ticks without a bus (one reconnect attempt fails in between)
        next_tick(driver, clock, sink)
    assert len(sink.states) == lost_at, "no state may be published without a bus"
    assert sink.diags[-1][0].level == 2
    bus.restore()
    for _ in range(25):  # reconnects within reconnect_period (1 s)
        next_tick(driver, clock, sink)
        if driver.stats.connected:
            break
    assert driver.stats.connected and driver.stats.reconnects == 1
    next_tick(driver, clock, sink)
    assert len(sink.states) > lost_at
    assert all(s.get("torque_enable") == 1 for s in bus.servos.values()), "torque restored after reconnect"
    assert driver.submit(hand.CANONICAL_POSE, sink.states[-1][0]).accepted


def test_byte_stuffing_both_ways_with_the_sdk(bus, io):
    from dexndm_driver.registers import Register
    pattern = int.from_bytes(b"\xff\xff\xfd\x00", "little")  # looks like a header on the wire
    bus.servos[9].table[200:204] = b"\xff\xff\xfd\x00"
    spare = Register("spare", 200, 4)
    assert io.read(9, spare) == pattern  # status packet stuffed by the emulator, unstuffed by the SDK
    assert io.sync_read(200, 4, (8, 9), fast=False)[9] == b"\xff\xff\xfd\x00"
    start = len(bus.log)
    # dynamixel-sdk 4.1.0 does not stuff what it sends (txPacket discards addStuffing's result), so the
    # emulator, like a servo, parses by length and removes only an FD that stuffing added
    io.sync_write(REGISTERS["goal_position"], {9: pattern})
    event = wait_for(lambda: bus.events(start) and bus.events(start)[0])
    assert event.values == (pattern,) and event.request_bytes == 14 + 5
    assert bus.servos[9].get("goal_position") != pattern, "out-of-limit goal must be refused by the servo"


def test_refused_commands_never_reach_the_bus(bus, sink):
    clock = ManualClock()
    driver = bring_up(HandDriver(BusBackend(bus.port, latency_ms=SLACK_MS), sink, DriverConfig(command_timeout=0.3),
                                 clock), activate=False)
    try:
        assert driver.state is DriverState.INACTIVE and sink.wait_until(lambda: sink.states)
        next_tick(driver, clock, sink)
        writes_before = sum(e.instruction == "sync_write" for e in bus.events())
        latest = sink.states[-1][0]
        assert driver.submit(hand.CANONICAL_POSE, latest).reason == "inactive"
        assert driver.activate()[0]
        next_tick(driver, clock, sink)
        latest = sink.states[-1][0]
        bad = hand.CANONICAL_POSE.copy()
        bad[2] = float("nan")
        assert driver.submit(bad, latest).reason == "non_finite"
        assert driver.submit(hand.CANONICAL_POSE, latest + 1).reason == "future"
        assert driver.submit(hand.CANONICAL_POSE, sink.states[0][0]).reason == "stale"
        bus.faults.missing_ids = {0}  # reads fail: no new state, the last one ages
        for _ in range(7):  # 0.35 s of the driver's clock > command_timeout
            next_tick(driver, clock, sink)
        assert driver.stats.consecutive_read_failures >= 7  # (one more if a reply missed the SDK timeout)
        assert driver.submit(hand.CANONICAL_POSE, sink.states[-1][0]).reason == "late"
        bus.faults.missing_ids = set()
        next_tick(driver, clock, sink)
        goal_writes = [e for e in bus.events() if e.instruction == "sync_write"]
        assert len(goal_writes) == writes_before + 1  # only the hold-at-activation write
        assert driver.stats.refused["inactive"] == driver.stats.refused["late"] == 1
        assert driver.stats.accepted == 0 and driver.stats.holding
    finally:
        driver.stop()
