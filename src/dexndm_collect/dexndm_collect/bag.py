"""A crash-safe rosbag2 (MCAP) writer that splits one collection into one file per episode.

Layout of an output directory (one rosbag2 bag, readable by rosbags and by native `ros2 bag`):

    OUT/metadata.yaml           rosbag2 metadata naming every completed episode file (rewritten atomically)
    OUT/episode_000000.mcap     one complete, self-contained MCAP file per completed episode
    OUT/collection.json         manifest: completed episodes (counts, times, source), discarded partials
    OUT/.partial/               the episode being written (never named in metadata.yaml)

Commit point: an episode's MCAP file gets its final name (after close and fsync) only when the episode is
complete. A SIGKILL at any moment therefore leaves every completed episode readable; the next `open()`
discards the partial episode (and reports it), rebuilds the manifest and metadata.yaml from the files on
disk, and resumes at the episode after the last completed one, so no index is ever written twice.
Files are bounded to one episode (400 steps, ~20 s). Messages are CDR bytes as they were (or would be)
on the wire, so no conversion happens here.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from dexndm_description import interfaces as ros

#: Recorded topics and their types.
TOPICS: dict[str, str] = {
    ros.JOINT_STATES: "sensor_msgs/msg/JointState",
    ros.HAND_COMMAND: "dexndm_msgs/msg/HandCommand",
    ros.EPISODE: "dexndm_msgs/msg/EpisodeEvent",
    ros.WRIST_ORIENTATION: "geometry_msgs/msg/QuaternionStamped",
    ros.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
STATE_TOPIC, COMMAND_TOPIC, EPISODE_TOPIC = ros.JOINT_STATES, ros.HAND_COMMAND, ros.EPISODE
MANIFEST = "collection.json"
PARTIAL = ".partial"
ATTEMPT_FILE = "attempt"  # inside a partial episode's directory: the id of that attempt
_EPISODE_FILE = re.compile(r"^episode_(\d{6})\.mcap$")
DEXNDM_MSGS = ("HandCommand", "EpisodeEvent", "PolicyStep")


class BagError(RuntimeError):
    """The output directory cannot be written (or read back); the message says why."""


class DiskFullError(BagError):
    """Free space fell under the configured minimum, or a write failed with ENOSPC."""


def episode_file_name(index: int) -> str:
    return f"episode_{index:06d}.mcap"


def dexndm_msgs_dir() -> Path:
    """The .msg files of dexndm_msgs: the installed share directory, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("dexndm_msgs")) / "msg"
        if installed.is_dir():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    source = Path(__file__).resolve().parents[2] / "dexndm_msgs" / "msg"
    if source.is_dir():
        return source
    raise BagError("cannot find dexndm_msgs/msg: build the workspace (scripts/setup.sh) and source env.sh")


