"""The emulated bus's wire: a pseudo-terminal in raw mode whose slave is linked at a stable path.

Clients (the unmodified dynamixel-sdk through pyserial) open the link, as they open
/dev/serial/by-id/... on hardware. A daemon thread reads what they send from the master and hands
each chunk to `on_data`; `send` writes back. `vanish` closes the pty and removes the link (the
adapter is unplugged), `restore` opens a new pty behind the same path; `on_connect` runs before the
first bytes of each new pty, so a parser can start afresh.
"""
from __future__ import annotations

import os
import select
import threading
import time
import tty
from typing import Callable


class PtyTransport:
    def __init__(self, link: str, on_data: Callable[[bytes], None],
                 on_connect: Callable[[], None] = lambda: None) -> None:
        self.link = link
        self._on_data = on_data
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._open()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="dexndm-emulated-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close()

    def vanish(self) -> None:
        """The adapter is unplugged: the pty closes (clients get I/O errors) and the path disappears."""
        self._close()

    def restore(self) -> None:
        """The adapter is plugged back in: a new pty behind the same path."""
        with self._lock:
            if self._master < 0:
                self._open()

    def send(self, data: bytes) -> None:
        """Write data to the client (lost, as on a wire, when the pty is gone)."""
        view = memoryview(data)
        with self._lock:  # the fd cannot be closed (and its number reused) while it is written
            try:
                while view:
                    view = view[os.write(self._master, view):]
            except OSError:
                pass

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass through as on a UART
        tty.setraw(master)
        self._master, self._slave = master, slave
        tmp = self.link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)

    def _close(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            if os.path.lexists(self.link):
                os.unlink(self.link)

    def _serve(self) -> None:
        master = -1
        while not self._stop.is_set():
            with self._lock:
                if self._master != master:
                    master = self._master
                    self._on_connect()
            if master < 0:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except (OSError, ValueError):
                time.sleep(0.01)
                continue
            self._on_data(data)
