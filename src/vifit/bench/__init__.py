"""``vifit bench``: score families, estimators and optimizers, and peer methods, on the catalog.

    from vifit.bench import BenchConfig, run_bench, write_outputs
    rows = run_bench(BenchConfig(models=["banana"], quick=True))
"""

from vifit.bench.report import write_outputs
from vifit.bench.runner import PEERS, BenchConfig, Row, run_bench
from vifit.bench.score import Scores, score_draws

__all__ = ["PEERS", "BenchConfig", "Row", "Scores", "run_bench", "score_draws", "write_outputs"]
