"""``cmhash tune``: hyperparameter search on a validation split of the training data (docs/tuning.md)."""

from __future__ import annotations

import argparse
import shutil

from cmhash.commands._args import add_dataset_args, add_set_arg, gather_overrides, open_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search a method's hyperparameters on validation data (Optuna)",
                       description="TPE search over the method's YAML 'search:' space, scored ONLY on a validation "
                                   "split carved from the training split (the query and database splits are never "
                                   "used); deep trials are pruned on per-epoch validation mAP. Writes trials.csv/json, "
                                   "best.yaml (for --config), history.png and the resumable study.db to --out; "
                                   "running the same command again resumes the study.")
    p.add_argument("--method", required=True, help="method name (see `cmhash bench --list`)")
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold (pruned count)")
    p.add_argument("--max-epochs", type=int, default=15,
                   help="epoch cap of every deep trial, kept in best.yaml (default: %(default)s; docs/tuning.md)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--jobs", type=int, default=1,
                   help="trials run at once in worker processes, CPU threads shared equally (default: 1; "
                        "only --jobs 1 is reproducible trial for trial)")
    p.add_argument("--seed", type=int, default=0, help="model seed of every trial and seed of the sampler")
    p.add_argument("--out", required=True, help="study directory (created; an existing study there is resumed)")
    p.add_argument("--save-profile", metavar="FAMILY",
                   help="also install best.yaml as the tuned profile methods/profiles/FAMILY/METHOD.yaml "
                        "(FAMILY: wiki or synthetic, as `--profile tuned` looks them up)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataset_args(p)
    add_set_arg(p, profile=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cmhash.bench.tune import TuneSpec, tune
    from cmhash.config import profile_path, resolve
    from cmhash.methods import get_method

    cls = get_method(args.method)
    if args.trials < 1:
        raise ValueError("--trials must be at least 1")
    overrides = resolve(cls.name, cls.default_config(), gather_overrides(args))
    spec = TuneSpec(cls.name, args.bits, args.seed, args.max_epochs, overrides)
    summary = tune(open_from_args(args), spec, args.out, args.trials, timeout=args.timeout, jobs=args.jobs,
                   progress=not args.no_progress)
    states = summary["trials"]
    print(f"{cls.name} on {args.dataset}, {args.bits} bits: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
          f"{states['FAIL']} failed trials ({summary['seconds_this_run']:.0f} s this run)")
    if "best_value" not in summary:
        print("no trial completed: no best.yaml")
        return 1
    print(f"best validation mAP {summary['best_value']:.4f} (trial {summary['best_trial']}): {summary['best_params']}")
    print(f"outputs in {args.out}: trials.csv, trials.json, best.yaml, history.png, summary.json, study.db")
    if args.save_profile:
        target = profile_path(args.save_profile, cls.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(args.out) / "best.yaml", target)
        print(f"installed as the tuned profile {target}")
    return 0
