"""Reference answers for catalog models, stored as small JSON files beside this module.

A reference gives, for every scalar of the model's constrained parameters (the names of
``Target.constrained_names``), its posterior ``mean`` and ``sd`` with their Monte Carlo
standard errors (zero when exact), and ``log_z`` when it is known exactly. NUTS references also
carry their convergence diagnostics (R-hat, bulk and tail ESS, divergences) and how they were
made; the newer ones also the same moments of every coordinate of the unconstrained z that
vifit fits (``z_mean``, ...; None in files written before), under the JSON key
``unconstrained``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from vifit.errors import ConfigError
from vifit.target import Target


@dataclass(frozen=True)
class Reference:
    name: str
    kind: str  # "exact" | "nuts"
    names: list[str]
    mean: np.ndarray  # (m,) posterior means of the constrained scalars
    sd: np.ndarray  # (m,) posterior standard deviations
    mean_se: np.ndarray  # (m,) Monte Carlo standard errors of ``mean`` (0 when exact)
    sd_se: np.ndarray  # (m,) Monte Carlo standard errors of ``sd`` (0 when exact)
    log_z: float | None = None  # exact log normalizing constant, when known
    info: dict[str, Any] = field(default_factory=dict)  # diagnostics and provenance
    # The same moments of each coordinate of the unconstrained z (``Target.param_names``
    # order), when the reference has them (NUTS references written since they were added).
    z_names: list[str] | None = None
    z_mean: np.ndarray | None = None
    z_sd: np.ndarray | None = None
    z_mean_se: np.ndarray | None = None
    z_sd_se: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        params = {
            n: {"mean": float(m), "sd": float(s), "mean_se": float(ms), "sd_se": float(ss)}
            for n, m, s, ms, ss in zip(self.names, self.mean, self.sd, self.mean_se, self.sd_se)
        }
        record: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.log_z is not None:
            record["log_z"] = float(self.log_z)
        record["info"] = self.info
        record["params"] = params
        if self.z_mean is not None:
            record["unconstrained"] = {
                "names": list(self.z_names),
                **{key: [float(v) for v in getattr(self, f"z_{key}")]
                   for key in ("mean", "sd", "mean_se", "sd_se")},
            }
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Reference:
        params = record["params"]
        col = lambda k: np.array([p[k] for p in params.values()], dtype=np.float64)  # noqa: E731
        z = record.get("unconstrained")
        zcol = lambda k: None if z is None else np.asarray(z[k], dtype=np.float64)  # noqa: E731
        return cls(name=record["name"], kind=record["kind"], names=list(params),
                   mean=col("mean"), sd=col("sd"), mean_se=col("mean_se"), sd_se=col("sd_se"),
                   log_z=record.get("log_z"), info=record.get("info", {}),
                   z_names=None if z is None else list(z["names"]), z_mean=zcol("mean"),
                   z_sd=zcol("sd"), z_mean_se=zcol("mean_se"), z_sd_se=zcol("sd_se"))


def exact_reference(target: Target) -> Reference:
    """The reference of a target whose ``exact`` holds ``mean``, ``cov`` (of z) and ``log_z``,
    and whose constrained parameters are z itself."""
    missing = {"mean", "cov", "log_z"} - set(target.exact)
    if missing:
        raise ConfigError(f"target {target.name!r} has no exact {sorted(missing)}.")
    mean = np.asarray(target.exact["mean"], dtype=np.float64)
    sd = np.sqrt(np.diag(np.asarray(target.exact["cov"], dtype=np.float64)))
    zeros = np.zeros_like(mean)
    return Reference(name=target.name, kind="exact", names=list(target.param_names), mean=mean,
                     sd=sd, mean_se=zeros, sd_se=zeros, log_z=float(target.exact["log_z"]),
                     info={"source": "closed form (the target's `exact`)"})


def reference_names() -> list[str]:
    folder = resources.files("vifit.catalog") / "references"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_reference(name: str) -> Reference:
    path = resources.files("vifit.catalog") / "references" / f"{name}.json"
    if not path.is_file():
        raise ConfigError(
            f"no reference answer for {name!r}; references exist for "
            f"{', '.join(reference_names())}. Make one with scripts/make_references.py."
        )
    return Reference.from_json(json.loads(path.read_text()))
