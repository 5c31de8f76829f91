"""Bench outputs: CSV, JSON and Markdown tables, PR / P@K plots, and generated doc sections."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from cmhash.bench.runner import RunResult, aggregate
from cmhash.io import atomic_path, atomic_write_text

DIRECTION_NAMES = {"i2t": "I→T", "t2i": "T→I"}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    from cmhash import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return {"cpu": cpu, "cores": os.cpu_count(), "device": device, "python": platform.python_version(),
            "torch": torch.__version__, "cmhash": __version__, "platform": platform.platform()}


def metric_name(topk: int | None) -> str:
    return "mAP over the whole Hamming ranking" if topk is None else f"mAP@{topk}"


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"


def markdown_tables(results: list[RunResult], topk: int | None, dataset_notes: dict[str, str],
                    methods: list[str] | None = None, reference: str | None = None) -> str:
    """Per dataset: the mAP table (methods x directions x bits), the paired test and the training-cost table.

    ``methods`` keeps only those methods' rows (a method's own page); the strongest baseline of
    the paired test is still chosen among all of ``results``, unless ``reference`` names the row
    to test against (e.g. the baseline a paper compares with).
    """
    rows = aggregate(results)
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        bits = sorted({r["bits"] for r in mine})
        everything = list(dict.fromkeys(r["variant"] for r in mine))
        variants = [v for v in everything if methods is None or next(r["method"] for r in mine if r["variant"] == v)
                    in methods]
        seeds = max(r["seeds"] for r in mine)
        by = {(r["variant"], r["bits"]): r for r in mine}
        out.append(f"### {ds}\n\n{dataset_notes.get(ds, '')}\n\n"
                   f"{metric_name(topk)}, {'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else '1 seed'}; "
                   "I→T = image queries against the text database, T→I the reverse.\n")
        head = ["method"] + [f"{DIRECTION_NAMES[d]} {b}" for d in ("i2t", "t2i") for b in bits] + \
               [f"mean {b}" for b in bits]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v in variants:
            cells = [v]
            for key in ("i2t", "t2i", "mean"):
                for b in bits:
                    r = by.get((v, b))
                    cells.append(_cell(r[key], r[f"{key}_std"], r["seeds"]) if r else "–")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
        out.append(significance_table([r for r in results if r.dataset == ds], everything, bits, shown=variants,
                                      reference=reference))
        head = ["method"] + [f"train s ({b} bits)" for b in bits] + ["s / epoch", "epochs run"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v in variants:
            cells = [v] + [f"{by[(v, b)]['train_seconds']:.1f}" if (v, b) in by else "–" for b in bits]
            spe = [by[(v, b)]["seconds_per_epoch"] for b in bits if (v, b) in by and by[(v, b)]["seconds_per_epoch"]]
            eps = [r.epochs for r in results if r.dataset == ds and r.variant == v and r.epochs]
            cells.append(f"{sum(spe) / len(spe):.2f}" if spe else "closed form")
            cells.append(f"{min(eps)}–{max(eps)}" if eps else "–")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("Training cost on this machine (wall seconds, mean over seeds; s / epoch includes the "
                   "validation pass):\n\n" + "\n".join(lines) + "\n")
    return "\n".join(out)


def significance_table(results: list[RunResult], variants: list[str], bits: list[int],
                       shown: list[str] | None = None, reference: str | None = None) -> str:
    """Each row against the strongest baseline of its bit length: paired t-test on per-query AP.

    In an ablation table (variants with parts removed) the reference is the full method instead;
    ``reference`` (a variant of the table) replaces either.
    The test and the marks are described in :mod:`cmhash.bench.significance`. Empty when the
    table has no baseline method or the runs carry no per-query AP (an old runs.jsonl).
    """
    from cmhash.bench.significance import ALPHA, paired_test
    from cmhash.methods.registry import FOUNDING

    runs: dict[tuple[str, int], dict[tuple[int, int], RunResult]] = {}
    for r in results:
        if r.per_query_ap:
            runs.setdefault((r.variant, r.bits), {})[r.replicate] = r
    methods = {r.variant: r.method for r in results}
    strongest: dict[int, str] = {}
    for b in bits:
        means = {v: np.mean([r.mean for r in runs[(v, b)].values()]) for v in variants
                 if (v, b) in runs and methods[v] not in FOUNDING and v == methods[v]}
        if means:
            strongest[b] = max(means, key=means.get)
    ablation = any(v != methods[v] for v in variants)
    if ablation:  # an ablation table: each part removed against the full method
        strongest = {b: variants[0] for b in bits if (variants[0], b) in runs}
    if reference is not None:
        if reference not in variants:
            raise ValueError(f"--reference {reference!r} is not a row of this table; rows: {', '.join(variants)}")
        strongest = {b: reference for b in bits if (reference, b) in runs}
    if not strongest:
        return ""
    head = ["method"] + [f"vs {strongest[b]} ({b} bits)" for b in bits if b in strongest]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in shown if shown is not None else variants:
        cells = [v]
        for b in (b for b in bits if b in strongest):
            base, mine = runs.get((strongest[b], b), {}), runs.get((v, b), {})
            shared = sorted(set(base) & set(mine))
            if v == strongest[b]:
                cells.append("reference" if reference else "full method" if ablation else "strongest baseline")
                continue
            if not shared:
                cells.append("–")
                continue
            res = paired_test([np.concatenate([mine[k].per_query_ap[d] for d in ("i2t", "t2i")]) for k in shared],
                              [np.concatenate([base[k].per_query_ap[d] for d in ("i2t", "t2i")]) for k in shared])
            mark = {"win": " **win**", "loss": " **loss**"}.get(res.verdict, " no difference")
            p = f"p={res.p_value:.1e}" if res.p_value > 0 else "p<1e-300"  # below float range: not exactly 0
            cells.append(f"{res.mean_diff:+.4f} ({p}, better in {res.better_in}/{len(shared)}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    against = (f"{reference} (chosen with --reference)" if reference else
               "the full method (ablation: does removing the part change the result?)" if ablation else
               "the strongest baseline (highest mean mAP among the baselines in this table)")
    return (f"Paired difference to {against} "
            f"on the same queries: mean per-query AP difference over both directions and all "
            f"{len(next(iter(runs.values())))} seed(s), paired t-test p on the mean (two-sided), and in how many seeds "
            f"the method was better. **win** / **loss**: p < {ALPHA} and the sign holds in every seed; "
            "otherwise no difference (docs/tuning.md).\n\n" + "\n".join(lines) + "\n")


def markdown_report(results: list[RunResult], meta: dict[str, Any], topk: int | None,
                    dataset_notes: dict[str, str]) -> str:
    m = meta["machine"]
    partial = f"**Partial: {meta['partial']}.**\n\n" if meta.get("partial") else ""
    header = (f"Generated by `{meta['command']}` on {meta['date']} in {meta['wall_seconds']:.0f} s.\n\n{partial}"
              f"Machine: {m['cpu']}, {m['cores']} cores, {m['device']}; {meta.get('jobs', 1)} run(s) at a time, "
              f"{meta.get('threads_per_run', '?')} thread(s) each; Python {m['python']}, "
              f"torch {m['torch']}, cmhash {m['cmhash']}.\n\nProfile: {meta.get('profile', 'default')}.\n\n")
    return header + markdown_tables(results, topk, dataset_notes, reference=meta.get("reference"))


def write_outputs(results: list[RunResult], out_dir: str | os.PathLike, meta: dict[str, Any], topk: int | None,
                  dataset_notes: dict[str, str]) -> dict[str, Path]:
    """results.csv / results.json / results.md and plots/*.png under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in results]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps(
        {"meta": meta, "metric": metric_name(topk), "runs": rows, "summary": aggregate(results)}, indent=2))
    report = markdown_report(results, meta, topk, dataset_notes)
    atomic_write_text(out / "results.md", report)
    paths = {"csv": out / "results.csv", "json": out / "results.json", "markdown": out / "results.md"}
    paths.update(write_plots(results, out / "plots"))
    return paths


def _run_file(out_dir: Path, r: RunResult) -> Path:
    key = f"{r.dataset}_{r.variant}_{r.bits}bits_seed{r.seed}_data{r.data_seed}"
    return out_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".npz")


_METRICS = "metrics:"  # prefix of the arrays that hold a run's summary metrics (the curves the plots draw)


def save_per_query(r: RunResult, out_dir: Path) -> None:
    """One run's per-query AP (both directions) and, where kept, its summary metrics, written as it
    finishes so --report-only can redo the tests and redraw the PR / P@K curves."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(r.per_query_ap)
    for d, m in r.metrics.items():
        arrays[_METRICS + d] = np.array(json.dumps(_metrics_fields(m)))
    with atomic_path(_run_file(out_dir, r)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_per_query(results: list[RunResult], out_dir: Path) -> None:
    """Attach what :func:`save_per_query` wrote to ``results`` (where a file exists)."""
    from cmhash.metrics.ranking import RankingMetrics

    for r in results:
        if _run_file(out_dir, r).exists():
            with np.load(_run_file(out_dir, r)) as data:
                r.per_query_ap = {d: data[d] for d in data.files if not d.startswith(_METRICS)}
                r.metrics = {d[len(_METRICS):]: RankingMetrics(**_metrics_values(json.loads(str(data[d]))))
                             for d in data.files if d.startswith(_METRICS)}


def _metrics_fields(m: Any) -> dict[str, Any]:
    """A RankingMetrics as JSON-ready fields (curves as lists)."""
    from dataclasses import asdict

    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(m).items()}


def _metrics_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_metrics_fields`: integer cut-offs and numpy curves back."""
    return {k: {int(c): x for c, x in v.items()} if isinstance(v, dict)
            else np.asarray(v, float) if k.startswith("pr_") else v for k, v in fields.items()}


def write_plots(results: list[RunResult], out_dir: Path) -> dict[str, Path]:
    """PR and P@K curves per dataset, bit length and direction (first seed, every variant)."""
    from cmhash.metrics.plots import plot_map_vs_bits, plot_pr_curves, plot_precision_at_k

    paths = {}
    keyed: dict[tuple[str, int], dict[str, RunResult]] = {}
    for r in results:
        if r.metrics:
            keyed.setdefault((r.dataset, r.bits), {})[r.variant] = r
    for key in list(keyed):  # curves of only some rows (e.g. after --update) would read as the whole table
        if set(keyed[key]) != {r.variant for r in results if (r.dataset, r.bits) == key}:
            del keyed[key]
    rows = aggregate(results)
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        if len({r["bits"] for r in mine}) > 1:
            series = {}
            for v in dict.fromkeys(r["variant"] for r in mine):
                vr = sorted((r for r in mine if r["variant"] == v), key=lambda r: r["bits"])
                series[v] = ([r["bits"] for r in vr], [r["mean"] for r in vr], [r["mean_std"] for r in vr])
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", ds)
            paths[f"bits:{slug}"] = plot_map_vs_bits(series, out_dir / f"{slug}_map_vs_bits.png",
                                                     title=f"{ds}: mAP against code length (±1 std over seeds)")
    for (ds, bits), by_variant in keyed.items():
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", ds)
        for d in ("i2t", "t2i"):
            series = {v: r.metrics[d] for v, r in by_variant.items()}
            name = f"{slug}_{bits}bits_{d}"
            title = f"{ds}, {bits} bits, {DIRECTION_NAMES[d]}"
            paths[f"pr:{name}"] = plot_pr_curves(series, out_dir / f"{name}_pr.png", title=f"PR curve: {title}")
            paths[f"pk:{name}"] = plot_precision_at_k(series, out_dir / f"{name}_pk.png", title=f"P@K: {title}")
    return paths


def figure_block(paths: dict[str, Path], dest: Path, doc: Path) -> str:
    """Copy the bench's figures that a page shows into ``dest`` and return Markdown embedding them.

    Shown: mAP against code length per dataset, and the PR and P@K curves (both directions) at
    the middle bit length; links are relative to ``doc``. A report rebuilt from saved runs that
    cannot redraw the curves (runs saved before they kept them, or only some rows retrained) keeps
    the curves already in ``dest`` and says so.
    """
    import shutil

    keys = [k for k in paths if k.startswith("bits:")]
    pr = [k for k in paths if k.startswith(("pr:", "pk:"))]
    bits = sorted({int(re.search(r"_(\d+)bits_", k).group(1)) for k in pr})
    if bits:
        middle = bits[len(bits) // 2]
        keys += [k for k in pr if f"_{middle}bits_" in k]
    kept = [] if pr else sorted(dest.glob("*_p[rk].png"))
    if not keys and not kept:
        return ""
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in keys:
        shutil.copyfile(paths[k], dest / paths[k].name)
        lines.append(_embed(dest / paths[k].name, doc))
    note = ("\n\nThe PR and P@K curves below are the ones drawn when every row's first seed was last trained "
            "together; this report was rebuilt from saved runs that cannot redraw them.\n\n" if kept else "")
    return "\n\n" + " ".join(lines) + note + " ".join(_embed(f, doc) for f in kept) + "\n"


def _embed(figure: Path, doc: Path) -> str:
    return f"![{figure.stem.replace('_', ' ')}]({os.path.relpath(figure, doc.parent)})"


def update_doc_section(path: str | os.PathLike, section: str, content: str, title: str) -> None:
    """Replace the generated block ``section`` in a Markdown file (appended under ``title`` if absent)."""
    path = Path(path)
    start, end = f"<!-- cmhash:generated:{section} -->", f"<!-- /cmhash:generated:{section} -->"
    block = f"{start}\n{content.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n{title}\n\n{block}\n"
    atomic_write_text(path, text.lstrip())


def bench_meta(argv: list[str], wall_seconds: float, jobs: int = 1, threads: int = 1) -> dict[str, Any]:
    """``jobs`` runs trained at once with ``threads`` CPU threads each: the timings depend on both."""
    return {"command": "cmhash " + shlex.join(argv), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_seconds": wall_seconds, "machine": machine(), "jobs": jobs, "threads_per_run": threads,
            "argv": argv, "python_executable": sys.executable}
