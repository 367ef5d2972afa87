"""Training tests: torch on one intra-op thread.

`dexndm_training` comes from its editable install (scripts/setup.sh runs `pip install -e training`);
a second checkout sharing the venv tests its own copy with PYTHONPATH=<checkout>/training.
"""
import torch

# The test machines are small and shared: one intra-op thread avoids oversubscription stalls.
torch.set_num_threads(1)
