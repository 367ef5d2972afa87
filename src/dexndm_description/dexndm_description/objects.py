"""Object sets for in-hand rotation: the DexNDM paper's five training sets and an unseen test set.

Sizes follow ../shared/LEAP_HAND.md ("min extent / aspect ratio / scale"), read as: the smallest
side of the object is `min_extent * scale` and its longest side `aspect * smallest side` (m).

| set            | shape                          | min extent (m) | aspect      | scale      |
|----------------|--------------------------------|----------------|-------------|------------|
| normal_cylinder| cylinder, diameter = smallest  | 0.04           | 1.6-2.4     | 0.70-0.86  |
| normal_cuboid  | box                            | 0.064          | 1.25-1.5    | 0.70-0.86  |
| long_cuboid    | box                            | 0.06-0.08      | 2.5-6.67    | 0.5        |
| small_cylinder | cylinder                       | 0.025          | 1.92-2.56   | 0.5-0.6    |
| irregular      | convex hull of random points   | 0.056-0.115    | 1.05-2.0    | 0.6-0.7    |
| test_irregular | convex hull, 26 fixed shapes   | 0.056-0.115    | 1.05-2.0    | 0.6-0.7    |

Every object's long axis lies along the object frame's y axis. Irregular shapes come from seeded
random points: training shapes from the seed stream tagged `TRAIN_TAG` (a new shape per sample), the
26 test shapes from the stream tagged `TEST_TAG`, so the two sets can never share a shape. Physical
parameters are randomized as in the paper: mass U(0.01, 0.05) kg, friction U(0.3, 3.0), and the
centre of mass moved by up to 20 % of each half-extent (at most 1 cm).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OBJECT_SETS: tuple[str, ...] = (
    "normal_cylinder", "normal_cuboid", "long_cuboid", "small_cylinder", "irregular", "test_irregular",
)
TRAIN_TAG = 1
TEST_TAG = 2
NUM_TEST_SHAPES = 26
HULL_POINTS = 14

MASS_RANGE = (0.01, 0.05)  # kg
FRICTION_RANGE = (0.3, 3.0)
COM_FRACTION = 0.2  # of each half extent
COM_MAX = 0.01  # m

# name: (min extent range m, aspect range, scale range)
_SIZES = {
    "normal_cylinder": ((0.04, 0.04), (1.6, 2.4), (0.70, 0.86)),
    "normal_cuboid": ((0.064, 0.064), (1.25, 1.5), (0.70, 0.86)),
    "long_cuboid": ((0.06, 0.08), (2.5, 6.67), (0.5, 0.5)),
    "small_cylinder": ((0.025, 0.025), (1.92, 2.56), (0.5, 0.6)),
    "irregular": ((0.056, 0.115), (1.05, 2.0), (0.6, 0.7)),
    "test_irregular": ((0.056, 0.115), (1.05, 2.0), (0.6, 0.7)),
}


@dataclass
class ObjectSpec:
    """One object: its shape (extents m, and hull vertices for irregular ones) and physical parameters."""

    set_name: str
    kind: str  # cylinder | box | hull
    extents: np.ndarray  # [3] full side lengths along object x, y, z (m); y is the long axis
    mass: float  # kg
    friction: float
    com: np.ndarray  # [3] centre-of-mass offset in the object frame (m)
    vertices: np.ndarray | None = None  # [K, 3] hull points (m), irregular shapes only
    shape_id: str = ""
    tags: dict = field(default_factory=dict)

    @property
    def aspect(self) -> float:
        return float(self.extents.max() / self.extents.min())


def check_set(name: str) -> str:
    """The set name, or ValueError listing the valid ones."""
    if name not in OBJECT_SETS:
        raise ValueError(f"unknown object set {name!r}; choose one of {', '.join(OBJECT_SETS)} (or None)")
    return name


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def hull_vertices(shape_seed: np.random.SeedSequence, extents: np.ndarray) -> np.ndarray:
    """Random convex-hull points (m) whose bounding box is exactly `extents`, centred at the origin."""
    rng = np.random.default_rng(shape_seed)
    directions = rng.normal(size=(HULL_POINTS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = rng.uniform(0.6, 1.0, size=(HULL_POINTS, 1))
    points = np.concatenate([directions * radii, np.eye(3), -np.eye(3)])  # axis points keep the box full
    points += rng.uniform(-0.15, 0.15, size=points.shape) * (np.abs(points) < 0.99)
    lo, hi = points.min(axis=0), points.max(axis=0)
    points = (points - 0.5 * (lo + hi)) / (hi - lo)
    return points * extents


def sample_shape(name: str, rng: np.random.Generator, test_index: int | None = None,
                 nominal: bool = False) -> ObjectSpec:
    """A random shape of set `name` with nominal physics (mass 0.03 kg, friction 1.0, centred COM).

    nominal=True gives the set's middle-sized object instead (mid extent, aspect and scale; the
    first shape of the irregular streams), the same on every call.
    """
    check_set(name)
    extent_range, aspect_range, scale_range = _SIZES[name]
    if nominal:
        extent_range, aspect_range, scale_range = ((0.5 * (a + b),) * 2 for a, b in (extent_range, aspect_range, scale_range))
        rng = np.random.default_rng(0)
        test_index = 0 if test_index is None else test_index
    if name == "test_irregular":
        index = int(rng.integers(NUM_TEST_SHAPES)) if test_index is None else int(test_index)
        if not 0 <= index < NUM_TEST_SHAPES:
            raise ValueError(f"test shape index {index} outside 0..{NUM_TEST_SHAPES - 1}")
        seed = np.random.SeedSequence([TEST_TAG, index])
        shape_rng = np.random.default_rng(seed.spawn(1)[0])
        rng_for_size, shape_id = shape_rng, f"test:{index}"
    else:
        seed = np.random.SeedSequence([TRAIN_TAG, 0 if nominal else int(rng.integers(2**62))])
        rng_for_size, shape_id = rng, ""
    smallest = _uniform(rng_for_size, extent_range) * _uniform(rng_for_size, scale_range)
    aspect = _uniform(rng_for_size, aspect_range)
    longest = smallest * aspect
    if name.endswith("cylinder"):
        extents, kind = np.array([smallest, longest, smallest]), "cylinder"
    else:
        middle = smallest * _uniform(rng_for_size, (1.0, aspect)) if name != "long_cuboid" else smallest
        extents, kind = np.array([middle, longest, smallest]), ("box" if name.endswith("cuboid") else "hull")
    vertices = None
    if kind == "hull":
        vertices = hull_vertices(seed, extents)
        shape_id = shape_id or f"train:{seed.entropy[1]}"
    return ObjectSpec(name, kind, extents, 0.03, 1.0, np.zeros(3), vertices, shape_id or name)


def randomize_physics(spec: ObjectSpec, rng: np.random.Generator) -> ObjectSpec:
    """Mass, friction and centre of mass drawn from the paper's ranges (changes spec in place)."""
    spec.mass = float(rng.uniform(*MASS_RANGE))
    spec.friction = float(rng.uniform(*FRICTION_RANGE))
    reach = np.minimum(COM_FRACTION * 0.5 * spec.extents, COM_MAX)
    spec.com = rng.uniform(-1.0, 1.0, size=3) * reach
    return spec


def unit_inertia(spec: ObjectSpec) -> np.ndarray:
    """Principal moments of inertia per kg (m^2) of the solid shape about its centre, object axes."""
    x, y, z = spec.extents
    if spec.kind == "cylinder":  # axis along y, diameter x
        r = 0.5 * x
        across = (3 * r * r + y * y) / 12.0
        return np.array([across, 0.5 * r * r, across])
    box = np.array([y * y + z * z, x * x + z * z, x * x + y * y]) / 12.0
    return box * (0.6 if spec.kind == "hull" else 1.0)  # a hull fills roughly 60 % of its box
