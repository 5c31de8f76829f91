"""``cmhash bench``: methods x bits x datasets x seeds into tables (CSV/JSON/Markdown) and plots."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from cmhash.commands._args import add_dataset_args, add_set_arg, describe_protocol, gather_overrides, open_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="train and evaluate methods x bits x datasets x seeds",
                       description="Every combination is trained on the train split and evaluated query vs "
                                   "database, I→T and T→I. Writes results.csv/json/md and PR / P@K plots to --out.")
    p.add_argument("--methods", nargs="+", default=["all"],
                   help="method names or groups: all, baselines, founding (default: all)")
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1) per combination")
    p.add_argument("--topk", type=int, help="report mAP@K instead of mAP over the whole ranking")
    p.add_argument("--ablate", metavar="METHOD", help="ablation table: the method, then each part removed")
    p.add_argument("--reference", metavar="METHOD",
                   help="test every row against this row (default: the strongest baseline; in an ablation, the "
                        "full method)")
    p.add_argument("--parts", nargs="+", metavar="PART",
                   help="with --ablate: remove only these parts (default: every ablatable part)")
    p.add_argument("--jobs", type=int, default=1,
                   help="combinations trained at once in worker processes, CPU threads shared equally (default: 1)")
    p.add_argument("--out", default="runs/bench", help="output directory (default: %(default)s)")
    p.add_argument("--docs", metavar="MD", help="also write the tables into this Markdown file (generated block)")
    p.add_argument("--docs-section", default="bench", help="name of the generated block in --docs")
    p.add_argument("--docs-title", help="heading placed above a new block (default: '## <section>')")
    p.add_argument("--method-docs", action="store_true",
                   help="write each method's rows into docs/methods/<method>.md (block named as --docs-section, "
                        "or 'bench' / 'ablation')")
    p.add_argument("--data-seeds", type=int, nargs="+", metavar="SEED",
                   help="draw each dataset with each of these data seeds (synthetic data, protocol splits); the runs "
                        "of all data seeds are the replicates of one row (e.g. tune on data seed 0, report on 1 2 3)")
    p.add_argument("--list", action="store_true", help="list the registered methods and exit")
    p.add_argument("--report-only", action="store_true",
                   help="no training: rebuild the report from --out/runs.jsonl (e.g. of a stopped bench)")
    p.add_argument("--update", action="store_true",
                   help="train only the given methods (or ablation rows) and replace their runs in --out; the "
                        "other runs there are kept and reported with them (e.g. after one method's profile changed)")
    add_dataset_args(p, many=True)
    add_set_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cmhash.bench.report import (bench_meta, figure_block, load_per_query, markdown_tables, save_per_query,
                                     update_doc_section, write_outputs)
    from cmhash.bench.runner import RunResult, expand_methods, plan_variants, run_grid, threads_per_run
    from cmhash.methods import get_method
    from cmhash.methods.registry import FOUNDING
    from cmhash.errors import ConfigError

    console = Console()
    if args.list:
        for name in expand_methods(["all"]):
            cls = get_method(name)
            kind = ("founding" if name in FOUNDING else "baseline") + (", deep" if cls.deep else ", shallow")
            console.print(f"{name:18s} {kind}{', unsupervised' if not cls.supervised else ''}")
        return 0
    if args.parts and not args.ablate:
        raise ConfigError("--parts selects ablated parts: it needs --ablate METHOD")
    start = time.perf_counter()
    methods = expand_methods(args.methods) if not args.ablate else [args.ablate]
    profiled, _ = profile_overrides(args.profile, args.dataset, methods)
    variants = plan_variants(methods, profiled + gather_overrides(args), ablate=args.ablate,
                             parts=args.parts)
    data_seeds = args.data_seeds or [args.data_seed]
    opened = [(spec, seed) for spec in args.dataset for seed in data_seeds]
    datasets = []
    for spec, seed in opened:
        args.data_seed = seed
        datasets.append(open_from_args(args, spec))
    seeds_note = f" Data seed{'s' if len(data_seeds) > 1 else ''} {', '.join(map(str, data_seeds))}" + (
        " (each with every model seed: the replicates of a row)." if len(data_seeds) > 1 else ".")
    seeds = list(range(args.seeds))
    total = len(datasets) * len(variants) * len(args.bits) * len(seeds)  # datasets: one per (spec, data seed)
    out = Path(args.out)
    partial = out / "runs.jsonl"  # one line per finished run, so an interrupted bench keeps its numbers

    if args.report_only and args.update:
        raise ConfigError("--report-only trains nothing, --update trains some methods: choose one")
    if args.report_only or args.update:
        if not partial.exists():
            raise ConfigError(f"{partial}: no runs to {'report' if args.report_only else 'update'} (run the bench first)")
        earlier = [RunResult(**{k: v for k, v in json.loads(line).items() if k != "mean"})
                   for line in partial.read_text().splitlines()]
    if args.report_only:
        results = in_row_order(earlier, [v.label for v in variants])
        load_per_query(results, out / "per_query")
        wall = sum(r.train_seconds for r in results)
        argv = [a for a in sys.argv[1:] if a != "--report-only"]
    else:
        kept: list[RunResult] = []
        if args.update:
            rerun = {v.label for v in variants}
            kept = [r for r in earlier if r.variant not in rerun]
            load_per_query(kept, out / "per_query")
        out.mkdir(parents=True, exist_ok=True)
        partial.write_text("".join(json.dumps(r.row()) + "\n" for r in kept))
        if not args.update:
            shutil.rmtree(out / "per_query", ignore_errors=True)

        finished: list[RunResult] = []

        def show(r: RunResult) -> None:
            finished.append(r)
            save_per_query(r, out / "per_query")
            with open(partial, "a") as f:
                f.write(json.dumps(r.row()) + "\n")
            console.print(f"[{len(finished)}/{total}] {r.dataset} {r.variant} {r.bits} bits "
                          f"seed {r.seed}: I→T {r.i2t:.4f} T→I {r.t2i:.4f} ({r.train_seconds:.1f} s)", soft_wrap=True)

        results = run_grid(datasets, variants, args.bits, seeds, topk=args.topk, on_result=show, jobs=args.jobs,
                           data_seeds=[seed for _, seed in opened])
        total += len(kept)
        if kept:  # the updated rows take the place of the ones they replace
            results = in_row_order(kept + results, [r.variant for r in earlier + results])
        wall = time.perf_counter() - start
        argv = sys.argv[1:]
    # named from the rows reported: a rebuilt or updated table also holds rows the command did not plan
    profile_note = profile_overrides(args.profile, args.dataset, list(dict.fromkeys(r.method for r in results)))[1]
    notes = {ds.name: describe_protocol(ds) + seeds_note + f" Profile: {profile_note}." for ds in datasets}
    meta = bench_meta(argv, wall, args.jobs, threads_per_run(args.jobs))
    meta["profile"] = profile_note
    meta["reference"] = args.reference
    if len(results) < total:
        meta["partial"] = f"{len(results)} of {total} runs finished (the bench was stopped early)"
    paths = write_outputs(results, args.out, meta, args.topk, notes)
    print(paths["markdown"].read_text())  # plain: Markdown must not be re-wrapped to the terminal width
    console.print(f"total wall time: {wall:.1f} s ({wall / 60:.1f} min); outputs in {args.out}")
    if args.docs:
        doc = Path(args.docs)
        figures = figure_block(paths, doc.parent / "img" / args.docs_section, doc)
        update_doc_section(doc, args.docs_section, paths["markdown"].read_text() + figures,
                           title=args.docs_title or f"## {args.docs_section}")
    if args.method_docs:
        section = args.docs_section if args.docs else ("ablation" if args.ablate else "bench")
        for method in dict.fromkeys(r.method for r in results):
            text = f"Generated by `{meta['command']}` on {meta['date']}.\n\n" + markdown_tables(
                results, args.topk, notes, methods=[method], reference=args.reference)
            update_doc_section(f"docs/methods/{method}.md", section, text,
                               title=f"## {'Ablation' if args.ablate else 'Results'} on {', '.join(args.dataset)} "
                                     "(generated)")
    return 0


def in_row_order(results: list, labels: list[str]) -> list:
    """``results`` with rows in the order of ``labels`` (first occurrence; rows not named go last), then
    bits and replicate: runs.jsonl is in finishing order when runs train in parallel."""
    rank = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    return sorted(results, key=lambda r: (rank.get(r.variant, len(rank)), r.bits, r.data_seed, r.seed))


def profile_overrides(profile: str, datasets: list[str], methods: list[str]) -> tuple[list, str]:
    """Scoped overrides of ``--profile`` for every method, and the line the tables print about it."""
    from cmhash.config import dataset_family, load_profile

    families = {dataset_family(d) for d in datasets}
    if profile != "default" and len(families) > 1:
        raise ValueError(f"--profile {profile}: bench one dataset family at a time (got {sorted(families)})")
    family = families.pop()
    overrides, used = [], {}
    for m in methods:
        mine, note = load_profile(profile, family, m)
        overrides += mine
        used.setdefault(note, []).append(m)
    if profile == "default":
        return overrides, "default (the YAML defaults in methods/configs/)"
    return overrides, "; ".join(f"{note}: {', '.join(ms)}" for note, ms in used.items())
