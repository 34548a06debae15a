"""A high-dimensional, ill-conditioned Gaussian: d = 100, condition number 10^4.

Covariance ``Q diag(eigs) Q^T`` with eigenvalues log-spaced from 1 to 10^4 and a random
rotation from a fixed seed (``vifit.examples.gaussian``). Exact log Z, mean and covariance.
Every Gaussian family can represent it exactly; what is measured is how fast and how well
an optimizer gets there when the scales differ by a factor of 100.
"""

from __future__ import annotations

from vifit.examples import gaussian
from vifit.target import Target

DESCRIPTION = "correlated Gaussian, d=100, condition number 1e4; exact answers (d=100)"


def make() -> Target:
    target = gaussian.make(d=100, condition=1e4, offset=-3.0, seed=7)
    target.name = "gaussian_100d"
    return target
