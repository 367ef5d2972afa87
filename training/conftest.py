"""Test this checkout's dexndm_training, whichever checkout the shared venv's editable install points at."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path[0] != _HERE:
    sys.path.insert(0, _HERE)
for _name in [m for m in sys.modules if m == "dexndm_training" or m.startswith("dexndm_training.")]:
    del sys.modules[_name]

import torch  # noqa: E402

# The test machines are small and shared: one intra-op thread avoids oversubscription stalls.
torch.set_num_threads(1)
