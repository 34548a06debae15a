"""``vifit vae train|eval|sample``: latent-variable models with amortized inference.

Heavy imports (JAX, the model code) happen inside the commands, so ``vifit --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vifit.errors import VifitError
from vifit.jsonio import dumps

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Variational autoencoders: train, evaluate (held-out log-likelihood) and sample.",
)
console = Console()

DataOpt = Annotated[str, typer.Option(
    help="digits (built in, binarized), digits-raw (17 grey levels), binarized_mnist:PATH, or "
         "a .npy/.npz file (see docs/vae.md for the key convention).")]
OutOpt = Annotated[Path, typer.Option(help="Run folder: checkpoint, metrics JSON, plots.")]


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise VifitError(f"--hidden takes comma-separated layer widths such as 200,200; got {text!r}.")


def _data_spec(spec: str) -> str:
    """The spec with any file path made absolute, so eval finds the data from anywhere."""
    if spec.startswith("binarized_mnist:"):
        return "binarized_mnist:" + str(Path(spec.split(":", 1)[1]).resolve())
    if spec.endswith((".npy", ".npz")):
        return str(Path(spec).resolve())
    return spec


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(record))
    tmp.replace(path)


def _print_metrics(title: str, metrics: dict) -> None:
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("nats / example", justify="right")
    table.add_column("± se", justify="right")
    ll = metrics["log_likelihood"]
    table.add_row(f"log p(x), IS-{ll['samples']}", f"{ll['mean']:.3f}", f"{ll['se']:.3f}")
    for k in sorted((k for k in metrics if k.startswith("iwae_")), key=lambda s: -int(s[5:])):
        table.add_row(f"IWAE-{k[5:]} bound", f"{metrics[k]['mean']:.3f}", f"{metrics[k]['se']:.3f}")
    table.add_row("ELBO", f"{metrics['elbo']['mean']:.3f}", f"{metrics['elbo']['se']:.3f}")
    console.print(table)
    console.print(f"active units: {metrics['active_units']} of {metrics['latent_dim']}  "
                  f"(Cov_x E_q[z|x] > 0.01); {metrics['n_examples']} examples; Monte Carlo "
                  f"part of the log p(x) error: {ll['mc_se']:.4f}")


@app.command("train")
def train_command(
    data: DataOpt = "digits",
    out: OutOpt = Path("runs/vae"),
    latent: Annotated[int, typer.Option(help="Latent dimensions (2 gives latent plots).")] = 2,
    hidden: Annotated[str, typer.Option(help="Hidden widths, e.g. 200,200 (decoder mirrors).")] = "200,200",
    activation: Annotated[str, typer.Option(help="tanh, relu, softplus or gelu.")] = "tanh",
    arch: Annotated[str, typer.Option(help="mlp or conv (images with sides divisible by 4).")] = "mlp",
    likelihood: Annotated[str, typer.Option(
        help="auto, bernoulli, gaussian or categorical (auto: from the data).")] = "auto",
    gaussian_scale: Annotated[str, typer.Option(help="gaussian: diagonal or isotropic.")] = "diagonal",
    flow: Annotated[int, typer.Option(help="Coupling-flow layers on top of the Gaussian q.")] = 0,
    objective: Annotated[str, typer.Option(help="elbo or iwae.")] = "elbo",
    samples: Annotated[int, typer.Option("-k", "--samples", help="K draws per example.")] = 1,
    kl: Annotated[Optional[str], typer.Option(help="elbo: auto, analytic or mc.")] = None,
    estimator: Annotated[Optional[str], typer.Option(help="iwae: dreg (default) or reparam.")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Examples per minibatch.")] = 100,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    schedule: Annotated[str, typer.Option(
        help="constant, cosine, exponential or warmup_cosine.")] = "cosine",
    optimizer: Annotated[str, typer.Option(help="adam, sgd, adagrad or rmsprop.")] = "adam",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same numbers.")] = 0,
    eval_every: Annotated[int, typer.Option(help="Held-out bound every N epochs.")] = 10,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N epochs.")] = 10,
    eval_samples: Annotated[int, typer.Option(help="Importance samples for the final "
                                                   "held-out log p(x).")] = 5000,
    eval_limit: Annotated[Optional[int], typer.Option(
        help="Evaluate N test examples spread evenly over the test set (large data).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from a checkpoint in --out.")] = True,
    plots: Annotated[bool, typer.Option(help="Write the figures.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a VAE; write checkpoint.npz, metrics.json and plots to --out."""
    try:
        _train(**locals())
    except VifitError as exc:
        _fail(str(exc))


