"""Collection benchmark and soak: `python -m dexndm_collect.soak --minutes 10`.

Runs `dexndm collect` twice on the simulated Chaos Box (sim backend, target world):
1. as fast as possible (realtime_factor 0) for `--fast-episodes` episodes: episodes per minute;
2. at 20 Hz real time (realtime_factor 1) for `--minutes`, then Ctrl-C: ticks dropped between the driver
   and the bag, counted as missing 50 ms periods between consecutive joint-state stamps inside the
   recorded episodes (the sim driver stamps with sim time), plus every command that does not answer
   a recorded state, and the driver's own refused/watchdog counters from its last recorded diagnostics.
The real-time rate is the baseline: `speedup` = fast rate / real-time rate, both measured here.
Bag bytes per episode are the median MCAP file size. Ends with one key=value line.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from dexndm_collect import bag, verify
from dexndm_description import interfaces as ros


def run_collect(out: Path, episodes: int, realtime_factor: float, seconds: float | None, seed: int) -> float:
    """Run the collect app; stop it with SIGINT after `seconds` (None: until done). Returns wall seconds."""
    cmd = ["dexndm", "collect", f"episodes:={episodes}", f"output:={out}", f"realtime_factor:={realtime_factor}",
           f"seed:={seed}", "progress:=false"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    output = proc.stdout.read()
    if seconds is None and proc.returncode != 0:
        raise RuntimeError(f"dexndm collect failed ({proc.returncode}): {output}")
    return time.monotonic() - t0


def episodes_per_minute(out: Path) -> float:
    """Episodes per minute from the median interval between consecutive episode starts (log time)."""
    episodes = json.loads((out / bag.MANIFEST).read_text())["episodes"]
    if len(episodes) < 2:
        return float("nan")
    # Rate between consecutive episode starts: includes the reset between episodes, as a long run sees it.
    starts = np.array([e["start_ns"] for e in episodes], dtype=float)
    return float(60e9 / np.median(np.diff(starts)))


def driver_counters(out: Path) -> dict[str, int]:
    """refused_total and watchdog_timeouts from the last recorded driver diagnostics."""
    found: dict[str, int] = {}
    files = bag.episode_files(out)
    if not files:
        return found
    with AnyReader([files[-1]]) as reader:
        conns = [c for c in reader.connections if c.topic == ros.DIAGNOSTICS]
        for conn, _, raw in reader.messages(connections=conns):
            for status in reader.deserialize(raw, conn.msgtype).status:
                for kv in status.values:
                    if kv.key in ("refused_total", "watchdog_timeouts"):
                        found[kv.key] = int(kv.value)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dexndm_collect.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="real-time soak duration")
    parser.add_argument("--fast-episodes", type=int, default=5, help="episodes at realtime_factor 0")
    parser.add_argument("--output", type=Path, default=None, help="keep the bags here (default: a temp dir)")
    args = parser.parse_args(argv)
    root = args.output or Path(tempfile.mkdtemp(prefix="dexndm-soak-"))
    root.mkdir(parents=True, exist_ok=True)

    fast_wall = run_collect(root / "fast", args.fast_episodes, 0.0, None, seed=1)
    fast_rate = episodes_per_minute(root / "fast")
    print(f"fast: {args.fast_episodes} episodes in {fast_wall:.1f} s wall (with startup), "
          f"{fast_rate:.2f} episodes/min between episode starts")

    run_collect(root / "realtime", 10**6, 1.0, args.minutes * 60.0, seed=2)
    checks = verify.check_collection(root / "realtime")
    rt_rate = episodes_per_minute(root / "realtime")
    dropped = sum(c.dropped_ticks for c in checks)
    unanswered = sum(c.unanswered_commands for c in checks)
    states = sum(c.states for c in checks)
    counters = driver_counters(root / "realtime")
    sizes = [c.bytes for c in verify.check_collection(root / "fast")] + [c.bytes for c in checks]
    print(f"realtime: {len(checks)} complete episodes, {states} states recorded, {dropped} ticks dropped, "
          f"{unanswered} commands answering no recorded state, driver counters {counters}")
    print(f"minutes={args.minutes:g} episodes_rt={len(checks)} transitions_rt={sum(c.commands for c in checks)} "
          f"dropped_ticks={dropped} unanswered_commands={unanswered} "
          f"driver_refused={counters.get('refused_total', -1)} driver_watchdog={counters.get('watchdog_timeouts', -1)} "
          f"eps_per_min_rt={rt_rate:.2f} eps_per_min_fast={fast_rate:.2f} speedup={fast_rate / rt_rate:.2f} "
          f"bytes_per_episode={int(np.median(sizes)) if sizes else 0} bags={root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
