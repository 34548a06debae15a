"""Imports load what they need and no more: `import vifit` and `vifit --help` bring in no JAX,
and a fit brings in no plotting, PyMC, ArviZ, BlackJAX or VAE stack."""

import json
import subprocess
import sys

HEAVY = ["jax", "matplotlib", "pymc", "arviz", "blackjax", "numpyro", "sklearn",
         "vifit.amortized"]


def _loaded(code: str) -> set[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_vifit_loads_no_jax():
    assert _loaded("import vifit") == set()


def test_help_loads_no_jax():
    code = ("import sys\nsys.argv = ['vifit', '--help']\nfrom vifit.cli.main import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    assert _loaded(code) == set()


def test_a_fit_loads_only_jax():
    code = ("import jax.numpy as jnp, vifit\n"
            "t = vifit.Target(lambda z: -0.5 * jnp.sum(z ** 2), dim=2)\n"
            "r = vifit.fit(t, family='fullrank', steps=200, progress=False)\n"
            "r.summary()")
    assert _loaded(code) == {"jax"}


def test_evidence_is_callable_however_it_was_reached():
    code = ("import vifit.evidence.psis, vifit\n"
            "assert callable(vifit.evidence)\n"
            "from vifit import evidence\nassert callable(evidence)")
    _loaded(code)


def test_a_catalog_model_imports_only_its_own_module():
    # Looking one model up imported every catalog module (NumPyro with several): 0.3 s of
    # every `vifit fit eight_schools`.
    code = ("import sys\nfrom vifit import catalog\n"
            "t = catalog.get_model('eight_schools')\n"
            "assert 'vifit.catalog.radon' not in sys.modules\n"
            "assert len(catalog.catalog_names()) > 20")
    assert "numpyro" not in _loaded(code)
