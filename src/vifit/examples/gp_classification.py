"""Gaussian-process classification: a latent function with an RBF-kernel prior, one probit
term per input (Rasmussen & Williams, 2006, ch. 3).

    f ~ N(0, K),  K_jk = s^2 exp(-(x_j - x_k)^2 / (2 l^2)) + 1e-6 s^2 [j = k],
    P(y_j = 1 | f) = Phi(f_j),

with s = 2, l = 1, and 60 one-dimensional inputs with labels drawn from a fixed seed
(``seed=0``): x uniform on [-4, 4], y ~ Bernoulli(Phi(2 sin(1.5 x))). d = n = 60 latent values,
strongly correlated by the kernel. The Target is in whitened coordinates (f = L w, K = L L^T);
summaries report f.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from vifit.ep.model import Factorized
from vifit.ep.terms import Probit
from vifit.target import Target


def data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-4.0, 4.0, n))
    y = (rng.uniform(size=n) < stats.norm.cdf(2.0 * np.sin(1.5 * x))).astype(float)
    return x, y


def rbf(x: np.ndarray, sd: float = 2.0, lengthscale: float = 1.0,
        jitter: float = 1e-6) -> np.ndarray:
    k = sd**2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / lengthscale**2)
    return k + jitter * sd**2 * np.eye(len(x))


def model(n: int = 60, seed: int = 0) -> Factorized:
    x, y = data(n, seed)
    return Factorized(Probit(), y, None, prior_cov=rbf(x),
                      param_names=[f"f[{j}]" for j in range(n)], name="gp_classification")


def make() -> Target:
    return model().target()
