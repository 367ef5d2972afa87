"""What a screenshot of the default layout (dexndm_viz.layout) shows in its 3D view: the viewer tests of
the web and the native viewer look for the hand and the object in it."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from dexndm_viz.layout import BACKGROUND


def analyse(png: bytes) -> dict[str, float]:
    """The 3D view is the region painted in the layout's background colour; what is drawn inside it."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    background = np.all(np.abs(image - np.array(BACKGROUND)) <= 2, axis=2)
    cols = np.flatnonzero(background.mean(axis=0) > 0.05)  # columns crossing the view (its background shows)
    if len(cols) < 0.1 * image.shape[1]:
        return {"view": 0.0, "drawn": 0.0, "dark": 0.0, "orange": 0.0, "corner_background": 0.0}
    cols = cols[cols <= cols[0] + np.flatnonzero(np.diff(np.append(cols, 10**6)) > 1)[0]]  # the first run
    rows = np.flatnonzero(background[:, cols].mean(axis=1) > 0.05)
    view = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    drawn = np.abs(view - np.array(BACKGROUND)).max(axis=2) > 40
    dark = view.max(axis=2) < 120  # the palm and links (grey 0.2-0.25, shaded)
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    orange = (r > 150) & (g > 50) & (g < 170) & (b < 100) & (r - b > 90)  # the object
    h, w = drawn.shape
    corner = background[rows[0]:rows[0] + h // 10, cols[0]:cols[0] + w // 10]
    return {"view": view.shape[1] / image.shape[1], "drawn": drawn.mean(), "dark": dark.mean(),
            "orange": orange.mean(), "corner_background": corner.mean()}
