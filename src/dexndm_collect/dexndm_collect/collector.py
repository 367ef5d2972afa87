"""The Chaos Box replay-and-log loop, event-driven on joint states (no rclpy; the node wires it to topics).

Per state the loop answers with exactly one command (lockstep with the driver: the command carries the
state's stamp). A run alternates two phases until the output directory holds `episodes` episodes:

- reset: the hand goes from where it is to the next episode's first target, linearly over `reset_steps`
  ticks (1 s at 20 Hz), then holds it for `settle_steps`; nothing is recorded;
- episode: `steps` commands (400 = 20 s), each answering one state; the bag holds the `steps + 1` states
  (the last one is the answer to the last command), the commands, START and END events, and whatever
  wrist orientation and diagnostics arrive meanwhile, plus (right after START) the last diagnostics
  from before the episode: the baseline of the driver's refused/timed-out command counters.

`episodes` counts the episodes the output directory should hold, so rerunning the same command after a
crash finishes the collection. A fault (no state for `state_timeout` s, a servo's hardware error on the
driver's diagnostics, a full disk) aborts the open episode (its partial file is dropped), publishes ABORT and
stops with the reason. A bus error (lost reads, a lost port: the driver's own status) is transient: the open
episode is aborted the same way and redone after a fresh reset, up to `bus_retries` times per run; the run
stops only when the retries are spent or the states stop for `state_timeout` s.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dexndm_collect import bag
from dexndm_collect.sources import ReplaySource
from dexndm_description.interfaces import DIAGNOSTICS as DIAGNOSTICS_TOPIC

START, END, ABORT = 0, 1, 2  # dexndm_msgs/EpisodeEvent
BUS_STATUS = "hand_driver: bus"  # the driver's diagnostics status of the link to the servos


class Outputs(Protocol):
    """What the loop sends out; each call publishes and returns the message's CDR bytes for the bag."""

    def command(self, target: np.ndarray, state_stamp_ns: int) -> bytes: ...

    def event(self, kind: int, episode: int, steps: int, reason: str) -> bytes: ...


@dataclass
class Progress:
    episode: int  # index of the episode in progress (or the next one)
    episodes_total: int
    step: int
    transitions: int  # recorded in the output directory, all runs
    episodes_per_minute: float  # this run
    eta_s: float
    completed: int  # episodes in the output directory
    new_episodes: int  # completed in this run


