"""Where a recording goes: an .rrd file, the rerun web viewer on localhost, or the native viewer.

Modes (the `viz:=` argument of the apps):
- `rerun`: write an .rrd file only (open it later with `rerun FILE.rrd`).
- `web`: also serve the web viewer (HTML + wasm shipped in the rerun-sdk wheel, so it works offline)
  and its gRPC proxy from the wheel's `rerun` binary, both bound to 127.0.0.1; `ViewerProcess.url`
  is the page to open.
- `window`: also spawn the native viewer (needs a display), detached so it outlives the run.

The SDK's own `serve_grpc` / `serve_web_viewer` listen on every interface, so the binary is run with
`--bind 127.0.0.1` instead. Viewer processes get their own config directory with rerun's usage
analytics disabled (nothing leaves the machine).
"""
from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

MODES = ("rerun", "web", "window")
HOST = "127.0.0.1"
NICE = 10  # viewer processes yield the CPU to the control loop
SLICE_NS = 100_000_000  # ns, the viewer's scheduling slice: the longest Linux allows (EEVDF custom slices)
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}  # the sched_setattr system call's number


def lower_priority(nice: int = NICE) -> None:
    """Yield the CPU to the control loop, in every thread of this process (rerun's and DDS's, started before
    this, included; threads started later inherit it):
    - nice +`nice`, and the same for the session's scheduling group when this process leads its own session
      (Linux autogroups: there, nice only ranks tasks within a group, and the dexndm runner starts every
      node in a session of its own). That sets the viewer's share of the CPU;
    - the longest scheduling slice Linux allows (`SLICE_NS`, 100 ms; Linux >= 6.12, EEVDF). That sets how
      soon it lets go: a task that wakes with a shorter slice (every task of the control loop: the default
      is 0.7 ms x (1 + log2(CPUs)), 1.4 ms on 2 cores) takes the CPU from a viewer thread at once, where
      with equal slices the viewer thread kept it for the rest of its slice and up to the next scheduler
      tick (4 ms at HZ=250); and whenever both wait, the control loop's earlier deadline runs first.
    Not SCHED_IDLE: under load it starved the viewer until it lost the end of a run, and an unprivileged
    process cannot leave it. Not SCHED_BATCH: it did not shorten the wait (docs/VIEWER.md)."""
    tasks = [int(t) for t in os.listdir("/proc/self/task")] if Path("/proc/self/task").is_dir() else [0]
    for tid in tasks:
        try:
            niced = min(os.getpriority(os.PRIO_PROCESS, tid) + nice, 19)
            if not _set_fair(tid, niced, SLICE_NS):
                os.setpriority(os.PRIO_PROCESS, tid, niced)
        except OSError:
            pass  # a thread that has just ended
    if os.getsid(0) == os.getpid():
        try:
            Path("/proc/self/autogroup").write_text(str(nice))
        except OSError:
            pass  # no autogroups on this kernel


def _set_fair(tid: int, nice: int, slice_ns: int) -> bool:
    """Thread tid at `nice` with a scheduling slice of slice_ns, its policy kept (sched_setattr(2); kernels
    before 6.12 ignore the slice); False where that cannot be done here (then nothing changed)."""
    number = _SCHED_SETATTR.get(platform.machine())
    if number is None or not sys.platform.startswith("linux"):
        return False
    policy = os.sched_getscheduler(tid)
    if policy not in (os.SCHED_OTHER, os.SCHED_BATCH):
        return False
    # struct sched_attr (SCHED_ATTR_SIZE_VER0): size, policy, flags, nice, priority, runtime (= the slice of a
    # fair task), deadline, period.
    attr = struct.pack("=IIQiIQQQ", 48, policy, 0, nice, 0, slice_ns, 0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, tid, ctypes.create_string_buffer(attr, len(attr)), 0) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL and slice_ns:  # a slice out of this kernel's range: the nice alone
        return _set_fair(tid, nice, 0)
    return False


class VizError(RuntimeError):
    """A recording or viewer cannot be opened; the message says what to do."""


def check_mode(mode: str) -> None:
    """VizError unless `mode` can run here: rerun-sdk installed, a display for `window`."""
    if mode not in MODES:
        raise VizError(f"unknown viewer mode {mode!r}; choose one of {', '.join(MODES)}")
    if importlib.util.find_spec("rerun") is None:
        raise VizError("rerun-sdk is not installed in this environment: run scripts/setup.sh "
                       "(it installs the rerun-sdk pin of requirements.txt)")
    if mode == "window" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VizError("the native viewer needs a display and neither DISPLAY nor WAYLAND_DISPLAY is set; "
                       "use viz:=web and open the printed URL, or viz:=rerun and open the .rrd later")


