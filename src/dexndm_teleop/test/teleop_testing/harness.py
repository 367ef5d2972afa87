"""Start the installed teleop node as a process and read its URL and log (tests and the benchmark).

No rclpy here: the caller's own ROS node observes the topics. The process inherits the caller's
environment (ROS_DOMAIN_ID, loopback-only discovery).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

URL_LINE = re.compile(r"teleop: operator URL (\S+)")


class TeleopProcess:
    """`teleop` with `--ros-args`; `url` once it listens, `log` = every output line so far."""

    def __init__(self, parameters: dict | None = None, remaps: dict | None = None, timeout_s: float = 30.0):
        from ament_index_python.packages import get_package_prefix

        exe = os.path.join(get_package_prefix("dexndm_teleop"), "lib", "dexndm_teleop", "teleop")
        cmd = [exe, "--ros-args"]
        for name, value in (parameters or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cmd += ["-p", f"{name}:={text}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True)
        self.log: list[str] = []
        self.url: str | None = None
        self._got_url = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._got_url.wait(timeout_s) or self.url is None:
            self.stop()
            raise RuntimeError("the teleop node printed no URL:\n" + "\n".join(self.log[-30:]))

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.log.append(line.rstrip("\n"))
            match = URL_LINE.search(line)
            if match:
                self.url = match.group(1)
                self._got_url.set()
        self._got_url.set()

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.log if re.search(pattern, line)]

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            deadline = time.monotonic() + timeout_s
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        self._reader.join(timeout=5.0)
        return code
