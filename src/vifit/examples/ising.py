"""A 2D Ising model small enough to enumerate: 4 x 4 = 16 spins, 2^16 = 65536 states.

    log p(x) = J sum_<ij> s_i s_j + h sum_i s_i,   s_i = 2 x_i - 1 in {-1, +1},

over nearest neighbours on a periodic (toroidal) lattice, so every spin has 4 neighbours.
log Z and the exact marginals come from summing over all states. The relaxation used by the
Gumbel-softmax estimator replaces x_i by the probability of state 1 in a simplex point; it is
the same polynomial, so it agrees with log p at one-hot points.

With the default J = 0.2 (below the mean-field critical coupling 1/4 of a 4-neighbour lattice)
and h = 0.1, the mean-field objective has a single optimum, which coordinate ascent finds.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vifit.discrete import DiscreteTarget, enumerate_exact


def edges(side: int) -> np.ndarray:
    """``(2 side^2, 2)`` index pairs of the right and down neighbours on a periodic lattice."""
    idx = np.arange(side * side).reshape(side, side)
    right = np.stack([idx.ravel(), np.roll(idx, -1, axis=1).ravel()], axis=1)
    down = np.stack([idx.ravel(), np.roll(idx, -1, axis=0).ravel()], axis=1)
    return np.concatenate([right, down])


def make(side: int = 4, coupling: float = 0.2, field: float = 0.1) -> DiscreteTarget:
    pairs = jnp.asarray(edges(side))

    def energy(s):  # s in [-1, 1]^(side^2); a polynomial, so it also takes relaxed spins
        return coupling * jnp.sum(s[pairs[:, 0]] * s[pairs[:, 1]]) + field * jnp.sum(s)

    def log_prob(x):
        return energy(2.0 * x - 1.0)

    def relaxed_log_prob(soft):
        return energy(2.0 * soft[:, 1] - 1.0)

    names = [f"x[{i},{j}]" for i in range(side) for j in range(side)]
    target = DiscreteTarget(log_prob, n_sites=side * side, n_states=2,
                            relaxed_log_prob=relaxed_log_prob, site_names=names,
                            name=f"ising_{side}x{side}", check=True)
    target.exact.update(enumerate_exact(target))
    target.exact.update({"coupling": coupling, "field": field, "edges": edges(side)})
    return target