def rerun_binary() -> str:
    """The `rerun` executable shipped inside the rerun-sdk wheel."""
    spec = importlib.util.find_spec("rerun_cli")
    path = Path(spec.origin).parent / "rerun" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise VizError("the rerun viewer binary is missing (package rerun_cli of rerun-sdk); reinstall with "
                       "scripts/setup.sh")
    return str(path)


def viewer_env() -> dict[str, str]:
    """Environment for viewer processes: a config dir of their own with usage analytics off."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dexndm" / "rerun"
    env = dict(os.environ, XDG_CONFIG_HOME=str(base / "config"), XDG_DATA_HOME=str(base / "data"))
    if not (base / "config" / "rerun" / "analytics.json").is_file():
        (base / "config").mkdir(parents=True, exist_ok=True)
        subprocess.run([rerun_binary(), "analytics", "disable"], env=env, capture_output=True, timeout=60)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _check_port(port: int) -> int:
    if port == 0:
        return free_port()
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise VizError(f"port {port} on {HOST} is in use (another viewer?); give a free one, or 0 for any") from None
    return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


class ViewerProcess:
    """A `rerun` binary bound to 127.0.0.1: web viewer + gRPC proxy, or a native window."""

    def __init__(self, args: list[str], ports: list[int], detach: bool = False, timeout_s: float = 60.0):
        self.ports = ports
        self._log = tempfile.NamedTemporaryFile(prefix="dexndm-rerun-", suffix=".log", delete=False)
        # At nice 10 like the node (a software renderer costs cores); a detached one leads a session of its own,
        # so its scheduling group gets the nice too.
        nice = ["nice", "-n", str(NICE)] if shutil.which("nice") else []
        self.proc = subprocess.Popen([*nice, rerun_binary(), *args], env=viewer_env(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=detach)
        if detach:
            try:
                Path(f"/proc/{self.proc.pid}/autogroup").write_text(str(NICE))
            except OSError:
                pass  # no autogroups on this kernel
        deadline = time.monotonic() + timeout_s
        while not all(_listening(p) for p in ports):
            if self.proc.poll() is not None:
                raise VizError(f"the rerun viewer exited with code {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise VizError(f"the rerun viewer did not listen on {HOST}:{ports} within {timeout_s:.0f} s: {self.log_tail()}")
            time.sleep(0.1)

    @classmethod
    def web(cls, web_port: int = 9090, files: tuple[str, ...] = ()) -> ViewerProcess:
        """Serve the web viewer on web_port (0: any free) and a gRPC proxy on a free port, both on 127.0.0.1."""
        web_port, grpc_port = _check_port(web_port), free_port()
        viewer = cls(["--serve-web", "--bind", HOST, "--port", str(grpc_port), "--web-viewer-port", str(web_port),
                      *files], [grpc_port, web_port])
        viewer.grpc_url = f"rerun+http://{HOST}:{grpc_port}/proxy"
        viewer.url = f"http://{HOST}:{web_port}/?url={quote(viewer.grpc_url, safe='')}"
        return viewer

    @classmethod
    def window(cls, files: tuple[str, ...] = ()) -> ViewerProcess:
        """Spawn the native viewer, listening for data on a free port of 127.0.0.1; it stays open after the run."""
        check_mode("window")
        grpc_port = free_port()
        viewer = cls(["--bind", HOST, "--port", str(grpc_port), "--expect-data-soon", *files], [grpc_port], detach=True)
        viewer.grpc_url = f"rerun+http://{HOST}:{grpc_port}/proxy"
        viewer.url = viewer.grpc_url
        return viewer

    def log_tail(self, chars: int = 1500) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-chars:].strip() or "(no output)"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def open_recording(mode: str, path: str | Path | None, application_id: str, name: str, blueprint=None,
                   web_port: int = 9090):
    """A RecordingStream writing `path` (if given) and, for web/window, streaming to a viewer started here.

    Returns (stream, viewer or None). The stream's sinks are set before anything is logged.
    """
    check_mode(mode)
    import rerun as rr

    stream = rr.RecordingStream(application_id)
    sinks = []
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sinks.append(rr.FileSink(str(path)))
    viewer = None
    if mode == "web":
        viewer = ViewerProcess.web(web_port)
    elif mode == "window":
        viewer = ViewerProcess.window()
    if viewer is not None:
        sinks.append(rr.GrpcSink(viewer.grpc_url))
    if not sinks:
        raise VizError("nothing to record to: give a recording path (viz:=rerun writes an .rrd file)")
    stream.set_sinks(*sinks, default_blueprint=blueprint)
    stream.send_recording_name(name)
    return stream, viewer
