"""The inclusive (forward) KL(p || q), estimated from draws of q with self-normalized importance
weights, as in the wake phase of reweighted wake-sleep (Bornschein & Bengio, 2015):

    KL(p || q) = E_p[log p(z|x) - log q(z)],     grad_theta KL = -E_p[grad_theta log q_theta(z)],
    w_hat_i = softmax(logw)_i,   KL_hat = sum_i w_hat_i logw_i - logmeanexp(logw)
                                        = log n - H(w_hat)  (between 0 and log n).

Minimizing it makes q cover all of p's mass (moment matching within an exponential family),
where the ELBO's KL(q || p) makes q hide inside p. The self-normalized estimates are biased by
O(1/n) and consistent; they need q to overlap p, so use many draws per step (default 256).
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vifit.objectives.base import Array, Objective


class ForwardKL(Objective):
    """KL(p || q) by self-normalized importance sampling from q; minimized with ``snis``."""

    name: ClassVar[str] = "forward_kl"
    is_lower_bound: ClassVar[bool] = False
    linear_in_weights: ClassVar[bool] = False
    pathwise: ClassVar[bool] = False
    inclusive: ClassVar[bool] = True
    direction: ClassVar[int] = -1

    def value(self, logw: Array) -> Array:
        w_hat = jax.nn.softmax(logw)
        return jnp.sum(w_hat * logw) - (logsumexp(logw) - math.log(logw.shape[0]))

    def default_estimator(self, differentiable: bool) -> str:
        return "snis"

    def estimate(self, logw: np.ndarray) -> tuple[float, float]:
        """The self-normalized KL(p || q) estimate; no standard error (it is a ratio estimate
        over all draws, not a mean of independent terms)."""
        lw = np.asarray(logw, dtype=np.float64)
        lw = lw[np.isfinite(lw)]
        if lw.size == 0:
            return float("nan"), float("nan")
        return float(self.value(jnp.asarray(lw))), float("nan")
