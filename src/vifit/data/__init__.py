"""Data targets and fitting them on minibatches: ``DataTarget`` (prior + per-row
log-likelihoods), the batch schedule, the minibatch estimate with its control variate, full
passes in chunks, and sharding the rows across devices."""

from vifit.data.target import DataTarget

__all__ = ["DataTarget"]
