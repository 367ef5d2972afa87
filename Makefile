# DexNDM workspace. `make demo` and `make test` are the README's quick start.
.PHONY: setup demo test bench clean

setup:
	scripts/setup.sh

# Until the rotate app lands, the main job is the workspace self-check.
demo: setup
	scripts/run dexndm selfcheck

test:
	scripts/setup.sh --test
	scripts/run python -m pytest

bench: setup
	scripts/run python -m dexndm_driver.bench

clean:
	rm -rf build install log
