"""The results table of Burda, Grosse & Salakhutdinov (2016, "Importance Weighted
Autoencoders", Table 1) on our data: for K = 1, 5, 50, a VAE trained with the K-sample ELBO
(analytic KL, averaged over K draws) and an IWAE trained with the IWAE-K bound (DReG
gradients); each evaluated on held-out data by importance sampling with 5,000 draws (the
paper's NLL = -log p(x)), with the held-out ELBO, the IWAE-50 bound and the active units
(Cov_x E_q[z|x] > 0.01).

Every run checkpoints under ``--out``, so a killed table resumes where it stopped.

    PYTHONPATH=src python bench/vae_table.py --epochs 300 --json vae-table.json
    PYTHONPATH=src python bench/vae_table.py --data binarized_mnist:../shared/data/binarized_mnist.npz \\
        --latent 50 --hidden 200,200 --epochs 20 --eval-limit 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--hidden", default="100,100")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ks", default="1,5,50")
    p.add_argument("--objectives", default="elbo,iwae")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--eval-limit", type=int, default=None, help="N test examples, evenly spaced")
    p.add_argument("--out", default="runs/vae-table")
    p.add_argument("--json", default=None)
    return p.parse_args()


def main() -> None:
    args = parse()
    from vifit.amortized import TrainConfig, VAEConfig, evaluate, load_dataset, train
    from vifit.amortized.data import spread_subset

    data = load_dataset(args.data)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    cfg = VAEConfig(data.dim, data.kind, latent_dim=args.latent, hidden=hidden,
                    image_shape=data.image_shape)
    x_test = spread_subset(data.test, args.eval_limit)
    results = {}
    for obj in args.objectives.split(","):
        for k in (int(v) for v in args.ks.split(",")):
            tc = TrainConfig(objective=obj, samples=k, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, schedule="cosine",
                             seed=args.seed, eval_every=max(1, args.epochs // 10),
                             checkpoint_every=max(1, args.epochs // 20))
            name = f"{obj}-{k}"
            t0 = time.perf_counter()
            run = train(cfg, tc, data, Path(args.out) / name, progress=None)
            wall = time.perf_counter() - t0
            ev = evaluate(run.model, x_test, jax.random.key(args.seed + 1),
                          samples=args.eval_samples, per_example=True)
            results[name] = {"test": ev, "train_bound": run.history[-1]["train_bound"],
                             "examples_per_second": run.examples_per_second,
                             "train_seconds_this_call": run.seconds, "wall_seconds": wall}
            ll = ev["log_likelihood"]
            print(f"{name}: log p(x) {ll['mean']:.3f} ± {ll['se']:.3f}, ELBO "
                  f"{ev['elbo']['mean']:.3f}, active {ev['active_units']}, "
                  f"{run.examples_per_second:,.0f} ex/s", flush=True)

    print(f"\n{data.name}: {len(data.train)} train / {len(x_test)} test examples, D={data.dim}; "
          f"latent {args.latent}, hidden {args.hidden.replace(',', '-')} tanh; batch "
          f"{args.batch_size}; {args.epochs} epochs; Adam lr {args.lr}, cosine; seed {args.seed}")
    print("\nIWAE paper layout (negative log-likelihood = -log p(x) by IS-"
          f"{args.eval_samples}, nats; lower is better):\n")
    print("| k | VAE NLL | VAE active units | IWAE NLL | IWAE active units |")
    print("|---:|---:|---:|---:|---:|")
    for k in (int(v) for v in args.ks.split(",")):
        cells = []
        for obj in ("elbo", "iwae"):
            r = results.get(f"{obj}-{k}")
            cells += ([f"{-r['test']['log_likelihood']['mean']:.2f}", f"{r['test']['active_units']}"]
                      if r else ["", ""])
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\nAll held-out figures (nats per example, ± standard error over test examples):\n")
    print("| training objective | final train bound | held-out log p(x) | held-out IWAE-50 | "
          "held-out ELBO | active units | examples/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        t = r["test"]
        label = ("ELBO" if name.startswith("elbo") else "IWAE") + f", K = {name.split('-')[1]}"
        print(f"| {label} | {r['train_bound']:.3f} | {t['log_likelihood']['mean']:.3f} ± "
              f"{t['log_likelihood']['se']:.3f} | {t['iwae_50']['mean']:.3f} | "
              f"{t['elbo']['mean']:.3f} ± {t['elbo']['se']:.3f} | {t['active_units']}/"
              f"{t['latent_dim']} | {r['examples_per_second']:,.0f} |")
    base = results.get("elbo-1")
    if base is not None:
        b = np.asarray(base["test"].pop("log_likelihood_per_example"))
        print("\nHeld-out log p(x) minus that of the ELBO, K = 1 model, paired over the same "
              "test examples (± standard error of the mean difference):\n")
        for name, r in results.items():
            d = np.asarray(r["test"].pop("log_likelihood_per_example", b)) - b
            if name != "elbo-1":
                print(f"- {name}: {d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
