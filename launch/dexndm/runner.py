"""Run a graph of NodeSpecs as processes, the way `ros2 launch` would, on the PyPI wheels.

Each node is its installed console script with `--ros-args`, its parameters in a params file.
The required node's stdout is passed through unchanged (apps end with one key=value line);
every other line of every node goes to stderr prefixed with the node's name. The graph stops
when a required node exits, when any node fails, or on Ctrl-C, and every process is stopped
with SIGINT, then SIGTERM, then SIGKILL.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dexndm.graph import NodeSpec


class GraphError(RuntimeError):
    pass


def executable_path(spec: NodeSpec) -> str:
    """Path of an installed ament_python console script: <prefix>/lib/<package>/<executable>."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix(spec.package)
    except PackageNotFoundError:
        raise GraphError(f"package {spec.package!r} is not built: run scripts/setup.sh (colcon build)") from None
    path = Path(prefix) / "lib" / spec.package / spec.executable
    if not path.exists():
        raise GraphError(f"{path} does not exist: is {spec.executable!r} a console script of {spec.package}?")
    return str(path)


def node_command(spec: NodeSpec, params_dir: Path) -> list[str]:
    params_file = params_dir / f"{spec.name}.yaml"
    # JSON is YAML: one file per node, applying to any node name.
    params_file.write_text(json.dumps({"/**": {"ros__parameters": spec.parameters}}))
    cmd = [executable_path(spec), "--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    for src, dst in spec.remappings.items():
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the CLI dies, even by SIGKILL, so no node is left orphaned (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def graph_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _pump(stream, name: str, passthrough: bool) -> None:
    for line in iter(stream.readline, ""):
        if passthrough:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            sys.stderr.write(f"[{name}] {line}")
    stream.close()


def run_graph(specs: list[NodeSpec], stop_timeout_s: float = 5.0) -> int:
    """Start every node, wait until the graph ends, stop everything; returns the exit code."""
    if not specs:
        raise GraphError("the graph has no nodes")
    with tempfile.TemporaryDirectory(prefix="dexndm-graph-") as tmp:
        commands = [(spec, node_command(spec, Path(tmp))) for spec in specs]
        env = graph_environment()
        procs: list[tuple[NodeSpec, subprocess.Popen]] = []
        pumps: list[threading.Thread] = []
        interrupted = False

        def on_sigint(signum, frame):
            nonlocal interrupted
            interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        previous_term = signal.signal(signal.SIGTERM, on_sigint)
        try:
            for spec, cmd in commands:
                proc = subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if not spec.required else None,
                    text=True, bufsize=1, start_new_session=True, preexec_fn=_die_with_parent,
                )
                procs.append((spec, proc))
                thread = threading.Thread(target=_pump, args=(proc.stdout, spec.name, spec.required), daemon=True)
                thread.start()
                pumps.append(thread)
            code = _wait(procs, lambda: interrupted)
        finally:
            _stop_all(procs, stop_timeout_s)
            for thread in pumps:
                thread.join(timeout=2.0)
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)
        return 130 if interrupted and code is None else (code or 0)


def _wait(procs, interrupted) -> int | None:
    has_required = any(spec.required for spec, _ in procs)
    while not interrupted():
        for spec, proc in procs:
            code = proc.poll()
            if code is None:
                continue
            if spec.required:
                return code
            if code != 0 or not has_required:
                sys.stderr.write(f"[dexndm] node {spec.name} exited with code {code}; stopping the graph\n")
                return code if code != 0 else 0
        time.sleep(0.05)
    return None


def _stop_all(procs, timeout_s: float) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        alive = [p for _, p in procs if p.poll() is None]
        if not alive:
            return
        for proc in alive:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(p.poll() is None for p in alive):
            time.sleep(0.05)
