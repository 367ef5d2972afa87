"""Benchmark the bus cycle on the emulated bus: `python -m dexndm_driver.bench [--seconds 10]`.

Runs the real driver core (20 Hz wall-clock loop, dynamixel-sdk, fast sync read) against 16
emulated XC330 servos on a pty, with a stand-in policy answering every state at once. Reports the
read+write cycle time per tick (p50/p99), the wire-time limit at 4 Mbps from the exact bytes of
the tick's packets and their status replies (10 bits per byte), their ratio, and the jitter p99 of
the 20 Hz loop. The pty is not a 4 Mbps wire: bytes cross it at memory speed, so the cycle time
measured here is SDK + emulator + OS overhead, not UART or USB time.
"""
from __future__ import annotations

import argparse
import collections
import threading
import time

import numpy as np

from dexndm_description import hand

from .backends import BusBackend
from .driver import DriverConfig, HandDriver
from .emulator import EmulatedBus, FirstOrderMotors
from .registers import STATE_BLOCK_SIZE, STATE_BLOCK_START

BITS_PER_BYTE = 10  # start + 8 data + stop


def wire_ms(n_bytes: float, baudrate: int) -> float:
    """Time (ms) to move n_bytes over a UART at baudrate with 10 bits per byte."""
    return 1e3 * n_bytes * BITS_PER_BYTE / baudrate


class _LatestState:
    """The driver's sink for the benchmark: keeps the newest state stamp and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.count, self.stamp_ns = 0, 0
        self.changed = threading.Condition()

    def state(self, reading, stamp_ns: int) -> None:
        with self.changed:
            self.count, self.stamp_ns = self.count + 1, stamp_ns
            self.changed.notify_all()

    def clock(self, stamp_ns: int) -> None:
        pass

    def world(self, world, stamp_ns: int) -> None:
        pass

    def diagnostics(self, stats, stamp_ns: int) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        if level != "info":
            print(f"driver {level}: {message}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run the 20 Hz loop")
    parser.add_argument("--baudrate", type=int, default=4_000_000, help="baud rate for the wire-time limit")
    args = parser.parse_args(argv)

    sink = _LatestState()
    with EmulatedBus(FirstOrderMotors()) as bus:
        driver = HandDriver(BusBackend(bus.port, args.baudrate), sink, DriverConfig(diagnostics_period=3600.0))
        for name in ("cycle_s", "jitter_s", "read_s"):
            setattr(driver.stats, name, collections.deque(maxlen=1_000_000))
        stop = threading.Event()

        def policy() -> None:  # answers each state as soon as it is published
            answered = 0
            while not stop.is_set():
                with sink.changed:
                    sink.changed.wait_for(lambda: sink.count > answered or stop.is_set(), timeout=0.5)
                    answered, stamp = sink.count, sink.stamp_ns
                if answered and not stop.is_set():
                    driver.submit(hand.CANONICAL_POSE + 0.1 * np.sin(answered / 10.0), stamp)

        driver.start()
        for transition in (driver.configure, driver.activate):
            ok, message = transition()
            if not ok:
                raise SystemExit(f"the driver did not come up: {message}")
        first_event = len(bus.log)
        driver.stats.cycle_s.clear()
        driver.stats.jitter_s.clear()
        answerer = threading.Thread(target=policy, daemon=True)
        answerer.start()
        time.sleep(args.seconds)
        stop.set()
        answerer.join()
        events = bus.events(first_event)
        driver.stop()

    reads = [e for e in events if e.address == STATE_BLOCK_START and e.length == STATE_BLOCK_SIZE and e.instruction.endswith("sync_read")]
    writes = [e for e in events if e.instruction == "sync_write" and e.register == "goal_position"]
    read_bytes = float(np.median([e.request_bytes + e.reply_bytes for e in reads]))
    write_bytes = float(np.median([e.request_bytes + e.reply_bytes for e in writes]))
    limit = wire_ms(read_bytes + write_bytes, args.baudrate)
    cycle = 1e3 * np.array(driver.stats.cycle_s)
    jitter = 1e3 * np.array(driver.stats.jitter_s)
    p50, p99 = float(np.percentile(cycle, 50)), float(np.percentile(cycle, 99))
    print(f"ticks: {len(cycle)} read+write cycles in {args.seconds:.0f} s "
          f"({len(reads)} state reads, {len(writes)} goal writes, {driver.stats.dropped_reads} dropped reads)")
    print(f"wire bytes per tick: {reads[0].instruction} {reads[0].request_bytes} + status {reads[0].reply_bytes}, "
          f"sync write {writes[0].request_bytes} (no status) = {read_bytes + write_bytes:.0f} bytes "
          f"-> {limit:.3f} ms at {args.baudrate} baud, {BITS_PER_BYTE} bits/byte")
    print(f"cycle time (read + write, SDK + emulator on a pty): p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
          f"{p50 / limit:.1f}x the wire limit")
    print(f"20 Hz loop jitter: p50 {np.percentile(jitter, 50):.3f} ms, p99 {np.percentile(jitter, 99):.3f} ms")
    print("note: the pty is not a 4 Mbps wire (bytes move at memory speed); on a U2D2 the wire time and the "
          "FTDI latency timer (set it to 1 ms) add to the cycle")
    print(f"cycle_p50_ms={p50:.3f} cycle_p99_ms={p99:.3f} wire_limit_ms={limit:.3f} "
          f"overhead_ratio={p50 / limit:.2f} jitter_p99_ms={np.percentile(jitter, 99):.3f}")


if __name__ == "__main__":
    main()