def make_typestore():
    """The ROS 2 Jazzy typestore with dexndm_msgs registered from their .msg files."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    msg_dir = dexndm_msgs_dir()
    for name in DEXNDM_MSGS:
        types.update(get_types_from_msg((msg_dir / f"{name}.msg").read_text(), f"dexndm_msgs/msg/{name}"))
    store.register(types)
    return store


def _read_attempt(partial_dir: Path) -> str | None:
    try:
        return (partial_dir / ATTEMPT_FILE).read_text().strip() or None
    except OSError:
        return None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path so that readers see the old or the new content, never a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


@dataclass
class ResumeReport:
    """What `EpisodeBagWriter.open` found: completed episodes and discarded partials."""

    completed: list[int]
    next_episode: int
    discarded: list[str] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)


class EpisodeBagWriter:
    """Writes one MCAP file per episode into a rosbag2 directory; see the module docstring.

    `min_free_mb`: begin no episode (and stop writing) when the file system has less free space.
    """

    def __init__(self, out_dir: str | os.PathLike, min_free_mb: float = 200.0, typestore=None):
        self.out = Path(out_dir)
        self.min_free_bytes = int(min_free_mb * 1e6)
        self.store = typestore or make_typestore()
        self.manifest: dict = {}
        self._writer: Writer | None = None
        self._connections: dict = {}
        self._episode: int | None = None
        self._hashes: dict[str, str] = {}
        self._rendered: dict[tuple, tuple[str, str]] = {}
        self._attempt: str | None = None

    # ---- opening and resuming -------------------------------------------------------------------
    def open(self) -> ResumeReport:
        """Create or resume the output directory; discard a partial episode; rebuild metadata."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BagError(f"cannot create output directory {self.out}: {err}") from None
        manifest_file = self.out / MANIFEST
        if manifest_file.exists():
            try:
                self.manifest = json.loads(manifest_file.read_text())
            except json.JSONDecodeError:
                self.manifest = {}
        self.manifest.setdefault("format", "dexndm-collection-1")
        self.manifest.setdefault("episodes", [])
        self.manifest.setdefault("discarded", [])
        discarded = self._discard_partial()
        known = {e["index"]: e for e in self.manifest["episodes"] if (self.out / e["file"]).exists()}
        recovered = []
        for file in sorted(self.out.iterdir()):
            match = _EPISODE_FILE.match(file.name)
            if match and int(match.group(1)) not in known:
                index = int(match.group(1))
                known[index] = self._describe_file(file, index, {"recovered": True})
                recovered.append(index)
        self.manifest["episodes"] = [known[i] for i in sorted(known)]
        self._write_manifest()
        completed = sorted(known)
        return ResumeReport(completed, (completed[-1] + 1) if completed else 0, discarded, recovered)

    def _discard_partial(self) -> list[str]:
        """Record every leftover partial episode in the manifest, then remove them (in that order, so a
        kill in between never loses the record; an attempt already recorded is not recorded twice)."""
        partial = self.out / PARTIAL
        if not partial.exists():
            return []
        names = sorted(p.name for p in partial.iterdir())
        recorded = {d.get("attempt") for d in self.manifest["discarded"]} - {None}
        for name in names:
            attempt = _read_attempt(partial / name)
            if attempt is None or attempt not in recorded:
                self.manifest["discarded"].append({"name": name, "reason": "incomplete episode from an interrupted run",
                                                   "discarded_unix": time.time(), "attempt": attempt})
        self._write_manifest()
        shutil.rmtree(partial)
        return names

    # ---- one episode ----------------------------------------------------------------------------
    @property
    def episode_open(self) -> bool:
        return self._writer is not None

    def check_free_space(self) -> None:
        free = shutil.disk_usage(self.out).free
        if free < self.min_free_bytes:
            raise DiskFullError(f"disk full: {free / 1e6:.0f} MB free under {self.out}, "
                                f"minimum {self.min_free_bytes / 1e6:.0f} MB (min_free_mb); free space and rerun")

    def begin_episode(self, index: int) -> None:
        if self._writer is not None:
            raise BagError(f"episode {self._episode} is still open")
        if any(e["index"] == index for e in self.manifest["episodes"]):
            raise BagError(f"episode {index} already exists in {self.out}; it is never written twice")
        self.check_free_space()
        partial = self.out / PARTIAL
        partial.mkdir(exist_ok=True)
        stem = episode_file_name(index)[:-len(".mcap")]
        writer = Writer(partial / stem, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        # Names this attempt, so a discard recorded before the kill that interrupted its removal is known.
        self._attempt = f"{time.time_ns()}-{os.getpid()}"
        (writer.path / ATTEMPT_FILE).write_text(self._attempt)
        self._connections = {t: writer.add_connection(t, ty, typestore=self.store) for t, ty in TOPICS.items()}
        self._writer, self._episode = writer, index

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Write one CDR-serialized message of a recorded topic into the open episode (dropped if none)."""
        if self._writer is None:
            return
        try:
            self._writer.write(self._connections[topic], int(timestamp_ns), data)
        except OSError as err:
            self._raise_io(err)

    def end_episode(self, info: dict | None = None) -> dict:
        """Close, fsync and commit the open episode; returns its manifest entry."""
        if self._writer is None:
            raise BagError("no episode is open")
        writer, index = self._writer, self._episode
        self._writer, self._episode = None, None
        try:
            writer.close()
            tmp_dir = writer.path
            tmp_file = tmp_dir / f"{tmp_dir.name}.mcap"
            _fsync_path(tmp_file)
            final = self.out / episode_file_name(index)
            entry = self._describe_file(tmp_file, index, info or {})
            os.replace(tmp_file, final)
            _fsync_path(self.out)
            shutil.rmtree(tmp_dir.parent, ignore_errors=True)
        except OSError as err:
            self._raise_io(err)
        self.manifest["episodes"].append(entry)
        self._write_manifest()
        return entry

    def abort_episode(self, reason: str) -> None:
        """Drop the open episode: note why in the manifest first, then delete its partial file (a kill
        between the two leaves the partial file, which the next open() removes without a second record)."""
        if self._writer is None:
            return
        writer, index = self._writer, self._episode
        self._writer, self._episode = None, None
        try:
            writer.abort()
        except Exception:  # noqa: BLE001 - the partial file is removed below either way
            pass
        self.manifest["discarded"].append({"name": Path(episode_file_name(index)).stem, "reason": reason,
                                           "discarded_unix": time.time(), "attempt": self._attempt})
        try:
            self._write_manifest()
        except OSError:
            pass
        shutil.rmtree(writer.path.parent, ignore_errors=True)

    def close(self, reason: str = "writer closed during an episode") -> None:
        self.abort_episode(reason)

    # ---- metadata -------------------------------------------------------------------------------
    def _raise_io(self, err: OSError):
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"disk full while writing {self.out}: {err}") from None
        raise BagError(f"cannot write {self.out}: {err}") from None

    def _describe_file(self, file: Path, index: int, info: dict) -> dict:
        """Manifest entry of one complete MCAP file, read back with rosbags (proves it is readable)."""
        with Reader(file) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            entry = {
                "index": index, "file": episode_file_name(index), "bytes": file.stat().st_size,
                "start_ns": reader.start_time if reader.message_count else 0,
                "duration_ns": max(0, reader.end_time - reader.start_time - 1) if reader.message_count else 0,
                "message_count": reader.message_count, "topics": counts,
                "transitions": counts.get(COMMAND_TOPIC, 0),
            }
        entry.update(info)
        return entry

    def _hash(self, msgtype: str) -> str:
        if msgtype not in self._hashes:
            self._hashes[msgtype] = self.store.hash_rihs01(msgtype)
        return self._hashes[msgtype]

    def _write_manifest(self) -> None:
        """Rewrite collection.json and metadata.yaml (atomically) from per-episode text rendered once each."""
        episodes = self.manifest["episodes"]
        chunks = [self._render(e) for e in episodes]
        head = {k: v for k, v in self.manifest.items() if k != "episodes"}
        manifest = json.dumps(head, separators=(",", ":"))[:-1] + ',"episodes":[' + ",".join(c[0] for c in chunks) + "]}"
        write_atomic(self.out / MANIFEST, manifest)
        write_atomic(self.out / "metadata.yaml", self._rosbag2_metadata(episodes, chunks))

    def _render(self, entry: dict) -> tuple[str, str]:
        """(manifest JSON, metadata.yaml `files` item) of one episode, cached: entries never change."""
        key = (entry["index"], entry["file"], entry["message_count"])
        if key not in self._rendered:
            self._rendered[key] = (json.dumps(entry, separators=(",", ":")),
                                   f"  - path: {entry['file']}\n    starting_time:\n      nanoseconds_since_epoch: "
                                   f"{int(entry['start_ns'])}\n    duration:\n      nanoseconds: {int(entry['duration_ns'])}"
                                   f"\n    message_count: {int(entry['message_count'])}\n")
        return self._rendered[key]

    def _rosbag2_metadata(self, episodes: list[dict], chunks: list[tuple[str, str]]) -> str:
        """rosbag2 metadata (version 9, the layout rosbags' Writer produces), written as block YAML."""
        totals = {t: sum(e["topics"].get(t, 0) for e in episodes) for t in TOPICS}
        timed = [e for e in episodes if e["message_count"]]
        start = min((e["start_ns"] for e in timed), default=0)
        end = max((e["start_ns"] + e["duration_ns"] for e in timed), default=0)
        lines = ["rosbag2_bagfile_information:", f"  version: {Writer.VERSION_LATEST}", "  storage_identifier: mcap",
                 "  relative_file_paths:" + ("" if episodes else " []")]
        lines += [f"  - {e['file']}" for e in episodes]
        lines += [f"  duration:\n    nanoseconds: {max(0, end - start)}",
                  f"  starting_time:\n    nanoseconds_since_epoch: {start}",
                  f"  message_count: {sum(e['message_count'] for e in episodes)}", "  topics_with_message_count:"]
        for topic, msgtype in TOPICS.items():
            lines += [f"  - topic_metadata:\n      name: {topic}\n      type: {msgtype}\n"
                      f"      serialization_format: cdr\n      offered_qos_profiles: []\n"
                      f"      type_description_hash: {self._hash(msgtype)}\n    message_count: {totals[topic]}"]
        lines += ["  compression_format: ''", "  compression_mode: ''", "  files:" + ("" if episodes else " []")]
        text = "\n".join(lines) + "\n" + "".join(c[1] for c in chunks)
        return text + "  custom_data:\n    dexndm_collection: chaos_box\n  ros_distro: rosbags\n"


def episode_files(bag_dir: str | os.PathLike) -> list[Path]:
    """The completed episode MCAP files of a collection directory, in episode order."""
    root = Path(bag_dir)
    if not root.is_dir():
        raise BagError(f"{root} is not a directory")
    return sorted(p for p in root.iterdir() if _EPISODE_FILE.match(p.name))
