"""The viewer benchmark's comparison (dexndm.bench_viz.compare): pairs of on phases and the off time around
them; a shift of the on phases is found, and none is not invented (fixed seeds)."""
import numpy as np

from dexndm.bench_viz import compare


def phases(rng, n, shift=0.0):
    return [rng.gamma(4.0, 1.5, 200) + shift for _ in range(n)]


def test_a_shift_of_the_on_phases_is_measured_and_its_interval_holds_it():
    rng = np.random.default_rng(0)
    off, on = phases(rng, 9), phases(rng, 8, shift=3.0)
    figures = compare(off, on)
    assert 2.0 < figures["p99_delta_ms"] < 4.0 and 2.0 < figures["pair_p99_delta_median_ms"] < 4.0
    assert 0.0 < figures["p99_delta_low_ms"] <= figures["p99_delta_ms"] <= figures["p99_delta_high_ms"]
    assert figures["states_off"] == 9 * 200 and figures["states_on"] == 8 * 200


def test_no_shift_gives_an_interval_around_zero():
    rng = np.random.default_rng(2)
    figures = compare(phases(rng, 9), phases(rng, 8))
    assert abs(figures["p99_delta_ms"]) < 1.0 and abs(figures["pair_p99_delta_median_ms"]) < 1.0
    assert figures["p99_delta_low_ms"] < 0.0 < figures["p99_delta_high_ms"]
