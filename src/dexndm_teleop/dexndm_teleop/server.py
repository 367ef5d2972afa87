"""HTTPS (or loopback HTTP) + WebSocket server for the teleop page, on its own thread. No rclpy.

One port serves the page (`/?token=...`), its script and the operator WebSocket (`/ws?token=...`).
Refused, each with one log line: a missing or wrong token, a Host or Origin that is not this
machine (or listed in `allowed_hosts`), a second operator while one is connected, too many failed
tokens from one address, messages off the schema (`schema.py`), oversized or binary messages, and
messages beyond the rate limit. A connection that keeps sending refused messages, or sends nothing
for `idle_timeout_s`, is closed. Validated samples go to `on_sample(sample, monotonic_s, wall_s)`,
called on the server thread: hand them over with a thread-safe queue.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aiohttp import WSMsgType, web
from yarl import URL

from dexndm_teleop import schema, tls

LOG = logging.getLogger("dexndm_teleop.server")
WEB_DIR = Path(__file__).with_name("web")
STATIC = {"/teleop.js": ("teleop.js", "text/javascript"), "/teleop.css": ("teleop.css", "text/css")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass
class ServerConfig:
    port: int = 8443  # 0: any free port
    https: bool = True
    bind: str = ""  # "" = 0.0.0.0 with https, 127.0.0.1 without
    cert_dir: Path = field(default_factory=tls.default_directory)
    token: str = ""  # "" = a fresh random token
    allowed_hosts: tuple[str, ...] = ()
    max_rate_hz: float = 240.0  # sustained messages/s per connection (Quest: <= 120 frames/s)
    burst: int = 60
    max_refusals: int = 20  # refused messages on one connection before it is closed
    idle_timeout_s: float = 3.0
    auth_failures_per_minute: int = 10

    def __post_init__(self):
        if not self.bind:
            self.bind = "0.0.0.0" if self.https else "127.0.0.1"
        if not self.https and self.bind not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"plain HTTP is served on loopback only (bind {self.bind!r}); "
                             "use https:=true for Wi-Fi, or adb reverse with the default bind")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")


#: Messages up to this size are read whole (and refused above schema.MAX_MESSAGE_BYTES with close code
#: 1009); a larger one makes aiohttp drop the connection, and the client may see 1006 instead.
READ_LIMIT_BYTES = 1024 * 1024


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)


class TokenBucket:
    def __init__(self, rate: float, capacity: float):
        self.rate, self.capacity = rate, capacity
        self.level, self.stamp = capacity, time.monotonic()

    def available(self) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.level >= 1.0

    def take(self) -> bool:
        if not self.available():
            return False
        self.level -= 1.0
        return True


class TeleopServer:
    def __init__(self, config: ServerConfig, on_sample: Callable, on_connect: Callable, on_disconnect: Callable):
        self.config = config
        self.token = config.token or secrets.token_urlsafe(24)
        self.on_sample, self.on_connect, self.on_disconnect = on_sample, on_connect, on_disconnect
        self.hosts = set(tls.local_addresses()) | set(config.allowed_hosts)
        self.refusals: dict[str, int] = {}
        self.port = 0
        self.cert_path: Path | None = None
        self._operator: web.WebSocketResponse | None = None
        self._auth_buckets: dict[str, TokenBucket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle (any thread) ----------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="teleop-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("the teleop server did not start in time")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is None or not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10.0)
        self._thread.join(timeout=10.0)

    def url(self, host: str | None = None) -> str:
        scheme = "https" if self.config.https else "http"
        if host is None:
            host = self._public_host()
        return f"{scheme}://{host}:{self.port}/?token={self.token}"

    def banner(self) -> list[str]:
        """What the operator needs, for the terminal: the URL with the token, and how to reach it."""
        lines = [f"teleop: operator URL {self.url()}"]
        if self.config.https:
            lines.append(f"teleop: certificate {self.cert_path}, SHA-256 {tls.fingerprint(self.cert_path)} "
                         "(accept it once in the headset browser)")
        else:
            lines.append(f"teleop: run 'adb reverse tcp:{self.port} tcp:{self.port}' so the headset's localhost reaches this PC")
        return lines

    def send_status(self, status: dict) -> None:
        """Send a status object to the operator's page, if one is connected (thread-safe)."""
        if self._loop is not None and self._operator is not None:
            self._loop.call_soon_threadsafe(self._send_status, status)

    # --- server thread -------------------------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as err:  # reported to start()'s caller
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._websocket)
        for route in STATIC:
            app.router.add_get(route, self._static)
        context = None
        if self.config.https:
            self.cert_path, key_path = tls.ensure_certificate(self.config.cert_dir, sorted(self.hosts))
            context = tls.server_context(self.cert_path, key_path)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind, self.config.port, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._operator is not None:
            await self._operator.close(code=1001, message=b"server stopping")
        await self._runner.cleanup()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    def _public_host(self) -> str:
        if self.config.bind not in ("0.0.0.0", "::"):
            return "localhost" if self.config.bind in ("127.0.0.1", "::1") else self.config.bind
        lan = sorted(h for h in self.hosts if h[0].isdigit() and not h.startswith("127."))
        return lan[0] if lan else "localhost"

    def _refuse(self, request: web.Request, kind: str, detail: str, status: int) -> web.Response:
        self.refusals[kind] = self.refusals.get(kind, 0) + 1
        LOG.warning("refused %s from %s: %s", kind, request.remote, detail)
        return web.Response(status=status, text=f"refused: {detail}\n")

    @web.middleware
    async def _headers(self, request: web.Request, handler):
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            response.headers.update(SECURITY_HEADERS)
        return response

    def _host_ok(self, host: str | None) -> bool:
        return host is not None and URL(f"//{host}").host in self.hosts

    def _check_token(self, request: web.Request) -> web.Response | None:
        given = request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            # The failure limit applies to failures only: the right token is never refused by it, so no
            # local process can lock the operator out (with https:=false the headset is 127.0.0.1 too).
            bucket = self._auth_buckets.setdefault(request.remote or "?", TokenBucket(
                self.config.auth_failures_per_minute / 60.0, self.config.auth_failures_per_minute))
            if not bucket.take():
                return self._refuse(request, "rate", "too many failed tokens from this address; wait a minute", 429)
            what = "wrong token" if given else "no token"
            return self._refuse(request, "token", f"{what}; open the URL printed by the teleop node", 403)
        if not self._host_ok(request.host):
            return self._refuse(request, "host", f"Host {request.host!r} is not this machine (allowed_hosts)", 403)
        return None

    async def _page(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_token(request)
        if refused is not None:
            return refused
        return web.Response(body=(WEB_DIR / "index.html").read_bytes(), content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name, content_type = STATIC[request.path]
        return web.Response(body=(WEB_DIR / name).read_bytes(), content_type=content_type)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_token(request)
        if refused is not None:
            return refused
        scheme = "https" if self.config.https else "http"
        origin = request.headers.get("Origin")
        if origin is None or origin.lower() != f"{scheme}://{request.host}".lower():
            return self._refuse(request, "origin", f"Origin {origin!r} is not this page's", 403)
        if self._operator is not None:
            return self._refuse(request, "operator", "another operator is connected; one at a time", 409)
        # aiohttp's own size limit drops the TCP connection with the rest of the message unread, so the
        # client may never see the close frame (1006); messages up to READ_LIMIT_BYTES are read whole and
        # refused here, which closes cleanly with 1009.
        ws = web.WebSocketResponse(max_msg_size=READ_LIMIT_BYTES, heartbeat=2.0)  # dead links close in ~3 s
        self._operator = ws
        try:
            await ws.prepare(request)
            LOG.info("operator connected from %s", request.remote)
            self.on_connect(time.monotonic())
            await self._serve_operator(request, ws)
        finally:
            self._operator = None
            self.on_disconnect()
            LOG.info("operator disconnected (%s)", request.remote)
        return ws

    async def _serve_operator(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        bucket = TokenBucket(self.config.max_rate_hz, self.config.burst)
        refused = 0

        def refuse(kind: str, detail: str) -> None:
            nonlocal refused
            refused += 1
            self.refusals[kind] = self.refusals.get(kind, 0) + 1
            # Every refusal is logged; a connection is closed after max_refusals, which bounds the log.
            LOG.warning("refused %s message #%d from %s: %s", kind, refused, request.remote, detail)

        last_message = time.monotonic()
        while not ws.closed:
            # Pongs keep the socket alive but are not messages: the page itself must keep talking.
            remaining = self.config.idle_timeout_s - (time.monotonic() - last_message)
            try:
                msg = await asyncio.wait_for(ws.receive(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                LOG.warning("closing the operator connection: nothing received for %.1f s", self.config.idle_timeout_s)
                await ws.close(code=1001, message=b"idle")
                return
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) and _size(msg.data) > schema.MAX_MESSAGE_BYTES:
                refuse("oversized", f"{_size(msg.data)} bytes, limit {schema.MAX_MESSAGE_BYTES}")
                await ws.close(code=1009, message=b"message too big")
                return
            if msg.type == WSMsgType.TEXT:
                now, wall = time.monotonic(), time.time()
                last_message = now
                if not bucket.take():
                    refuse("rate", f"more than {self.config.max_rate_hz:.0f} messages/s")
                else:
                    try:
                        sample = schema.parse_message(msg.data)
                    except schema.SchemaError as err:
                        refuse("schema", str(err))
                    else:
                        self.on_sample(sample, now, wall)
                        continue
            elif msg.type == WSMsgType.BINARY:
                refuse("binary", "binary messages are not accepted")
            elif msg.type == WSMsgType.ERROR:
                refuse("oversized" if "size" in str(ws.exception()).lower() else "protocol", str(ws.exception()))
                return
            else:
                return
            if refused > self.config.max_refusals:
                LOG.warning("closing the operator connection after %d refused messages", refused)
                await ws.close(code=1008, message=b"too many refused messages")
                return

    def _send_status(self, status: dict) -> None:
        ws = self._operator
        if ws is not None and not ws.closed and ws.prepared:
            asyncio.ensure_future(ws.send_json(status))