class CollectionRun:
    """One collection into one output directory; see the module docstring."""

    def __init__(self, writer: bag.EpisodeBagWriter, source: ReplaySource, episodes: int, outputs: Outputs,
                 wrist_label: str = "", reset_steps: int = 20, settle_steps: int = 10, state_timeout: float = 5.0,
                 bus_retries: int = 3, clock=time.monotonic, wall_ns=time.time_ns, on_progress=None):
        self.writer, self.source, self.outputs = writer, source, outputs
        self.episodes_total, self.wrist_label = int(episodes), wrist_label
        self.steps, self.reset_steps, self.settle_steps = source.steps, max(1, reset_steps), max(0, settle_steps)
        self.state_timeout, self.clock, self.wall_ns = state_timeout, clock, wall_ns
        self.bus_retries, self.redone = max(0, int(bus_retries)), 0
        self.on_progress = on_progress or (lambda progress: None)
        report = writer.open()
        self.discarded = report.discarded
        self.completed = len(report.completed)
        self.transitions = sum(e.get("transitions", 0) for e in writer.manifest["episodes"])
        self.index = report.next_episode
        self.new_episodes = 0
        self.failure = ""
        self.done = self.completed >= self.episodes_total
        self.stale_states = 0
        self._t0 = clock()
        self._last_state_t: float | None = None
        self._last_stamp = -1
        self._phase = "reset"
        self._k = 0
        self._targets: np.ndarray | None = None
        self._reset_from: np.ndarray | None = None
        self._last_diagnostics: bytes | None = None

    @property
    def started(self) -> bool:
        """A joint state has arrived: the driver is up."""
        return self._last_state_t is not None

    # ---- inputs ---------------------------------------------------------------------------------
    def on_state(self, q: np.ndarray, stamp_ns: int, raw: bytes) -> None:
        """One joint state (rad [16], header stamp ns, its CDR bytes): record it and answer it."""
        if self.done:
            return
        self._last_state_t = self.clock()
        if stamp_ns <= self._last_stamp:
            if stamp_ns < self._last_stamp - 10**9:
                self.fail("driver restarted (state stamps went back in time); rerun to resume")
            self.stale_states += 1
            return
        self._last_stamp = stamp_ns
        q = np.asarray(q, dtype=float)
        try:
            if self._phase == "episode":
                self.writer.write(bag.STATE_TOPIC, self.wall_ns(), raw)
                if self._k == self.steps:
                    self._finish_episode()
                    if self.done:
                        return
                else:
                    self._send(self._targets[self._k], stamp_ns)
                    self._k += 1
                    return
            self._reset_step(q, stamp_ns, raw)
        except bag.BagError as err:
            self.fail(str(err))

    def record(self, topic: str, raw: bytes) -> None:
        """A message of another recorded topic (wrist orientation, diagnostics) for the open episode."""
        if not self.done:
            if topic == DIAGNOSTICS_TOPIC:
                self._last_diagnostics = raw
            try:
                self.writer.write(topic, self.wall_ns(), raw)
            except bag.BagError as err:
                self.fail(str(err))

    def check_timeout(self) -> None:
        """Call periodically: fails the run when the driver has been silent for state_timeout s."""
        if self.done or self._last_state_t is None:
            return
        silent = self.clock() - self._last_state_t
        if silent > self.state_timeout:
            self.fail(f"driver fault: no joint state for {silent:.1f} s (state_timeout {self.state_timeout} s); "
                      f"check the hand driver, then rerun on the same output to resume")

    def on_driver_errors(self, errors: list[tuple[str, str]]) -> None:
        """ERROR-level diagnostics statuses (name, message). Before the first state they are ignored (a driver
        may report "not connected" while it starts). A servo's error stops the run: overload or overheating
        needs a person. Bus errors only: the open episode is dropped and redone after a fresh reset (up to
        `bus_retries` per run); between episodes the reset starts over, which loses nothing."""
        if self.done or not self.started or not errors:
            return
        reason = "driver fault: " + "; ".join(f"{name}: {message}" for name, message in errors)
        if any(name != BUS_STATUS for name, _ in errors):
            self.fail(reason)
        elif self.writer.episode_open and self.redone >= self.bus_retries:
            self.fail(f"{reason} (bus_retries {self.bus_retries} spent; check the cable and the power supply)")
        else:  # the reset starts again from where the hand is; an open episode is dropped, to be redone
            if self.writer.episode_open:
                self.redone += 1
                self._abort_open_episode(reason, record=f"{reason}; redone")
            self._restart_reset()

    def fail(self, reason: str, publish: bool = True) -> None:
        """Stop the run: abort the open episode (dropped from the bag; ABORT published unless `publish` is false)."""
        if self.done:
            return
        if self.writer.episode_open:
            self._abort_open_episode(reason, publish=publish)
        self.failure, self.done = reason, True

    def _abort_open_episode(self, reason: str, publish: bool = True, record: str | None = None) -> None:
        """Publish ABORT (unless not `publish`) and drop the open episode, its reason `record` in the manifest."""
        if publish:
            self.outputs.event(ABORT, self.index, self._k, reason)
        self.writer.abort_episode(reason if record is None else record)

    # ---- phases ---------------------------------------------------------------------------------
    def _reset_step(self, q: np.ndarray, stamp_ns: int, raw: bytes) -> None:
        if self._targets is None:
            self._targets = self.source.episode(self.index)
            self._reset_from, self._k = q.copy(), 0
        if self._k < self.reset_steps + self.settle_steps:
            alpha = min(1.0, (self._k + 1) / self.reset_steps)
            self._send((1.0 - alpha) * self._reset_from + alpha * self._targets[0], stamp_ns, record=False)
            self._k += 1
            return
        self.writer.begin_episode(self.index)
        self._phase, self._k = "episode", 0
        self.writer.write(bag.EPISODE_TOPIC, self.wall_ns(), self.outputs.event(START, self.index, 0, ""))
        if self._last_diagnostics is not None:  # the driver's counters before the episode: a baseline
            self.writer.write(DIAGNOSTICS_TOPIC, self.wall_ns(), self._last_diagnostics)
        self.writer.write(bag.STATE_TOPIC, self.wall_ns(), raw)
        self._send(self._targets[0], stamp_ns)
        self._k = 1

    def _finish_episode(self) -> None:
        self.writer.write(bag.EPISODE_TOPIC, self.wall_ns(), self.outputs.event(END, self.index, self.steps, ""))
        self.writer.end_episode({"source": self.source.name, "wrist": self.wrist_label, "seed": self.source.seed,
                                 "steps": self.steps})
        self.transitions += self.steps
        self.completed += 1
        self.new_episodes += 1
        self.index += 1
        self._restart_reset()
        self.done = self.completed >= self.episodes_total
        self.on_progress(self.progress())

    def _restart_reset(self) -> None:
        """Back to the reset phase: the next state starts the move to episode `index`'s first target."""
        self._phase, self._targets, self._k = "reset", None, 0

    def _send(self, target: np.ndarray, stamp_ns: int, record: bool = True) -> None:
        data = self.outputs.command(target, stamp_ns)
        if record:
            self.writer.write(bag.COMMAND_TOPIC, self.wall_ns(), data)

    # ---- progress -------------------------------------------------------------------------------
    def progress(self) -> Progress:
        minutes = max(1e-9, (self.clock() - self._t0) / 60.0)
        rate = self.new_episodes / minutes
        remaining = max(0, self.episodes_total - self.completed)
        eta = remaining / rate * 60.0 if rate > 0 else float("inf") if remaining else 0.0
        step = self._k if self._phase == "episode" else 0
        return Progress(self.index, self.episodes_total, step, self.transitions, rate, eta, self.completed,
                        self.new_episodes)

    def summary(self) -> str:
        """The app's last line: key=value pairs."""
        p = self.progress()
        return (f"episodes={self.completed} transitions={self.transitions} bag={self.writer.out.resolve()} "
                f"new_episodes={self.new_episodes} discarded={len(self.discarded)} redone={self.redone} "
                f"episodes_per_min={p.episodes_per_minute:.2f} ok={0 if self.failure else 1}")


