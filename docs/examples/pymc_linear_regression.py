"""The linear regression of PyMC's introductory overview ("A Motivating Example: Linear
Regression"), with its simulated data from a fixed seed. Fit it with

    pip install "vifit[pymc]"
    vifit fit docs/examples/pymc_linear_regression.py --out runs/pymc-lr

vifit finds `model`, a pymc.Model, and uses PyMC's own JAX log density.
"""

import numpy as np
import pymc as pm

rng = np.random.default_rng(8927)

# True parameter values
alpha, sigma = 1, 1
beta = [1, 2.5]

# Size of dataset
size = 100

# Predictor variable
X1 = rng.normal(size=size)
X2 = rng.normal(size=size) * 0.2

# Simulate outcome variable
Y = alpha + beta[0] * X1 + beta[1] * X2 + rng.normal(size=size) * sigma

model = pm.Model()
with model:
    alpha = pm.Normal("alpha", mu=0, sigma=10)
    beta = pm.Normal("beta", mu=0, sigma=10, shape=2)
    sigma = pm.HalfNormal("sigma", sigma=1)
    mu = alpha + beta[0] * X1 + beta[1] * X2
    Y_obs = pm.Normal("Y_obs", mu=mu, sigma=sigma, observed=Y)
