"""Hyperparameter search scored only on a validation split carved from the training split.

The study sees :func:`tuning_split` of the dataset (its training rows, with no other split), so
the query and database splits are never passed in. Deep methods are trained by the engine,
which carves ``train.val_fraction`` of those rows for validation (seeded by the model seed) and
reports validation mAP each epoch; the score of a trial is its best validation mAP, and Optuna's
median pruner stops trials that trail the median of earlier trials at the same epoch. Shallow
methods have no epochs: they fit on the same carve's training part and are scored on its
validation part. Sampler: TPE, seeded. The study lives in ``DIR/study.db`` (Optuna RDB,
SQLite), so running the same command again resumes it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from cmhash.config import SearchParam, engine_defaults, flatten, merge, method_search_space, nest
from cmhash.data.dataset import CrossModalDataset
from cmhash.errors import ConfigError
from cmhash.io import atomic_write_text

STUDY_FILE = "study.db"
STUDY_NAME = "tune"


@dataclass
class TuneSpec:
    """Everything a trial needs (picklable, so worker processes get it once)."""

    method: str
    bits: int
    seed: int
    max_epochs: int
    overrides: dict[str, Any] = field(default_factory=dict)  # fixed, nested (from --config / --set)

    def space(self) -> dict[str, SearchParam]:
        from cmhash.methods import get_method

        cls = get_method(self.method)
        space = method_search_space(cls.name, cls.deep)
        if not space:
            raise ConfigError(f"{self.method}: its YAML declares no search space (a 'search:' section)")
        fixed = {k for k, _ in flatten(self.overrides)}  # what --set / --config fixes is not searched
        return {k: p for k, p in space.items() if k not in fixed}

    def fixed_overrides(self) -> dict[str, Any]:
        """What every trial (and the best config) sets besides the searched values."""
        from cmhash.methods import get_method

        if get_method(self.method).deep:
            return merge({"train": {"epochs": self.max_epochs}}, self.overrides, where=self.method, strict=False)
        return dict(self.overrides)


def tuning_split(dataset: CrossModalDataset) -> CrossModalDataset:
    """The training rows alone: the only data a study is given."""
    return dataset.split("train")


def validation_map(model: Any, val: CrossModalDataset, database: CrossModalDataset | None) -> float:
    """Mean of I→T and T→I mAP of the validation queries against ``database`` (``None``: the
    validation split itself), the score the engine's validation gives deep methods."""
    from cmhash.metrics import evaluate_model

    scores = evaluate_model(model, val, database if database is not None else val)
    return float((scores["i2t"] + scores["t2i"]) / 2)


