"""Offscreen pictures and short videos of a simulated world (MuJoCo's renderer over EGL or OSMesa).

MUJOCO_GL must be chosen before mujoco is imported (so this module imports it lazily): `ensure_gl()` picks egl, then osmesa,
and says what to install when neither works (scripts/install-render-deps.sh).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: mujoco is imported lazily, after MUJOCO_GL is chosen
    import mujoco

RENDER_HELP = ("offscreen rendering needs EGL or OSMesa: run scripts/install-render-deps.sh "
               "(Debian: libegl1 libgl1-mesa-dri libosmesa6), then set MUJOCO_GL=egl or MUJOCO_GL=osmesa")


class RenderUnavailable(RuntimeError):
    """No offscreen GL context could be created."""


def _probe(backend: str) -> bool:
    """True when `backend` can create a context (tried in a child process: a failed GL init can abort)."""
    import subprocess
    import sys

    code = "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); r = mujoco.Renderer(m, 8, 8); r.close()"
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_gl() -> str:
    """Pick a working offscreen backend (MUJOCO_GL if set and working, else egl, else osmesa)."""
    chosen = os.environ.get("MUJOCO_GL")
    for backend in ([chosen] if chosen else []) + ["egl", "osmesa"]:
        if backend and _probe(backend):
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise RenderUnavailable(RENDER_HELP)


def camera_for(model: mujoco.MjModel, data: mujoco.MjData, azimuth: float = 135.0, elevation: float = -25.0,
               distance: float = 0.45) -> mujoco.MjvCamera:
    """A free camera looking at the palm's grasp spot."""
    import mujoco

    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = data.site_xpos[model.site("palm_centre").id]
    cam.azimuth, cam.elevation, cam.distance = azimuth, elevation, distance
    return cam


def render_frame(model: mujoco.MjModel, data: mujoco.MjData, width: int = 480, height: int = 360,
                 camera: mujoco.MjvCamera | None = None, renderer: mujoco.Renderer | None = None) -> np.ndarray:
    """One RGB frame [H, W, 3] uint8."""
    import mujoco

    own = renderer is None
    if own:
        renderer = mujoco.Renderer(model, height, width)
    try:
        renderer.update_scene(data, camera=camera if camera is not None else camera_for(model, data))
        return renderer.render().copy()
    finally:
        if own:
            renderer.close()


def save_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, optimize=True)


def save_gif(path: str, frames: list[np.ndarray], fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=True)
