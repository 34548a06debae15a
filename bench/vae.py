"""VAE training: vifit against NumPyro SVI, same architecture, same data, same optimizer, same
budget, in one run.

Both train the same networks (the same Equinox modules, from the same initial weights) by the
ELBO with the analytic KL, one draw per example, minibatches of a fresh permutation each epoch,
Adam with the same cosine schedule and gradient clipping, the loss scaled to the per-example
mean. NumPyro runs the way its own VAE example does: ``svi.update`` inside a jitted epoch
(``lax.scan``), with ``numpyro.contrib.module.eqx_module`` holding the networks'
parameters and ``TraceMeanField_ELBO`` (analytic KL). A second NumPyro row jits
``svi.update`` alone and loops in Python, the other common way to write it.

Epochs are timed interleaved (one vifit epoch, one NumPyro epoch, ...) and compiling is timed
apart, so a busy machine slows both alike; throughput is examples per second over the median
epoch. Both trained models are then evaluated by the same code: held-out log p(x) by
importance sampling (5,000 draws), the ELBO, active units.

    PYTHONPATH=src python bench/vae.py --epochs 100 --json bench-vae.json
"""

from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--latent", type=int, default=8)
    p.add_argument("--hidden", default="100,100")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=3, help="independent pairs of runs")
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--python-loop-epochs", type=int, default=5,
                   help="epochs timed for NumPyro with a Python loop over jitted steps")
    p.add_argument("--json", default=None)
    return p.parse_args()


def numpyro_setup(vae, opt_spec, batch_size):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.module import eqx_module
    from numpyro.infer import SVI, TraceMeanField_ELBO
    from numpyro.optim import optax_to_numpyro

    from vifit.amortized.train import _optimizer

    enc_net, dec_net, L = vae.encoder.net, vae.decoder, vae.latent_dim

    def model(x):
        decoder = eqx_module("decoder", dec_net)
        with numpyro.handlers.scale(scale=1.0 / x.shape[0]), numpyro.plate("batch", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(L), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=jax.vmap(decoder)(z)).to_event(1), obs=x)

    def guide(x):
        encoder = eqx_module("encoder", enc_net)
        with numpyro.handlers.scale(scale=1.0 / x.shape[0]), numpyro.plate("batch", x.shape[0]):
            loc, log_scale = jnp.split(jax.vmap(encoder)(x), 2, axis=-1)
            numpyro.sample("z", dist.Normal(loc, jnp.exp(log_scale)).to_event(1))

    svi = SVI(model, guide, optax_to_numpyro(_optimizer(opt_spec)), TraceMeanField_ELBO())
    return svi


def to_vae(vae, params):
    enc = eqx.combine(params["encoder$params"], eqx.partition(vae.encoder.net, eqx.is_inexact_array)[1])
    dec = eqx.combine(params["decoder$params"], eqx.partition(vae.decoder, eqx.is_inexact_array)[1])
    return eqx.tree_at(lambda m: (m.encoder.net, m.decoder), vae, (enc, dec))


def run_pair(args, data, seed: int) -> dict:
    """Train vifit and NumPyro from the same initial networks with ``seed``; time and evaluate."""
    from vifit.amortized import TrainConfig, VAEConfig, evaluate
    from vifit.amortized.train import init_state, make_epoch

    hidden = tuple(int(h) for h in args.hidden.split(","))
    cfg = VAEConfig(data.dim, data.kind, latent_dim=args.latent, hidden=hidden,
                    image_shape=data.image_shape)
    tc = TrainConfig(objective="elbo", samples=1, kl="analytic", epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, schedule="cosine", seed=seed)
    n, B = len(data.train), args.batch_size
    steps = n // B
    x_train = jnp.asarray(data.train)

    # vifit: the compiled epoch that vifit.amortized.train runs.
    state, static, objective, opt_spec, _ = init_state(cfg, tc, data)
    t0 = time.perf_counter()
    v_epoch = make_epoch(objective, static, opt_spec, n, B).lower(state, x_train).compile()
    v_compile = time.perf_counter() - t0
    vae0 = eqx.combine(state.params, static)  # the shared initial networks

    # NumPyro: the same networks and optimizer, svi.update scanned in a jitted epoch.
    svi = numpyro_setup(vae0, opt_spec, B)
    xf = x_train.astype(jnp.float32)
    svi_state = svi.init(jax.random.key(seed + 100), xf[:B])

    def n_epoch(st, key):
        perm = jax.random.permutation(key, n)[: steps * B].reshape(steps, B)
        return jax.lax.scan(lambda s, idx: svi.update(s, xf[idx]), st, perm)

    t0 = time.perf_counter()
    n_epoch_c = jax.jit(n_epoch).lower(svi_state, jax.random.key(0)).compile()
    n_compile = time.perf_counter() - t0

    v_times, n_times = [], []
    keys = jax.random.split(jax.random.key(seed + 200), args.epochs)
    for e in range(args.epochs):  # interleaved, so that load on the machine hits both alike
        t0 = time.perf_counter()
        state, bounds = v_epoch(state, x_train)
        bounds.block_until_ready()
        v_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        svi_state, losses = n_epoch_c(svi_state, keys[e])
        losses.block_until_ready()
        n_times.append(time.perf_counter() - t0)

    key = jax.random.key(seed + 1)  # the same evaluation draws for both models
    models = {"vifit": eqx.combine(state.params, static),
              "numpyro": to_vae(vae0, svi.get_params(svi_state))}
    out = {"examples_per_epoch": steps * B}
    for k, m in models.items():
        out[k] = {"epoch_seconds": v_times if k == "vifit" else n_times,
                  "compile_seconds": v_compile if k == "vifit" else n_compile,
                  "test": evaluate(m, data.test, key, samples=args.eval_samples)}
    out["vifit"]["final_train_elbo"] = float(np.mean(bounds))
    out["numpyro"]["final_train_elbo"] = float(-np.mean(losses))
    out["svi"], out["B"], out["steps"], out["xf"] = svi, B, steps, xf
    return out


