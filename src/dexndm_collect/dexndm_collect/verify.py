"""Read a collection back and check it: `python -m dexndm_collect.verify OUT_DIR`.

Per episode file: events (START first, END last, the file's index), states, commands, whether every
command answers a recorded state, and ticks dropped between driver and bag (gaps in the joint-state
header stamps wider than 1.5 control periods, counted in missing periods).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from dexndm_collect import bag
from dexndm_description import hand
from dexndm_description.interfaces import stamp_to_ns


@dataclass
class EpisodeCheck:
    index: int
    events: list[tuple[int, int]]  # (event, episode) in log order
    states: int
    commands: int
    unanswered_commands: int  # commands whose state_stamp matches no recorded state
    duplicate_answers: int  # states answered more than once
    dropped_ticks: int  # control periods missing between consecutive recorded states
    bytes: int

    @property
    def ok(self) -> bool:
        return (self.events[:1] == [(0, self.index)] and self.events[-1:] == [(1, self.index)]
                and self.states == self.commands + 1 and self.unanswered_commands == 0 and self.duplicate_answers == 0)


def check_episode(file: Path, period_ns: int = int(hand.CONTROL_DT * 1e9)) -> EpisodeCheck:
    events, stamps, answers = [], [], []
    with AnyReader([file]) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic not in (bag.STATE_TOPIC, bag.COMMAND_TOPIC, bag.EPISODE_TOPIC):
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == bag.EPISODE_TOPIC:
                events.append((int(msg.event), int(msg.episode)))
            elif conn.topic == bag.STATE_TOPIC:
                stamps.append(stamp_to_ns(msg.header.stamp))
            else:
                answers.append(stamp_to_ns(msg.state_stamp))
    state_set = set(stamps)
    gaps = np.diff(np.sort(np.array(stamps, dtype=np.int64)))
    dropped = int(np.sum(np.maximum(0, np.rint(gaps / period_ns) - 1)[gaps > 1.5 * period_ns]))
    return EpisodeCheck(int(file.stem.split("_")[-1]), events, len(stamps), len(answers),
                        sum(a not in state_set for a in answers), len(answers) - len(set(answers)), dropped,
                        file.stat().st_size)


def check_collection(out_dir: str | Path) -> list[EpisodeCheck]:
    return [check_episode(f) for f in bag.episode_files(out_dir)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dexndm_collect.verify OUT_DIR", file=sys.stderr)
        return 2
    checks = check_collection(argv[0])
    for c in checks:
        if not c.ok:
            print(f"episode {c.index}: {c}", file=sys.stderr)
    print(f"episodes={len(checks)} ok_episodes={sum(c.ok for c in checks)} "
          f"transitions={sum(c.commands for c in checks)} dropped_ticks={sum(c.dropped_ticks for c in checks)} "
          f"bytes_per_episode={int(np.median([c.bytes for c in checks])) if checks else 0}")
    return 0 if checks and all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
