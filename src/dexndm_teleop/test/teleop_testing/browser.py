"""Headless Chromium driven over the Chrome DevTools Protocol, with IWER emulating a Quest 3.

For the browser tests and the latency benchmark (never used by the teleop node). IWER (npm
`iwer`, Meta's WebXR emulation runtime) is injected into every new document through CDP before
the page's own script runs, so the page under test is the production page, unchanged.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

CHROMIUM = os.environ.get("DEXNDM_CHROMIUM", "/usr/bin/chromium")
IWER_JS = Path(os.environ.get(
    "DEXNDM_IWER_JS", Path(__file__).resolve().parents[1] / "web" / "node_modules" / "iwer" / "build" / "iwer.min.js"))
FLAGS = (
    "--headless", "--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic", "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--disable-gpu-watchdog",  # SwiftShader on a busy CPU must not be mistaken for a hung GPU
    "--ignore-certificate-errors", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)
INSTALL_IWER = "window.__xrDevice = new IWER.XRDevice(IWER.metaQuest3); window.__xrDevice.installRuntime({forceInstall: true});"


class BrowserError(RuntimeError):
    pass


def tools_missing(iwer: bool = True) -> str | None:
    """None when Chromium (and IWER, unless iwer=False) are installed, else what to run."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found: run scripts/setup-test-tools.sh"
    if iwer and not IWER_JS.is_file():
        return f"{IWER_JS} not found: run scripts/setup-test-tools.sh"
    return None


class Chromium:
    """One headless Chromium with one page; blocking methods, CDP on a private event loop thread."""

    def __init__(self, timeout_s: float = 30.0, iwer: bool = True):
        missing = tools_missing(iwer)
        if missing:
            raise BrowserError(missing)
        self.timeout_s = timeout_s
        self.console: list[str] = []
        self._profile = tempfile.mkdtemp(prefix="dexndm-chromium-")
        self._proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cdp", daemon=True)
        self._thread.start()
        try:
            self._call(self._connect())
        except BaseException:
            self.close()
            raise

    # --- blocking API --------------------------------------------------------------------
    def open(self, url: str, iwer: bool = True) -> None:
        """Navigate the page to `url`, with IWER (a Quest 3 with Touch Plus controllers) injected."""
        if iwer:
            source = IWER_JS.read_text() + "\n" + INSTALL_IWER
            self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str, user_gesture: bool = False):
        """Evaluate JS in the page (promises awaited); returns the value, BrowserError on a throw."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "userGesture": user_gesture})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: {details.get('exception', {}).get('description', details.get('text'))}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}; console: {self.console[-10:]}")
            time.sleep(0.02)

    def enter_vr(self, attempts: int = 3, timeout_s: float = 10.0) -> int:
        """Press the teleop page's Enter VR until XR frames flow; returns the attempts it took.

        SwiftShader on a loaded CPU can lose the WebGL context; the page then ends the session
        (as it would on a headset) and the button is pressed again.
        """
        for attempt in range(1, attempts + 1):
            self.wait_for("!document.getElementById('enter').disabled")
            start = self.evaluate("window.dexndmTeleop.frames")
            self.evaluate("document.getElementById('enter').click()", user_gesture=True)
            try:
                self.wait_for(f"window.dexndmTeleop.session !== null && window.dexndmTeleop.frames > {start + 5}", timeout_s)
                return attempt
            except BrowserError:
                if attempt == attempts:
                    raise
                self.evaluate("window.dexndmTeleop.session ? window.dexndmTeleop.session.end() : null")
        return attempts

    def send(self, method: str, params: dict | None = None) -> dict:
        return self._call(self._send(method, params or {}))

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._disconnect(), timeout_s=5.0)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5.0)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- CDP on the loop thread ----------------------------------------------------------
    def _call(self, coro, timeout_s: float | None = None):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout_s or self.timeout_s + 5.0)

    async def _connect(self) -> None:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not start (exit code {self._proc.poll()})")
            await asyncio.sleep(0.05)
        port = port_file.read_text().splitlines()[0]
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        self._ws = await self._http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())
        for domain in ("Page", "Runtime"):
            await self._send(f"{domain}.enable", {})

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"]["args"]
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.console.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        for future in self._pending.values():
            future.set_exception(BrowserError("the DevTools connection closed"))

    async def _send(self, method: str, params: dict) -> dict:
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        data = await asyncio.wait_for(future, self.timeout_s)
        if "error" in data:
            raise BrowserError(f"{method}: {data['error'].get('message')}")
        return data.get("result", {})

    async def _disconnect(self) -> None:
        await self._ws.close()
        await self._http.close()
