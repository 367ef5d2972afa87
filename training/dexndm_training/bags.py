"""Robot bags -> the transition dataset layout (dataset.py): `dexndm-train convert-bags BAG_DIR OUT_DIR`.

Input: a Chaos Box collection directory (one MCAP file per episode, see dexndm_collect.bag) or any
rosbag2 directory / .mcap file holding /leap_hand/joint_states, /leap_hand/command and
/dexndm/collect/episode. Episodes are cut by EpisodeEvent START/END (ABORTed or unfinished ones are
dropped and reported).

A transition is (q_t, a_t) -> q_{t+1}: each HandCommand is paired with the JointState it answers
(``state_stamp == header.stamp``) and with the state that followed it. Broken transitions are dropped
and counted by reason: a command answering no recorded state, a second command for one state, no next
state, a skipped tick (the next state more than 1.5 nominal control periods, 75 ms, later), NaN/inf values,
and every command answering a state inside a window where the driver's diagnostics counters of refused
or timed-out commands rose (the driver never applied one of them; which one is not recorded). Rows stay
contiguous in time: an episode with drops is split into segments, each a dataset episode
(success = the whole episode survived intact).
"""
from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from dexndm_description import hand
from dexndm_description import interfaces as ros
from dexndm_description.wrist import parse_wrist
from dexndm_training.dataset import Episode, write_dataset

STATE_TOPIC, COMMAND_TOPIC, DIAGNOSTICS_TOPIC = ros.JOINT_STATES, ros.HAND_COMMAND, ros.DIAGNOSTICS
DRIVER_COUNTERS = ("refused_total", "watchdog_timeouts")  # hand_driver's "commands" diagnostics
EPISODE_TOPIC, WRIST_TOPIC = ros.EPISODE, ros.WRIST_ORIENTATION
START, END, ABORT = 0, 1, 2
GAP_FACTOR = 1.5  # a next state later than this many control periods means a tick was skipped


@dataclass
class ConversionReport:
    files: int = 0
    episodes: int = 0  # complete episodes found
    segments: int = 0  # dataset episodes written
    transitions: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> transitions dropped
    skipped_episodes: Counter = field(default_factory=Counter)  # reason -> episodes dropped whole

    def line(self, out: Path) -> str:
        return (f"episodes={self.episodes} transitions={self.transitions} dropped={sum(self.dropped.values())} "
                f"segments={self.segments} skipped_episodes={sum(self.skipped_episodes.values())} dataset={out}")


_stamp = ros.stamp_to_ns


def bag_inputs(path: Path) -> list[Path]:
    """The storage files to read, in order: a collection's episode files, a bag's files, or one .mcap."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a bag directory nor an .mcap file")
    files = sorted(path.glob("*.mcap"))
    if not files:
        raise FileNotFoundError(f"{path} holds no .mcap files; is it a rosbag2 (MCAP) directory?")
    return files


def read_file(path: Path) -> list[dict]:
    """Episodes of one storage file: each {episode, source, wrist, end, states, commands, wrists}."""
    episodes, current = [], None
    with AnyReader([path]) as reader:
        topics = (STATE_TOPIC, COMMAND_TOPIC, EPISODE_TOPIC, WRIST_TOPIC, DIAGNOSTICS_TOPIC)
        wanted = [c for c in reader.connections if c.topic in topics]
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == EPISODE_TOPIC:
                if msg.event == START:
                    current = {"episode": int(msg.episode), "source": msg.source, "wrist": msg.wrist, "end": None,
                               "states": {}, "commands": [], "wrists": [], "driver_counts": []}
                    episodes.append(current)
                elif current is not None and int(msg.episode) == current["episode"]:
                    current["end"] = "END" if msg.event == END else f"ABORT: {msg.reason}"
                    current = None if msg.event == ABORT else current
                continue
            if current is None or (current["end"] and conn.topic != STATE_TOPIC):
                continue  # after END only states (the answer to the last command) belong to the episode
            if conn.topic == STATE_TOPIC:
                current["states"].setdefault(_stamp(msg.header.stamp), np.asarray(msg.position, dtype=float))
            elif conn.topic == COMMAND_TOPIC:
                current["commands"].append((_stamp(msg.state_stamp), np.asarray(msg.position, dtype=float)))
            elif conn.topic == DIAGNOSTICS_TOPIC:
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if all(key in values for key in DRIVER_COUNTERS):
                        count = sum(int(values[key]) for key in DRIVER_COUNTERS)
                        current["driver_counts"].append((_stamp(msg.header.stamp), count))
            else:
                q = msg.quaternion
                current["wrists"].append([q.x, q.y, q.z, q.w])
    return episodes


def refused_windows(driver_counts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """State-stamp windows [a, b) in which the driver refused or timed out a command.

    The driver's diagnostics (stamped like its states) carry cumulative counters; a rise between two
    reports means some state stamped in [a, b) was answered too late and its command never applied.
    """
    points = sorted(driver_counts)
    return [(a, b) for (a, ca), (b, cb) in zip(points, points[1:]) if cb > ca]


def pair_transitions(states: dict[int, np.ndarray], commands: list[tuple[int, np.ndarray]],
                     dropped: Counter, driver_counts: list[tuple[int, int]] = ()
                     ) -> list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Segments of contiguous (q_t, a_t, q_{t+1}) triples; drops counted by reason into `dropped`."""
    windows = refused_windows(list(driver_counts))
    stamps = np.array(sorted(states), dtype=np.int64)
    period = hand.CONTROL_DT * 1e9  # nominal: lockstep runs faster than real time never skip by less
    segments, seg, answered, last_next = [], [], set(), None
    for stamp, target in commands:
        reason = None
        if stamp not in states:
            reason = "command answers no recorded state"
        elif any(a <= stamp < b for a, b in windows):
            reason = "driver refused or timed out a command near here (diagnostics)"
        elif stamp in answered:
            reason = "second command for one state"
        else:
            answered.add(stamp)
            pos = int(np.searchsorted(stamps, stamp, side="right"))
            if pos >= len(stamps):
                reason = "no next state"
            elif stamps[pos] - stamp > GAP_FACTOR * period:
                reason = "skipped tick before the next state"
            elif not (np.all(np.isfinite(states[stamp])) and np.all(np.isfinite(target))
                      and np.all(np.isfinite(states[int(stamps[pos])]))):
                reason = "NaN or inf"
            elif len(target) != hand.NUM_JOINTS or len(states[stamp]) != hand.NUM_JOINTS:
                reason = "wrong number of joints"
        if reason:
            dropped[reason] += 1
            if seg:
                segments.append(seg)
            seg, last_next = [], None
            continue
        nxt = int(stamps[pos])
        if seg and last_next != stamp:
            segments.append(seg)
            seg = []
        seg.append((states[stamp], target, states[nxt]))
        last_next = nxt
    if seg:
        segments.append(seg)
    return segments


