"""`dexndm-train view-bag BAG`: a recorded bag (a Chaos Box collection, or any rosbag2 MCAP with the
runtime topics) as a rerun recording, to scrub through what the hand did.

The recording has the same entities as a live run (dexndm_viz.recorder): the hand placed by forward
kinematics from every joint state, each joint's position against its commanded target, the driver's
diagnostics, episode events; policy steps and object poses too when the bag holds them. Timelines:
`episode_NNNNNN` for each episode, one entry per joint state of that episode (0 = its first state), so
choosing an episode's timeline scrubs that episode alone; `bag_tick` counts every state of the bag and
`bag_time` is the time it was recorded. States outside an episode are on `bag_tick`/`bag_time` only.
Events and diagnostics are placed at the tick of the latest state (START at the episode's first).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rosbags.highlevel import AnyReader

from dexndm_description import interfaces as ros
from dexndm_training.bags import (ABORT, COMMAND_TOPIC, DIAGNOSTICS_TOPIC, EPISODE_TOPIC, START, STATE_TOPIC,
                                  WRIST_TOPIC, bag_inputs)

STEP_TOPIC, POSE_TOPIC = ros.POLICY_STEP, ros.OBJECT_POSE
EVENT_NAMES = {0: "START", 1: "END", 2: "ABORT"}
FLUSH_ROWS = 200


@dataclass
class ViewReport:
    episodes: int = 0
    ticks: int = 0  # joint states logged
    commands: int = 0
    recording: Path | None = None

    def line(self) -> str:
        return f"episodes={self.episodes} ticks={self.ticks} commands={self.commands} recording={self.recording}"


_ns = ros.stamp_to_ns


def parse_episodes(spec: str | None) -> set[int] | None:
    """'0,3,5-7' -> {0, 3, 5, 6, 7}; None or '' -> every episode."""
    if not spec:
        return None
    chosen: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            chosen.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ValueError(f"cannot read episodes {spec!r}: write indices and ranges, e.g. 0,3,5-7") from None
    return chosen


def view_bag(bag: Path, out: Path, episodes: set[int] | None = None, mode: str = "rerun", web_port: int = 9090):
    """Write the rerun recording of `bag` to `out`; returns (report, viewer process or None)."""
    from dexndm_viz.layout import default_blueprint
    from dexndm_viz.recorder import HandRecorder
    from dexndm_viz.viewers import ViewerProcess, check_mode, open_recording

    files = bag_inputs(bag)  # FileNotFoundError with what it expected, before anything is written
    check_mode(mode)
    stream, _ = open_recording("rerun", out, "dexndm", f"bag {Path(bag).name}", default_blueprint("bag_tick"))
    recorder = HandRecorder(stream)
    report = ViewReport(recording=Path(out).resolve())
    tick, current, episode_tick, seen = 0, None, 0, set()
    for file in files:
        with AnyReader([file]) as reader:
            for conn, log_ns, raw in reader.messages():
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == EPISODE_TOPIC and msg.event == START:
                    recorder.flush(final=True)  # the previous episode's last state (no command) goes now
                    current, episode_tick = int(msg.episode), 0
                in_scope = episodes is None or current in episodes
                # A state opens the next tick; anything else belongs to the latest state's tick.
                at = 0 if conn.topic == STATE_TOPIC else 1
                times = (("bag_tick", "sequence", max(tick - at, 0)), ("bag_time", "timestamp", log_ns * 1e-9))
                if current is not None:
                    times += ((f"episode_{current:06d}", "sequence", max(episode_tick - at, 0)),)
                if conn.topic == WRIST_TOPIC:
                    q = msg.quaternion
                    recorder.set_wrist([q.x, q.y, q.z, q.w])
                elif not in_scope:
                    continue
                elif conn.topic == EPISODE_TOPIC:
                    seen.add(int(msg.episode))
                    text = f"episode {msg.episode} {EVENT_NAMES.get(msg.event, msg.event)} after {msg.steps} steps"
                    recorder.log_event(times, text + (f": {msg.reason}" if msg.reason else ""),
                                       "WARN" if msg.event == ABORT else "INFO")
                    if msg.event == ABORT:
                        current = None  # an aborted episode has no more states
                elif conn.topic == STATE_TOPIC:
                    recorder.add_state(times, _ns(msg.header.stamp), msg.position)
                    tick, episode_tick = tick + 1, episode_tick + 1
                    if recorder.pending >= FLUSH_ROWS:
                        recorder.flush()
                elif conn.topic == COMMAND_TOPIC:
                    recorder.add_command(_ns(msg.state_stamp), msg.position)
                elif conn.topic == STEP_TOPIC:
                    recorder.add_step(_ns(msg.state_stamp), msg.base_target, msg.residual, msg.executed_target,
                                      msg.axis, msg.inference_ms)
                elif conn.topic == POSE_TOPIC:
                    p, o = msg.pose.position, msg.pose.orientation
                    recorder.add_object_pose(_ns(msg.header.stamp), [p.x, p.y, p.z], [o.x, o.y, o.z, o.w])
                elif conn.topic == DIAGNOSTICS_TOPIC:
                    recorder.log_diagnostics([(int(s.level), s.name, s.message, {kv.key: kv.value for kv in s.values})
                                              for s in msg.status])
    recorder.flush(final=True)
    stream.flush()
    stream.disconnect()
    report.episodes, report.ticks, report.commands = len(seen), recorder.stats.rows_sent, recorder.stats.commands
    viewer = None
    if mode == "web":
        viewer = ViewerProcess.web(web_port, files=(str(out),))
    elif mode == "window":
        viewer = ViewerProcess.window(files=(str(out),))
    return report, viewer


def register(subparsers) -> None:
    """Add `view-bag` to the dexndm-train command line."""
    cmd = subparsers.add_parser("view-bag", help="a recorded bag as a rerun recording (one timeline per episode)")
    cmd.add_argument("bag", type=Path, help="collection/bag directory or .mcap file")
    cmd.add_argument("--out", type=Path, default=None, help="the .rrd to write (default: BAG.rrd beside the bag)")
    cmd.add_argument("--episodes", default="", help="only these episodes, e.g. 0,3,5-7 (default: all)")
    cmd.add_argument("--viz", choices=("rerun", "web", "window"), default="rerun",
                     help="rerun: write the .rrd only; web: also serve it on 127.0.0.1 and print the URL (Ctrl-C ends); "
                          "window: also open the native viewer")
    cmd.add_argument("--port", type=int, default=9090, help="web viewer port on 127.0.0.1 (--viz web; 0 = any free)")
    cmd.set_defaults(func=_main, clean_errors=True)


def _main(args: argparse.Namespace) -> int:
    from dexndm_viz.viewers import VizError

    out = args.out or Path(str(args.bag).rstrip("/") + ".rrd")
    try:
        report, viewer = view_bag(args.bag, out, parse_episodes(args.episodes), args.viz, args.port)
    except VizError as err:
        raise RuntimeError(str(err)) from None
    if viewer is not None:
        print(f"{'web viewer at' if args.viz == 'web' else 'native viewer on'} {viewer.url}", flush=True)
    print(report.line(), flush=True)
    if viewer is not None and args.viz == "web":
        print("serving until Ctrl-C", flush=True)
        try:
            viewer.proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            viewer.stop()
    return 0