def run_trial(spec: TuneSpec, train: CrossModalDataset, trial: Any) -> float:
    """Fit one configuration on ``train`` and return its validation mAP (pruned deep trials raise)."""
    import optuna

    params = {key: p.suggest(trial) for key, p in spec.space().items()}
    config = merge(spec.fixed_overrides(), nest(params), where=spec.method, strict=False)

    def listen(epoch: int, score: float) -> None:
        trial.report(score, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation mAP {score:.4f} at epoch {epoch + 1}")

    return score_config(spec.method, spec.bits, spec.seed, config, train, on_validation=listen)[0]


def score_config(method: str, bits: int, seed: int, config: dict[str, Any], train: CrossModalDataset,
                 on_validation: Callable[[int, float], None] | None = None) -> tuple[float, Any]:
    """Fit ``method`` with ``config`` (nested overrides) on ``train``; return (validation mAP, the
    fitted model). The score of a tuning trial, and of an arm in ``benchmarks/validation_study.py``.

    Deep: the engine's best smoothed validation mAP (``on_validation`` hears each epoch's).
    Shallow: fitted on the same carve's training part, scored on its validation part.
    """
    from cmhash.methods import get_method
    from cmhash.train.engine import carve_validation, validation_database

    cls = get_method(method)
    if cls.deep:
        config = merge(config, {"train": {"progress": False}}, where=method, strict=False)
        model = cls(bits=bits, seed=seed, **config)
        if float(model.config["train"]["val_fraction"]) <= 0:
            raise ConfigError("tuning needs train.val_fraction > 0 (the validation split is what it scores)")
        model.on_validation = on_validation
        model.fit(train)
        # The engine keeps the weights of the best smoothed score, so that is what a trial is worth.
        scores = [h["val_map_smooth"] for h in model.history if "val_map_smooth" in h]
        return float(max(scores)), model
    model = cls(bits=bits, seed=seed, **config)
    defaults = engine_defaults()  # the same carve, and the same ranking, the engine makes for deep methods
    fit_part, val = carve_validation(train, float(defaults["val_fraction"]), seed)
    model.fit(fit_part)
    return validation_map(model, val, validation_database(fit_part, int(defaults["val_database"]), seed)), model


def _storage(out: Path) -> Any:
    import warnings

    import optuna

    with warnings.catch_warnings():  # heartbeats (stale RUNNING trials of a killed run become FAIL) are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{out / STUDY_FILE}", heartbeat_interval=30, grace_period=90)


def _study(out: Path, seed: int, trials: int, create: bool = False) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE starts from a few random trials: a quarter of the budget (at least 3), not Optuna's fixed 10.
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, trials // 4))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3)
    kwargs = dict(study_name=STUDY_NAME, storage=_storage(out), sampler=sampler, pruner=pruner)
    if create:
        return optuna.create_study(direction="maximize", load_if_exists=True, **kwargs)
    return optuna.load_study(**kwargs)


def _finished(study: Any) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def _optimize(spec: TuneSpec, train: CrossModalDataset, out: Path, seed: int, trials: int, n_trials: int,
              timeout: float | None, threads: int | None = None,
              callback: Callable[[Any, Any], None] | None = None) -> None:
    """Run ``n_trials`` of the study in this process (a worker when ``threads`` is set)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = _study(out, seed, trials)
    # A configuration that does not fit the data (NaN loss, more anchors than training items) fails
    # that trial only; the study goes on (failed trials are counted in the summary).
    study.optimize(lambda t: run_trial(spec, train, t), n_trials=n_trials, timeout=timeout,
                   catch=(FloatingPointError, ValueError), callbacks=[callback] if callback else None, gc_after_trial=True)


def tune(dataset: CrossModalDataset, spec: TuneSpec, out: str | Path, trials: int, timeout: float | None = None,
         jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study to ``trials`` finished trials; write its outputs; return the summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cmhash.bench.runner import threads_per_run

    train = tuning_split(dataset)  # from here on nothing else of the dataset is used
    del dataset
    spec.space()  # a missing or bad search space fails before any training
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = _study(out, spec.seed, trials, create=True)
    study.set_user_attr("spec", asdict(spec))
    start, remaining = time.perf_counter(), max(0, trials - _finished(study))
    # A resumed study continues from a sampler seeded past the trials it holds, so it does not
    # propose the first run's random start-up points again.
    sampler_seed = spec.seed + len(study.trials)
    columns = [TextColumn("tune {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("best val mAP {task.fields[best]}")]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"{spec.method} {spec.bits} bits", total=trials, completed=trials - remaining, best="–")

        def show(study: Any, _trial: Any = None) -> None:
            best = _best_value(study)
            bar.update(task, completed=min(trials, _finished(study)), best=f"{best:.4f}" if best is not None else "–")

        show(study)
        if remaining and jobs <= 1:
            _optimize(spec, train, out, sampler_seed, trials, remaining, timeout, callback=show)
        elif remaining:
            threads = threads_per_run(jobs)
            shares = [remaining // jobs + (i < remaining % jobs) for i in range(jobs)]
            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_optimize, spec, train, out, sampler_seed + 100_003 * i, trials, n, timeout, threads)
                           for i, n in enumerate(shares) if n]
                while not all(f.done() for f in futures):
                    time.sleep(1.0)
                    show(study)
                for f in futures:
                    f.result()
            show(study)
    return write_outputs(study, spec, out, time.perf_counter() - start, jobs)


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no completed trial yet
        return None


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "seconds": duration,
                     "epochs": (max(t.intermediate_values) + 1) if t.intermediate_values else None,
                     "last_report": t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None,
                     **{f"params.{k}": v for k, v in t.params.items()}})
    return rows


def best_config(study: Any, spec: TuneSpec) -> dict[str, Any]:
    """The best trial's config as overrides scoped by the method name (what ``--config`` accepts)."""
    config = merge(spec.fixed_overrides(), nest(study.best_trial.params), where=spec.method, strict=False)
    return {spec.method: config}


def write_outputs(study: Any, spec: TuneSpec, out: Path, seconds: float, jobs: int) -> dict[str, Any]:
    """trials.csv / trials.json, best.yaml, history.png and summary.json in ``out``."""
    import csv
    import io

    rows = trial_rows(study)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "trials.csv", buf.getvalue())
    atomic_write_text(out / "trials.json", json.dumps(rows, indent=1, default=str))
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
    summary: dict[str, Any] = {"method": spec.method, "bits": spec.bits, "seed": spec.seed,
                               "max_epochs": spec.max_epochs, "trials": states, "seconds_this_run": round(seconds, 1),
                               "jobs": jobs, "space": {k: p.describe() for k, p in spec.space().items()}}
    if states["COMPLETE"]:
        best = best_config(study, spec)
        summary |= {"best_value": study.best_value, "best_trial": study.best_trial.number,
                    "best_params": study.best_trial.params, "best_config": best}
        header = (f"# cmhash tune: best of {len(rows)} trials (trial {study.best_trial.number}), validation mAP "
                  f"{study.best_value:.4f}, {spec.bits} bits, seed {spec.seed}.\n"
                  "# Use with --config (train, bench) or install as a profile (docs/tuning.md).\n")
        atomic_write_text(out / "best.yaml", header + yaml.safe_dump(best, sort_keys=False))
        plot_history(rows, out / "history.png", f"{spec.method}, {spec.bits} bits")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def plot_history(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Validation mAP of each finished trial (pruned ones at their last report) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    xs, ys = [r["number"] for r in done], [r["value"] for r in done]
    ax.scatter(xs, ys, s=14, label="complete")
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    if pruned:
        ax.scatter([r["number"] for r in pruned], [r["last_report"] for r in pruned], s=14, marker="x",
                   label="pruned (last validation)")
    if ys:
        ax.step(xs, np.maximum.accumulate(ys), where="post", color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel="validation mAP", title=f"Optimisation history: {title}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
