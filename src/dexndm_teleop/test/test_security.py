"""Security of the teleop server against real clients: no or wrong token, wrong origin or host, a
second operator, malformed, oversized and flooding messages are refused and logged, and nothing
they send reaches a topic (a real subscriber listens on the remapped target topic and the axis)."""
from __future__ import annotations

import asyncio
import json
import math
import time

import aiohttp
import pytest
from yarl import URL

from dexndm_teleop.params import TARGET_TOPIC

REMAPPED = "/security_test/target"


def frame(seq, squeeze=0.0, x=0.0, left_x=0.0):
    hand = lambda buttons, pos: {"pos": pos, "quat": [0.0, 0.0, 0.0, 1.0], "buttons": buttons, "axes": [0.0, 0.0, 0.0, 0.0]}
    return {"type": "frame", "seq": seq, "t": time.time() * 1e3,
            "left": hand([0, 0, 0, 0, left_x, 0, 0, 0], [-0.2, 1.0, -0.3]),
            "right": hand([0, squeeze, 0, 0, 0, 0, 0], [0.2 + x, 1.0, -0.3])}


@pytest.fixture
def setup(teleop_factory, probe_factory):
    probe = probe_factory(REMAPPED, "/franka_robot_state_broadcaster/current_pose")
    teleop = teleop_factory(remaps={TARGET_TOPIC: REMAPPED})
    url = URL(teleop.url)
    base = url.with_query(None).with_path("/")
    origin = f"{url.scheme}://{url.host}:{url.port}"
    assert probe.wait(lambda: probe.node.count_publishers(REMAPPED) > 0)
    return probe, teleop, base, url.query["token"], origin


def run(coro):
    return asyncio.run(coro)


async def until_closed(ws, timeout=10.0):
    """The close, skipping the status messages the node sends the page at 10 Hz (one could come first)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return msg


async def handshake_status(base, token, origin, extra_headers=None):
    headers = dict(extra_headers or {})
    if origin is not None:
        headers["Origin"] = origin
    params = {"token": token} if token is not None else {}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(base.with_path("/ws"), params=params, headers=headers)
        except aiohttp.WSServerHandshakeError as err:
            return err.status
        await ws.close()
        return 101


def test_page_and_socket_refuse_strangers(setup):
    probe, teleop, base, token, origin = setup

    async def scenario():
        async with aiohttp.ClientSession() as http:
            statuses = []
            for params in ({}, {"token": "wrong"}, {"token": token}):
                async with http.get(base, params=params) as response:
                    statuses.append(response.status)
                    if response.status == 200:
                        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
                        assert response.headers["Referrer-Policy"] == "no-referrer"
            assert statuses == [403, 403, 200]
            assert await handshake_status(base, None, origin) == 403
            assert await handshake_status(base, "x" * len(token), origin) == 403
            assert await handshake_status(base, token, "http://evil.example") == 403
            assert await handshake_status(base, token, None) == 403
            assert await handshake_status(base, token, "http://evil.example:1", {"Host": "evil.example:1"}) == 403
            first = await http.ws_connect(base.with_path("/ws"), params={"token": token}, headers={"Origin": origin})
            assert await handshake_status(base, token, origin) == 409  # one operator at a time
            await first.close()

    run(scenario())
    assert probe.wait(lambda: len(teleop.lines("refused token")) >= 4 and teleop.lines("refused operator"))
    assert len(teleop.lines("refused origin")) == 2 and len(teleop.lines("refused host")) == 1
    assert not any(token in line for line in teleop.log[1:] if "operator URL" not in line and "adb" not in line)


def test_bad_messages_are_refused_logged_and_reach_no_topic(setup):
    probe, teleop, base, token, origin = setup
    good = json.dumps(frame(1))
    bad = [
        good.replace('"seq": 1', '"seq": "1"'),
        good.replace('"t": ' + good.split('"t": ')[1].split(",")[0], '"t": NaN'),
        json.dumps(frame(2, squeeze=1.0)).replace('"quat": [0.0, 0.0, 0.0, 1.0]', '"quat": [0.0, 0.0, 0.0, 2.0]'),
        json.dumps(frame(3, squeeze=1.0)).replace('"pos": [0.2', '"pos": [1e9'),
        json.dumps({**frame(4, squeeze=1.0), "extra": 1}),
        json.dumps(frame(5, squeeze=2.0)),
        json.dumps(frame(6, left_x=1.0)).replace('"axes": [0.0, 0.0, 0.0, 0.0]', '"axes": [0.0, 0.0, 0.0, 0.0, 0.0]'),
        json.dumps({"type": "frame"}),
        json.dumps([1, 2, 3]),
        "{not json",
        "[" * 5000 + "]" * 5000,
    ]
    assert all(len(b) <= 2048 for b in bad[:-1])

    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base.with_path("/ws"), params={"token": token}, headers={"Origin": origin})
            await ws.send_str(good)  # squeeze released: a press would engage the clutch
            for text in bad[:-1]:
                await ws.send_str(text)
            await ws.send_bytes(b"\x00" * 16)
            await ws.send_str(bad[-1])  # 10 kB: oversized, the server closes the connection
            closed = await until_closed(ws)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            assert ws.close_code == 1009
            await asyncio.sleep(0.5)
            assert probe.target_count() == 0 and not probe.axes

            flood = await http.ws_connect(base.with_path("/ws"), params={"token": token}, headers={"Origin": origin})
            await flood.send_str(good)
            for seq in range(400):  # keep-alives, as fast as the socket takes them
                await flood.send_str(json.dumps({"type": "idle", "seq": seq, "t": time.time() * 1e3}))
            await until_closed(flood)
            assert flood.close_code == 1008  # too many refused messages

    run(scenario())
    time.sleep(0.5)
    assert probe.target_count() == 0 and not probe.axes
    assert len(teleop.lines("refused schema")) == len(bad) - 1 and len(teleop.lines("refused binary")) == 1
    assert teleop.lines("refused oversized") and teleop.lines("refused rate")

    # Control: the same subscriber does see a real operator's targets and axis.
    async def operator():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base.with_path("/ws"), params={"token": token}, headers={"Origin": origin})
            for seq, (squeeze, x, left_x) in enumerate([(0, 0, 0), (1, 0, 1), (1, 0.02, 0), (1, 0.04, 0)]):
                await ws.send_str(json.dumps(frame(seq, squeeze, x, left_x)))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            await ws.close()

    run(operator())
    assert probe.wait(lambda: probe.target_count() >= 3 and probe.axes, 5.0)
    assert math.isclose(probe.axes[-1].vector.z, 1.0)
