"""Train and evaluate every (dataset, method variant, bits, seed) combination.

A *variant* is a method with config overrides: the method itself, or (for ``--ablate``) the
method with one component or loss term switched off. Evaluation: query split against database
split, I→T and T→I, mAP over the whole ranking unless ``topk`` is given (then mAP@K; the
tables name the metric either way).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cmhash.config import Override, merge, route
from cmhash.errors import ConfigError
from cmhash.data.dataset import CrossModalDataset
from cmhash.metrics import RankingMetrics
from cmhash.methods import get_method
from cmhash.methods.deep import DeepHashMethod
from cmhash.methods.registry import FOUNDING, available_methods


@dataclass(frozen=True)
class Variant:
    """A method under a display label with config overrides (``removed`` names an ablated part)."""

    label: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    removed: str | None = None


@dataclass
class RunResult:
    dataset: str
    variant: str
    method: str
    bits: int
    seed: int
    i2t: float
    t2i: float
    train_seconds: float
    epochs: int | None
    seconds_per_epoch: float | None
    data_seed: int = 0
    metrics: dict[str, "RankingMetrics"] = field(default_factory=dict, repr=False)  # per direction, for plots
    per_query_ap: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # per direction (paired tests)

    @property
    def mean(self) -> float:
        return (self.i2t + self.t2i) / 2

    def row(self) -> dict[str, Any]:
        """The flat, CSV-ready fields (curves left out)."""
        return {k: getattr(self, k) for k in ("dataset", "variant", "method", "bits", "seed", "data_seed", "i2t", "t2i",
                                              "train_seconds", "epochs", "seconds_per_epoch")} | {"mean": self.mean}

    @property
    def replicate(self) -> tuple[int, int]:
        """(data seed, model seed): runs of two methods with the same replicate saw the same queries."""
        return self.data_seed, self.seed


def expand_methods(names: list[str]) -> list[str]:
    """Method names with the groups ``all``, ``baselines`` and ``founding`` expanded, order kept."""
    registered = available_methods()
    out: list[str] = []
    for name in names:
        group = {"all": registered, "founding": list(FOUNDING),
                 "baselines": [m for m in registered if m not in FOUNDING]}.get(name, [name])
        for m in group:
            get_method(m)  # unknown names fail here, before any training
            if m not in out:
                out.append(m)
    return out


def plan_variants(methods: list[str], overrides: list[Override], ablate: str | None = None,
                  parts: list[str] | None = None) -> list[Variant]:
    """The variants to run: each method, or the full method then each ablatable part removed
    (only ``parts`` when given: re-testing a few parts elsewhere should not pay for all of them).

    ``overrides`` are (key, value) pairs in the dialect of :mod:`cmhash.config` (scoped or not).
    """
    if ablate:
        per = route(overrides, {ablate: get_method(ablate).default_config()})[ablate]
        cls = get_method(ablate)
        if not issubclass(cls, DeepHashMethod) or not cls.ablations:
            raise ValueError(f"{ablate}: has no ablatable parts")
        unknown = sorted(set(parts or ()) - set(cls.ablations))
        if unknown:
            raise ConfigError(f"--parts: {ablate} has no ablatable part {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(cls.ablations)}")
        base = cls(**per)
        variants = [Variant(ablate, ablate, per)]
        for part in (p for p in cls.ablations if not parts or p in parts):
            variants.append(Variant(f"{ablate} w/o {part}", ablate,
                                    merge(per, base.ablation_overrides(part), where=ablate, strict=False),
                                    removed=part))
        return variants
    per = route(overrides, {m: get_method(m).default_config() for m in methods})
    return [Variant(m, m, per[m]) for m in methods]


def run_one(dataset: CrossModalDataset, variant: Variant, bits: int, seed: int, topk: int | None = None,
            keep_metrics: bool = False, data_seed: int = 0) -> RunResult:
    """Fit one variant on the train split and evaluate query vs database both ways (per-query AP kept)."""
    from cmhash.metrics.evaluate import evaluate_model_per_query
    from cmhash.metrics.ranking import DEFAULT_KS, summarize

    cls = get_method(variant.method)
    overrides = variant.overrides
    if issubclass(cls, DeepHashMethod):  # the bench prints one line per run instead of progress bars
        overrides = merge({"train": {"progress": False}}, overrides, where=variant.method, strict=False)
    model = cls(bits=bits, seed=seed, **overrides)
    start = time.perf_counter()
    model.fit(dataset.with_splits(train=dataset.splits["train"]))
    seconds = time.perf_counter() - start
    query, database = dataset.split("query"), dataset.split("database")
    ks = sorted({k for k in DEFAULT_KS if k <= len(database)} | ({topk} if topk else set()))
    per_query = evaluate_model_per_query(model, query, database, directions=("i2t", "t2i"), ks=ks, ndcg_ks=())
    metrics = {d: summarize(pq) for d, pq in per_query.items()}
    scores = {d: m.map if topk is None else m.map_at[topk] for d, m in metrics.items()}
    epochs = len(model.history) if isinstance(model, DeepHashMethod) else None
    return RunResult(
        dataset=dataset.name, variant=variant.label, method=variant.method, bits=bits, seed=seed,
        i2t=float(scores["i2t"]), t2i=float(scores["t2i"]), train_seconds=seconds, epochs=epochs,
        seconds_per_epoch=seconds / epochs if epochs else None, data_seed=data_seed,
        metrics=metrics if keep_metrics else {},
        per_query_ap={d: _query_scores(pq, topk) for d, pq in per_query.items()},
    )


def _query_scores(pq: Any, topk: int | None) -> np.ndarray:
    """Each query's AP (or AP@topk); NaN for a query with no relevant item (no score, as the mean skips it)."""
    values = pq.ap if topk is None else pq.ap_at[:, pq.ks.index(topk)]
    return np.where(pq.num_relevant > 0, values, np.nan)