#: Run settings and defaults (the chaos_box node's parameters).
DEFAULTS = dict(output_dir="", episodes=1, source="sine", source_path="", noise_sigma=0.01, noise_probability=0.5,
                wrist="palm_down", seed=0, steps=400, reset_steps=20, settle_steps=10, state_timeout=5.0,
                bus_retries=3, min_free_mb=200.0)


def with_goal(cfg: dict, episodes: int, source: str, source_path: str, wrist: str, seed: int,
              noise_sigma: float, noise_probability: float) -> dict:
    """Settings for an action goal: empty/zero/negative fields keep the node's values (CollectEpisodes)."""
    out = dict(cfg, episodes=episodes or cfg["episodes"], source=source or cfg["source"],
               source_path=source_path or cfg["source_path"], wrist=wrist or cfg["wrist"], seed=seed)
    out["noise_sigma"] = noise_sigma if noise_sigma >= 0 else cfg["noise_sigma"]
    out["noise_probability"] = noise_probability if noise_probability >= 0 else cfg["noise_probability"]
    return out


def make_run(cfg: dict, outputs: Outputs, on_progress=None) -> CollectionRun:
    """A CollectionRun from settings (DEFAULTS' keys); SourceError or BagError says what is wrong."""
    if not cfg["output_dir"]:
        raise bag.BagError("output_dir is empty: name a directory for the bag")
    source = ReplaySource(cfg["source"], steps=int(cfg["steps"]), seed=int(cfg["seed"]),
                          noise_sigma=float(cfg["noise_sigma"]), noise_probability=float(cfg["noise_probability"]),
                          path=cfg["source_path"], wrist=cfg["wrist"] if cfg["source"] == "sim_rollouts" else "")
    writer = bag.EpisodeBagWriter(cfg["output_dir"], min_free_mb=float(cfg["min_free_mb"]))
    return CollectionRun(writer, source, int(cfg["episodes"]), outputs, wrist_label=cfg["wrist"],
                         reset_steps=int(cfg["reset_steps"]), settle_steps=int(cfg["settle_steps"]),
                         state_timeout=float(cfg["state_timeout"]), bus_retries=int(cfg["bus_retries"]),
                         on_progress=on_progress)
