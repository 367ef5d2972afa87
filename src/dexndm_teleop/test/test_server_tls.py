"""The server on HTTPS: a self-signed certificate made on first run, kept, and actually served."""
from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import stat

import aiohttp
import pytest
from yarl import URL

from dexndm_teleop import tls
from dexndm_teleop.server import ServerConfig, TeleopServer


def fetch(url: str) -> tuple[int, str]:
    """GET over TLS without verification; returns (status, SHA-256 fingerprint of the served certificate)."""
    async def go():
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=context) as response:
                return response.status
    parsed = URL(url)
    pem = ssl.get_server_certificate((parsed.host, parsed.port))
    return asyncio.run(go()), hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest().hex(":").upper()


def serve(cert_dir):
    server = TeleopServer(ServerConfig(port=0, https=True, bind="127.0.0.1", cert_dir=cert_dir),
                          lambda *a: None, lambda *a: None, lambda: None)
    server.start()
    return server


def test_certificate_is_made_once_kept_and_served(tmp_path):
    server = serve(tmp_path)
    try:
        assert server.url().startswith("https://localhost:")
        status, served = fetch(server.url())
        assert status == 200
        assert served == tls.fingerprint(server.cert_path)
        assert stat.S_IMODE(os.stat(tmp_path / "key.pem").st_mode) == 0o600
        status, _ = fetch(server.url().split("?")[0])
        assert status == 403
    finally:
        server.stop()
    again = serve(tmp_path)
    try:
        assert fetch(again.url())[1] == served  # kept: the headset accepts it only once
    finally:
        again.stop()


def test_plain_http_only_on_loopback():
    with pytest.raises(ValueError, match="loopback"):
        ServerConfig(https=False, bind="0.0.0.0")
    assert ServerConfig(https=False).bind == "127.0.0.1"


def test_wrong_tokens_from_the_headset_address_never_lock_out_the_right_token(tmp_path):
    """With https:=false the headset (adb reverse) and any local process both come from 127.0.0.1."""
    server = TeleopServer(ServerConfig(port=0, https=False, auth_failures_per_minute=10), lambda *a: None,
                          lambda *a: None, lambda: None)
    server.start()
    base = server.url().split("?")[0]

    async def go():
        async with aiohttp.ClientSession() as http:
            wrong = []
            for _ in range(12):
                async with http.get(base, params={"token": "guess"}) as response:
                    wrong.append(response.status)
            async with http.get(base, params={"token": server.token}) as response:
                return wrong, response.status

    try:
        wrong, right = asyncio.run(go())
    finally:
        server.stop()
    assert wrong == [403] * 10 + [429] * 2  # the failure limit still answers floods of wrong tokens
    assert right == 200


def test_an_oversized_message_closes_with_1009_over_https(tmp_path):
    """aiohttp's own size limit dropped TLS connections with the message unread: clients saw 1006."""
    server = serve(tmp_path)
    origin = f"https://localhost:{server.port}"

    async def once(size):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{origin}/ws", params={"token": server.token}, headers={"Origin": origin},
                                       ssl=context)
            await ws.send_str("[" * (size // 2) + "]" * (size // 2))
            await ws.receive(timeout=10.0)
            return int(ws.close_code)

    try:
        codes = [asyncio.run(once(size)) for size in (3000, 10_000, 100_000, 1_000_000) for _ in range(3)]
    finally:
        server.stop()
    assert codes == [1009] * 12
