"""Shared test settings: one thread per test process.

The networks in these tests are tiny, so a second thread gains nothing; and on a busy machine
(CI, a laptop), threads waiting on each other can make a tiny step hundreds of times slower.
"""
import os

import torch

os.environ["OMP_NUM_THREADS"] = "1"  # for the subprocesses some tests start
torch.set_num_threads(1)
