"""CLI helpers for the optimizers and the automatic mode: the ``--lr`` value and the lines that
report what ``result.info`` holds (auto's decisions, Pathfinder, the lr pilot, fixed draws)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from vifit.errors import ConfigError


def parse_lr(text: str | None) -> float | str | None:
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--lr must be a number or 'auto', got {text!r}.") from None


def data_options(batch_size: str | None, control_variate: bool, devices: int | None,
                 coordinator: str | None, num_processes: int | None,
                 process_id: int | None) -> dict[str, Any]:
    """``vifit.fit``'s data settings from the CLI's flags; joins a distributed run (which must
    happen before the model file builds its target) when any distributed flag, or
    JAX_COORDINATOR_ADDRESS, is given. ``"process"``: ``(process_id, num_processes)``."""
    import os

    if batch_size is None or batch_size == "auto":
        size: int | str | None = "auto"
    elif batch_size == "full":
        size = None
    else:
        try:
            size = int(batch_size)
        except ValueError:
            raise ConfigError(f"--batch-size must be a number of rows, 'full' or 'auto', got "
                              f"{batch_size!r}.") from None
        if size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {size}.")
    if devices is not None and devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}.")
    options: dict[str, Any] = {"batch_size": size, "control_variate": control_variate,
                               "devices": devices}
    flags = (coordinator, num_processes, process_id)
    if any(v is not None for v in flags) or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        from vifit.data.hosts import initialize

        initialize(coordinator, num_processes, process_id)
        import jax

        options["distributed"] = True
        options["process"] = (jax.process_index(), jax.process_count())
    return options


def info_lines(info: dict[str, Any]) -> list[str]:
    """Human-readable lines for ``FitResult.info``."""
    lines: list[str] = []
    auto = info.get("auto")
    if auto:
        lines.append(f"auto chose [bold]{auto['chosen']}[/] "
                     f"({auto['total_seconds']:.1f} s in all):")
        for row in auto["decisions"]:
            nums = (f" ELBO {row['elbo']:.4f} ± {row['elbo_se']:.4f}, k-hat {row['khat']:.2f},"
                    if "khat" in row else "")
            lines.append(f"  {row['stage']}:{nums} {escape(row['decision'])} — {escape(row['why'])}")
    modes = info.get("modes")
    if modes:
        line = (f"mode search: {modes['found']} separated mode(s) from {modes['starts']} climbs, "
                f"{modes['covered_by_q']} covered by q")
        if modes["missed_mass_fraction"] >= 0.01:
            line += (f"; [red]q misses about {100 * modes['missed_mass_fraction']:.0f}% of the "
                     "mass[/] (Laplace)")
        if modes.get("note"):
            line += f" ({escape(modes['note'])})"
        lines.append(line)
    start = info.get("init", {}).get("pathfinder")
    if start:
        lines.append(f"started from Pathfinder's Gaussian: iterate {start['best_iter']} of "
                     f"{start['iters']}, ELBO {start['elbo']:.4f}")
    pilot = info.get("lr_search")
    if pilot:
        scores = ", ".join(f"{lr:g}: {sc:.3f}" for lr, sc in zip(pilot["grid"], pilot["scores"]))
        lines.append(f"learning rate {pilot['chosen']:g} chosen by a pilot "
                     f"({pilot['pilot_steps']} steps; mean ELBO by rate: {scores})")
    fixed = info.get("lbfgs_fixed")
    if fixed:
        lines.append(f"fixed-draw ELBO ({fixed['fixed_draws']} draws) = {fixed['fixed_elbo']:.4f}"
                     f" ± {fixed['fixed_elbo_se']:.4f}; the ELBO above is on fresh draws")
        if fixed.get("warning"):
            lines.append(f"[yellow]warning:[/] {fixed['warning']}")
        if fixed.get("mean_se") is not None:
            worst = max(fixed["mean_se"])
            lines.append(f"sampling error of q's mean from the fixed draws: up to {worst:.4g} "
                         "(sd over redraws; more --draws shrinks it as 1/sqrt(M))")
    nat = info.get("natgrad")
    if nat:
        lines.append(f"natural gradient: step {nat['rho']:g}, {nat['hessian']} Hessian, "
                     f"{nat['draws']} draws per step")
    mb = info.get("minibatch")
    if mb:
        where = "" if mb["devices"] == 1 else f" on {mb['devices']} devices" + (
            f" of {mb['processes']} processes" if mb.get("processes", 1) > 1 else "")
        lines.append(f"minibatches: {mb['batch_size']} of {mb['rows']:,} rows{where}, "
                     f"{mb['epochs']:.2f} epochs, {mb['reference_refreshes']} control-variate "
                     f"refreshes; {mb['row_evaluations']:.3g} row evaluations in the fit")
    full = info.get("full_data_eval")
    if full:
        lines.append(f"full-data evaluation: {full['draws']} draws x all rows = "
                     f"{full['row_evaluations']:.3g} row evaluations")
    return lines


def print_info(result, console) -> None:
    for line in info_lines(result.info):
        console.print(line)


def cli_family(family: str | None, rank: int):
    """The Family named by ``--family`` (with ``--rank`` for lowrank); None stays None (the
    fit's default)."""
    from vifit.families import LowRank, get_family

    if family is None:
        return None
    return LowRank(rank=rank) if family == "lowrank" else get_family(family)