def _train(data, out, latent, hidden, activation, arch, likelihood, gaussian_scale, flow,
           objective, samples, kl, estimator, epochs, batch_size, lr, schedule, optimizer, seed,
           eval_every, checkpoint_every, eval_samples, eval_limit, resume, plots, progress):
    import jax

    from vifit.amortized import TrainConfig, VAEConfig, evaluate, load_dataset, train
    from vifit.amortized.data import spread_subset
    from vifit.amortized.plots import write_plots

    dataset = load_dataset(data)
    model_config = VAEConfig(
        data_dim=dataset.dim, data_kind=dataset.kind, latent_dim=latent, hidden=_ints(hidden),
        activation=activation, arch=arch, image_shape=dataset.image_shape,
        likelihood=likelihood, n_categories=dataset.n_categories, gaussian_scale=gaussian_scale,
        flow_layers=flow)
    config = TrainConfig(objective=objective, samples=samples, kl=kl, estimator=estimator,
                         epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                         schedule=schedule, seed=seed, eval_every=eval_every,
                         checkpoint_every=checkpoint_every)
    console.print(f"[bold]{dataset.name}[/]: {len(dataset.train)} train, {len(dataset.test)} "
                  f"test, {dataset.dim} dims ({dataset.kind}); latent {latent}, "
                  f"{config.make_objective().label()}")
    run = train(model_config, config, dataset, out, resume=resume, progress=progress,
                extra_meta={"spec": _data_spec(data)})
    last = run.history[-1] if run.history else {}
    console.print(f"trained {len(run.history)} epochs; this call: {run.seconds:.1f} s, "
                  f"{run.examples_per_second:,.0f} examples/s; {int(run.state.rejected)} "
                  "steps rejected")
    x_test = spread_subset(dataset.test, eval_limit)
    metrics = evaluate(run.model, x_test, jax.random.key(seed + 1), samples=eval_samples)
    _print_metrics(f"held-out evaluation ({dataset.name} test)", metrics)
    record = {"test": metrics, "train_bound": last.get("train_bound"),
              "epochs": len(run.history), "seconds": run.seconds,
              "examples_per_second": run.examples_per_second,
              "objective": config.make_objective().label(), "data": dataset.name}
    _write_json(Path(out) / "metrics.json", record)
    written = [Path(out) / "checkpoint.npz", Path(out) / "metrics.json"]
    if plots:
        written += write_plots(run.model, dataset.test[:1000], dataset.test_labels[:1000]
                               if dataset.test_labels is not None else None,
                               dataset.image_shape, run.history, Path(out), jax.random.key(seed + 2))
    console.print("wrote " + ", ".join(str(p) for p in written))


def _load(out: Path, data: Optional[str]):
    from vifit.amortized import load_dataset, load_model

    model, meta = load_model(out)
    spec = data or meta["data"].get("spec") or meta["data"]["name"]
    return model, meta, (load_dataset(spec) if spec else None)


@app.command("eval")
def eval_command(
    out: OutOpt = Path("runs/vae"),
    data: Annotated[Optional[str], typer.Option(
        help="Data to evaluate on (default: the data the run was trained on).")] = None,
    split: Annotated[str, typer.Option(help="test, valid or train.")] = "test",
    samples: Annotated[int, typer.Option(help="Importance samples per example.")] = 5000,
    limit: Annotated[Optional[int], typer.Option(
        help="Only N examples, spread evenly over the split.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the evaluation.")] = 1,
) -> None:
    """Held-out log p(x) (importance sampling), ELBO, IWAE bounds and active units of a run."""
    try:
        import jax

        from vifit.amortized import evaluate
        from vifit.amortized.data import spread_subset

        model, meta, dataset = _load(out, data)
        x = {"test": dataset.test, "valid": dataset.valid, "train": dataset.train}.get(split)
        if x is None:
            raise VifitError(f"the data {dataset.name!r} have no {split!r} split; use test or train.")
        x = spread_subset(x, limit)
        metrics = evaluate(model, x, jax.random.key(seed), samples=samples)
        _print_metrics(f"{dataset.name} {split} · {meta['train']['objective']}-"
                       f"{meta['train']['samples']} · epoch {len(meta.get('history', []))}", metrics)
        path = Path(out) / f"eval-{split}.json"
        _write_json(path, metrics)
        console.print(f"wrote {path}")
    except VifitError as exc:
        _fail(str(exc))


@app.command("sample")
def sample_command(
    out: OutOpt = Path("runs/vae"),
    n: Annotated[int, typer.Option(help="How many new examples.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    mean: Annotated[bool, typer.Option(help="E[x|z] (--mean) or a draw of x (--no-mean).")] = True,
) -> None:
    """Draw new examples from a trained model: samples.npy (and samples.png for images)."""
    try:
        import jax
        import numpy as np

        from vifit.amortized import load_model
        from vifit.amortized.plots import plot_samples

        if n < 1:
            raise VifitError("--n must be positive.")
        import equinox as eqx

        model, meta = load_model(out)
        draw = eqx.filter_jit(lambda m, k: m.sample(k, n, mean=mean))
        x = np.asarray(draw(model, jax.random.key(seed)))
        np.save(Path(out) / "samples.npy", x)
        written = [Path(out) / "samples.npy"]
        shape = meta["model"].get("image_shape")
        if shape is not None:
            written.append(plot_samples(model, jax.random.key(seed), tuple(shape),
                                        Path(out) / "samples.png", n=n))
        console.print(f"{n} samples, shape {x.shape}; wrote " + ", ".join(map(str, written)))
    except VifitError as exc:
        _fail(str(exc))
