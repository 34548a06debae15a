"""report.html: self-contained (no network resources, images as base64 PNG), shows the verdict,
and renders in a headless browser with every image decoded (when Chromium is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import vifit
from vifit.report import write_report

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if shutil.os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    target = vifit.catalog.get_model("eight_schools")
    fit = vifit.fit(target, family="fullrank", steps=300, seed=0, progress=False)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(fit, out, n_draws=1000)
    return fit, paths["html"]


def test_html_self_contained(report):
    fit, path = report
    html = path.read_text(encoding="utf-8")
    assert fit.verdict.label in html
    # No network: no src/href pointing at http(s) (or protocol-relative) resources.
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    assert links, "the report has no images"
    assert all(not re.match(r"(https?:)?//", u, flags=re.I) for u in links), links
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', html)
    assert len(images) >= 3  # ELBO trace, marginals, pairs
    for name in ("mu", "tau"):
        assert name in html
    assert "Posterior summary" in html


def test_reports_say_how_auto_chose(report, tmp_path):
    """report.md and report.html list auto's stages with their decisions (result.json and the
    console had them; the reports did not); a named family's reports have no such section."""
    import jax.numpy as jnp

    target = vifit.Target(lambda z: -0.5 * jnp.sum((z - 1.0) ** 2), dim=2, name="g")
    fit = vifit.fit(target, "auto", seed=0, progress=False)
    paths = write_report(fit, tmp_path, n_draws=1000)
    stages = [d["stage"] for d in fit.info["auto"]["decisions"]]
    assert "fullrank" in stages
    for path in (paths["report"], paths["html"]):
        text = path.read_text(encoding="utf-8")
        assert "How auto chose the family" in text
        assert all(stage in text for stage in stages)
        assert fit.info["auto"]["decisions"][-1]["decision"] in text
    assert "How auto chose" not in report[1].read_text(encoding="utf-8")


def test_repr_html(report):
    fit, _ = report
    html = fit._repr_html_()
    assert fit.verdict.label in html and "<table" in html


def test_evidence_repr_html_and_report(report, tmp_path):
    fit, _ = report
    ev = vifit.evidence(fit.target, fit, seed=0, draws=512, ais=False)
    html = ev._repr_html_()
    assert "<table" in html and ev.verdict.label in html
    paths = write_report(fit, tmp_path, n_draws=500, evidence=ev)
    assert "Evidence" in paths["html"].read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_renders_in_headless_chromium(report, tmp_path):
    fit, path = report
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert "<body" in dom, done.stderr[-2000:]
    assert fit.verdict.label in dom
    match = re.search(r'data-images-ok="(\w+)"', dom)
    assert match is not None, "the page's load script did not run"
    decoded = re.search(r'data-images-decoded="([^"]*)"', dom).group(1)
    assert match.group(1) == "true", decoded
