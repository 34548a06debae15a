"""Optimizers and the compiled fitting loop."""

from vifit.optim.loop import LoopConfig, LoopResult, run_loop
from vifit.optim.optimizers import make_optimizer, optimizer_names, schedule_names

__all__ = ["LoopConfig", "LoopResult", "make_optimizer", "optimizer_names", "run_loop",
           "schedule_names"]
