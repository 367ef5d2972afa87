# DexNDM workspace. `make demo` and `make test` are the README's quick start.
.PHONY: setup demo test bench clean

setup:
	scripts/setup.sh

# The main job: the rotation policy on a simulated hand, 20 sim seconds as fast as the machine goes.
demo: setup
	scripts/run dexndm rotate axis:=z hardware:=sim realtime_factor:=0 duration:=20

test:
	scripts/setup.sh --test
	scripts/run ruff check .
	scripts/run python -m pytest

bench: setup
	scripts/run python -m dexndm_driver.bench
	scripts/run python -m dexndm_training.policy_bench  # includes dexndm_policy.bench for the default models
	scripts/run python -m dexndm.bench_viz

clean:
	rm -rf build install log
