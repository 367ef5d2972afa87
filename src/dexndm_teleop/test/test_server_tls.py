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