def convert_bags(bag_paths: list[Path], out_dir: Path) -> ConversionReport:
    """Convert bags to one dataset directory; returns what was kept and dropped."""
    report, dataset_episodes = ConversionReport(), []
    for bag_path in bag_paths:
        for file in bag_inputs(Path(bag_path)):
            report.files += 1
            for ep in read_file(file):
                if ep["end"] != "END":
                    report.skipped_episodes[ep["end"] or "no END event (interrupted)"] += 1
                    continue
                report.episodes += 1
                dropped = Counter()
                segments = pair_transitions(ep["states"], ep["commands"], dropped, ep["driver_counts"])
                report.dropped.update(dropped)
                wrist = parse_wrist(ep["wrists"][-1]) if ep["wrists"] else _wrist_from_label(ep["wrist"])
                intact = not dropped and len(segments) == 1
                for seg in segments:
                    q, target, next_q = (np.array(x) for x in zip(*seg))
                    dataset_episodes.append(Episode(q=q, target=target, next_q=next_q, wrist=wrist, axis=np.zeros(3),
                                                    success=intact, source=f"chaos_box:{ep['source']}",
                                                    wrist_label=ep["wrist"]))
                    report.transitions += len(seg)
    report.segments = len(dataset_episodes)
    if not dataset_episodes:
        raise ValueError(f"no complete episode with transitions in {', '.join(map(str, bag_paths))}")
    write_dataset(out_dir, dataset_episodes, provenance={
        "from": "bags", "bags": [str(Path(p).resolve()) for p in bag_paths],
        "dropped": dict(report.dropped), "skipped_episodes": dict(report.skipped_episodes)})
    return report


def _wrist_from_label(label: str) -> np.ndarray:
    try:
        return parse_wrist(label)
    except ValueError:
        return np.array([0.0, 0.0, 0.0, 1.0])


def register(subparsers) -> None:
    """Add `convert-bags` to the dexndm-train command line."""
    cmd = subparsers.add_parser("convert-bags", help="robot bags (rosbag2 MCAP) -> transition dataset")
    cmd.add_argument("bags", nargs="+", type=Path, help="collection/bag directories or .mcap files")
    cmd.add_argument("out", type=Path, help="new dataset directory")
    cmd.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    report = convert_bags(args.bags, args.out)
    for reason, n in sorted(report.dropped.items()):
        print(f"dropped {n} transition(s): {reason}")
    for reason, n in sorted(report.skipped_episodes.items()):
        print(f"skipped {n} episode(s): {reason}")
    print(report.line(args.out))
    return 0
