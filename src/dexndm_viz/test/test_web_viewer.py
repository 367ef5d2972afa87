"""The web viewer of a live run in headless Chromium (SwiftShader WebGL): `dexndm rotate viz:=web` serves
it on 127.0.0.1 only, prints its URL, and the page draws the hand in its 3D view."""
from __future__ import annotations

import base64
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dexndm_viz.screenshot import analyse

# The CDP driver is the teleop tests' tooling (src/dexndm_teleop/test/teleop_testing), not a runtime module.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dexndm_teleop" / "test"))
from teleop_testing.browser import Chromium, tools_missing  # noqa: E402

pytestmark = pytest.mark.browser
WIDTH, HEIGHT = 1200, 750


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add("127.0.0.1" if address == "0100007F" else address)
    return found


def test_web_viewer_draws_the_hand_of_a_live_rotate_run(tmp_path):
    missing = tools_missing(iwer=False)
    assert missing is None, missing  # the browser tests must run, not skip: scripts/setup.sh --test
    graph = subprocess.Popen(["dexndm", "rotate", "axis:=z", "realtime_factor:=1", "duration:=300", "viz:=web",
                              "viz_port:=0", f"plot:={tmp_path / 'rotate.png'}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in graph.stderr], daemon=True).start()
    end = time.monotonic() + 520  # within pytest's 600 s: SwiftShader frames take seconds on a loaded machine
    try:
        url, deadline, seen = None, time.monotonic() + 150, []
        while url is None and time.monotonic() < deadline and graph.poll() is None:
            try:
                seen.append(lines.get(timeout=1.0))
            except queue.Empty:
                continue
            match = re.search(r"web viewer at (http://\S+)", seen[-1])
            url = match.group(1) if match else None
        assert url, f"no web viewer URL printed; exit {graph.poll()}: {''.join(seen)[-3000:]}"
        parsed = urlparse(url)
        assert parsed.hostname == "127.0.0.1" and listening_addresses(parsed.port) == {"127.0.0.1"}
        grpc_port = int(re.search(r"127\.0\.0\.1%3A(\d+)", url).group(1))
        assert listening_addresses(grpc_port) == {"127.0.0.1"}  # neither server listens beyond loopback

        with Chromium(timeout_s=240, iwer=False) as browser:
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
            browser.open(url, iwer=False)
            while True:  # until the hand is drawn, or no time is left for one more (slow) screenshot
                png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
                found = analyse(png)
                if (found["dark"] > 0.01 and found["orange"] > 0.0005) or time.monotonic() > end - 240:
                    break
                time.sleep(2.0)
            (tmp_path / "viewer.png").write_bytes(png)
            if os.environ.get("DEXNDM_VIEWER_SCREENSHOT"):  # docs/images/viewer_rotate.png comes from here
                Path(os.environ["DEXNDM_VIEWER_SCREENSHOT"]).write_bytes(png)
        assert graph.poll() is None, "the run ended before the page drew the hand"
        # The 3D view is on the left, painted in the layout's background where nothing is drawn, and the hand
        # (dark links and palm) with the object (orange) are drawn inside it.
        assert 0.35 < found["view"] < 0.8 and found["corner_background"] > 0.9, found
        assert found["drawn"] > 0.03 and found["dark"] > 0.01 and found["orange"] > 0.0005, (found, tmp_path)
    finally:
        graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=60)
        except subprocess.TimeoutExpired:
            graph.kill()
            graph.wait(timeout=10)
