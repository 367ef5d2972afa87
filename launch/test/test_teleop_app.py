"""The `dexndm teleop` app: typed parameters that match the node's, and a real run through the CLI."""
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from dexndm import graph
from dexndm_teleop.params import PARAMETERS


def test_teleop_app_passes_parameters_of_the_node_types():
    app = graph.load_app("teleop")
    spec, = app.nodes(graph.resolve_arguments(app, {"scale": "2", "workspace_min": "0.1,-0.4,0"}))
    assert spec.required and spec.executable == "teleop"
    for name, value in spec.parameters.items():
        default = PARAMETERS[name][0]
        assert type(value) is type(default), name
        if isinstance(value, list):
            assert all(type(v) is float for v in value), name
    assert spec.parameters["scale"] == 2.0 and spec.parameters["workspace_min"] == [0.1, -0.4, 0.0]
    for bad in ({"port": "80.5"}, {"https": "maybe"}, {"workspace_max": "1,2"}, {"axis_mode": "dance"}):
        with pytest.raises(graph.ArgumentError):
            app.nodes(graph.resolve_arguments(app, bad))


def test_dexndm_teleop_serves_the_page_and_ends_with_a_key_value_line():
    proc = subprocess.Popen(["dexndm", "teleop", "port:=0", "https:=false"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"operator URL (\S+)", line)
            url = match.group(1) if match else None
        assert url and url.startswith("http://localhost:")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"Enter VR" in response.read()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # the CLI's exit code for Ctrl-C
    fields = dict(pair.split("=") for pair in out.strip().splitlines()[-1].split())
    assert fields["samples"] == "0" and fields["targets"] == "0"
