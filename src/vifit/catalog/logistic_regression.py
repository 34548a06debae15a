"""Bayesian logistic regression on real data: malignant vs benign breast tumours.

The Wisconsin Diagnostic Breast Cancer data (569 tumours; the ten "mean" cell-nucleus
features, standardized), shipped in ``data/breast_cancer.csv``:

    alpha ~ N(0, 2.5^2),  beta_k ~ N(0, 2.5^2),  y_i ~ Bernoulli(logit^-1(alpha + x_i beta)).

Radius, perimeter and area are almost collinear, so the posterior is strongly correlated:
a mean-field q underestimates its spread; a full-rank q should not.
"""

from __future__ import annotations

from importlib import resources

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.target import Target

DESCRIPTION = "Bayesian logistic regression, breast-cancer data (real, n=569, d=11)"


def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Standardized features ``(569, 10)``, labels ``(569,)`` (1 = malignant), names."""
    text = (resources.files("vifit.catalog") / "data" / "breast_cancer.csv").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    names = lines[0].split(",")
    table = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    x = (table[:, :-1] - table[:, :-1].mean(0)) / table[:, :-1].std(0)
    return x, table[:, -1].astype(np.int32), names[:-1]


def model(x, y=None):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.5).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("tumour", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=alpha + x @ beta), obs=y)


def make() -> Target:
    x, y, _ = data()
    return from_numpyro(model, jnp.asarray(x), y=jnp.asarray(y), target_name="logistic_regression")
