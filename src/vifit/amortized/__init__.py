"""Amortized variational inference for latent-variable models (VAEs).

    from vifit.amortized import VAEConfig, TrainConfig, load_dataset, train, evaluate
    data = load_dataset("digits")
    run = train(VAEConfig(data.dim, data.kind, latent_dim=2, image_shape=data.image_shape),
                TrainConfig(objective="iwae", samples=5, epochs=100), data, out="runs/vae")
    print(evaluate(run.model, data.test, jax.random.key(1)))

p(z) = N(0, I), p(x | z) from a decoder network (Bernoulli, Gaussian or categorical),
q(z | x) a Gaussian from an encoder network (optionally with a coupling flow on top); trained
with the ELBO (analytic or Monte Carlo KL) or the IWAE-K bound (DReG gradient).
"""

from vifit.checkpoint import CheckpointError
from vifit.amortized.data import Dataset, DataError, load_dataset
from vifit.amortized.evaluate import (LogLikelihood, active_units, bound_per_example, evaluate,
                                      log_likelihood)
from vifit.amortized.likelihoods import Bernoulli, Categorical, Gaussian, Likelihood
from vifit.amortized.model import VAE, VAEConfig, build_vae
from vifit.amortized.objectives import (ELBO, IWAE, AmortizedObjective, make_objective,
                                        register_amortized_objective)
from vifit.amortized.train import TrainConfig, TrainResult, load_model, train

__all__ = [
    "ELBO", "IWAE", "VAE", "AmortizedObjective", "Bernoulli", "Categorical", "CheckpointError",
    "DataError", "Dataset", "Gaussian", "Likelihood", "LogLikelihood", "TrainConfig",
    "TrainResult", "VAEConfig", "active_units", "bound_per_example", "build_vae", "evaluate",
    "load_dataset", "load_model", "log_likelihood", "make_objective",
    "register_amortized_objective", "train",
]