def run_grid(datasets: list[CrossModalDataset], variants: list[Variant], bits: list[int], seeds: list[int],
             topk: int | None = None, on_result: Callable[[RunResult], None] | None = None,
             jobs: int = 1, data_seeds: list[int] | None = None) -> list[RunResult]:
    """Every combination, in plan order; full metrics (for the plots) are kept for the first seed only.

    ``data_seeds[i]`` is the data seed ``datasets[i]`` was drawn with (recorded in each run: the
    runs of one dataset name over several data seeds are replicates of one table row).

    ``jobs > 1`` trains that many combinations at once in worker processes, each with an equal
    share of the CPU threads (seconds per epoch are then measured under that sharing).
    ``on_result`` sees runs as they finish.
    """
    plan = [(d, variant, b, s) for d in range(len(datasets)) for variant in variants for b in bits for s in seeds]
    data_seeds = data_seeds or [0] * len(datasets)
    first = {datasets[d].name: d for d in reversed(range(len(datasets)))}  # first data seed of each name
    tasks = [dict(variant=v, bits=b, seed=s, topk=topk, keep_metrics=s == seeds[0] and first[datasets[d].name] == d,
                  data_seed=data_seeds[d]) for d, v, b, s in plan]
    if jobs <= 1:
        results = []
        for (d, *_), task in zip(plan, tasks):
            results.append(run_one(datasets[d], **task))
            if on_result:
                on_result(results[-1])
        return results
    threads = threads_per_run(jobs)
    done: dict[int, RunResult] = {}
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(datasets, threads)) as pool:
        futures = {pool.submit(_run_in_worker, d, task): i for i, ((d, *_), task) in enumerate(zip(plan, tasks))}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if on_result:
                on_result(done[futures[future]])
    return [done[i] for i in range(len(plan))]


def threads_per_run(jobs: int) -> int:
    """CPU threads each combination trains with when ``jobs`` run at once."""
    import torch

    return torch.get_num_threads() if jobs <= 1 else max(1, (os.cpu_count() or 1) // jobs)


_worker_datasets: list[CrossModalDataset] = []


def _init_worker(datasets: list[CrossModalDataset], threads: int) -> None:
    """Each worker receives the datasets once, not with every task."""
    import torch

    torch.set_num_threads(threads)
    _worker_datasets[:] = datasets


def _run_in_worker(dataset_index: int, task: dict[str, Any]) -> RunResult:
    return run_one(_worker_datasets[dataset_index], **task)


def aggregate(results: list[RunResult]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds for each (dataset, variant, bits)."""
    groups: dict[tuple[str, str, int], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.variant, r.bits), []).append(r)
    rows = []
    for (ds, variant, bits), rs in groups.items():
        row: dict[str, Any] = {"dataset": ds, "variant": variant, "method": rs[0].method, "bits": bits, "seeds": len(rs)}
        for key in ("i2t", "t2i", "mean", "train_seconds"):
            vals = np.array([getattr(r, key) if key != "mean" else r.mean for r in rs], dtype=float)
            row[key], row[f"{key}_std"] = float(vals.mean()), float(vals.std())
        spe = [r.seconds_per_epoch for r in rs if r.seconds_per_epoch is not None]
        row["seconds_per_epoch"] = float(np.mean(spe)) if spe else None
        rows.append(row)
    return rows