def python_loop_rate(svi, xf, B, steps, epochs) -> float:
    """Examples/s of NumPyro with jitted ``svi.update`` called from a Python loop."""
    update = jax.jit(svi.update)
    st = svi.init(jax.random.key(1), xf[:B])
    st, _ = update(st, xf[:B])  # compile
    jax.block_until_ready(st)
    times, rng = [], np.random.default_rng(0)
    for _ in range(epochs):
        perm = rng.permutation(len(xf))
        t0 = time.perf_counter()
        for i in range(steps):
            st, loss = update(st, xf[perm[i * B:(i + 1) * B]])
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    return steps * B / float(np.median(times))


def main() -> None:
    args = parse()
    from vifit.amortized import load_dataset

    data = load_dataset(args.data)
    if data.kind != "binary":
        raise SystemExit("this benchmark trains Bernoulli decoders: give binary data")
    runs = [run_pair(args, data, args.seed + i) for i in range(args.seeds)]
    last = runs[-1]
    loop_rate = python_loop_rate(last["svi"], last["xf"], last["B"], last["steps"],
                                 args.python_loop_epochs)
    ex = last["examples_per_epoch"]
    summary: dict = {}
    for k in ("vifit", "numpyro"):
        times = np.concatenate([r[k]["epoch_seconds"] for r in runs])
        ll = np.array([r[k]["test"]["log_likelihood"]["mean"] for r in runs])
        elbo = np.array([r[k]["test"]["elbo"]["mean"] for r in runs])
        summary[k] = {
            "examples_per_second": ex / float(np.median(times)),
            "compile_seconds": float(np.mean([r[k]["compile_seconds"] for r in runs])),
            "train_seconds_per_seed": float(np.sum(times) / len(runs)),
            "log_likelihood_per_seed": ll.tolist(), "elbo_per_seed": elbo.tolist(),
            "se_within": float(np.mean([r[k]["test"]["log_likelihood"]["se"] for r in runs])),
            "active_units": [r[k]["test"]["active_units"] for r in runs],
        }
    ratio = summary["vifit"]["examples_per_second"] / summary["numpyro"]["examples_per_second"]
    diff = (np.array(summary["vifit"]["log_likelihood_per_seed"])
            - np.array(summary["numpyro"]["log_likelihood_per_seed"]))

    hidden = args.hidden.replace(",", "-")
    print(f"\n{data.name}: {len(data.train)} train / {len(data.test)} test, D={data.dim}; "
          f"latent {args.latent}, hidden {hidden} tanh; batch {args.batch_size}; {args.epochs} "
          f"epochs ({args.epochs * last['steps']} steps); Adam lr {args.lr}, cosine; ELBO with "
          f"analytic KL, 1 draw; {args.seeds} seed(s), same initial weights per seed")
    print(f"\n| | examples/s | compile s | train s / seed | held-out log p(x), IS-"
          f"{args.eval_samples}: mean over seeds (sd) | held-out ELBO | active units |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in ("vifit", "numpyro"):
        r = summary[k]
        ll, el = np.array(r["log_likelihood_per_seed"]), np.array(r["elbo_per_seed"])
        sd = f" ({ll.std(ddof=1):.3f})" if len(ll) > 1 else f" (± {r['se_within']:.3f} se)"
        print(f"| {k} | {r['examples_per_second']:,.0f} | {r['compile_seconds']:.1f} | "
              f"{r['train_seconds_per_seed']:.1f} | {ll.mean():.3f}{sd} | {el.mean():.3f} | "
              f"{', '.join(map(str, r['active_units']))} of {args.latent} |")
    print(f"| numpyro, Python loop over jitted svi.update | {loop_rate:,.0f} | | | | | |")
    print(f"\nthroughput ratio vifit / numpyro, compiled epochs: {ratio:.2f} "
          f"(vifit / numpyro Python loop: {summary['vifit']['examples_per_second'] / loop_rate:.1f})")
    spread = f" ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f} (se over seeds)" if len(diff) > 1 else ""
    print(f"held-out log p(x), vifit - numpyro: {diff.mean():+.3f}{spread} nats "
          f"(per seed: {', '.join(f'{d:+.3f}' for d in diff)})")
    print("timings on a shared, busy machine: noisy; epochs were interleaved so both saw the same load")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "ratio": ratio,
                       "python_loop_examples_per_second": loop_rate}, f, indent=2)


if __name__ == "__main__":
    main()
