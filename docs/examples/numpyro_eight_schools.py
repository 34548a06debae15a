"""NumPyro's eight schools, as in NumPyro's README ("A Simple Example - 8 Schools"), in its
non-centred form (TransformReparam). Fit it with

    vifit fit docs/examples/numpyro_eight_schools.py --out runs/numpyro8

vifit finds the function `model` and calls it as model(*args, **kwargs).
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.reparam import TransformReparam

J = 8
y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def model(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        with numpyro.handlers.reparam(config={"theta": TransformReparam()}):
            theta = numpyro.sample(
                "theta",
                dist.TransformedDistribution(dist.Normal(0.0, 1.0),
                                             dist.transforms.AffineTransform(mu, tau)),
            )
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


args = (J, sigma)
kwargs = {"y": y}
