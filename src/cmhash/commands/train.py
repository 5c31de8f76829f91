"""``cmhash train``: fit one method on a dataset's train split and save the model."""

from __future__ import annotations

import argparse
import os

from cmhash.commands._args import add_dataset_args, add_set_arg, gather_overrides, open_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a hashing method and save the model",
                       description="Train a method on the dataset's train split. Deep methods run on the shared "
                                   "engine; launch under `torchrun --nproc_per_node N` for DDP.")
    p.add_argument("--method", required=True, help="method name (see `cmhash bench --list`)")
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model file to write (atomic)")
    p.add_argument("--run-dir", help="checkpoints + JSONL log for deep methods (enables --resume)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.ckpt")
    add_dataset_args(p)
    add_set_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cmhash.methods import get_method
    from cmhash.methods.deep import DeepHashMethod

    from cmhash.config import dataset_family, load_profile, resolve

    cls = get_method(args.method)
    profiled, profile_note = load_profile(args.profile, dataset_family(args.dataset), cls.name)
    overrides = resolve(cls.name, cls.default_config(), profiled + gather_overrides(args))
    if issubclass(cls, DeepHashMethod):
        train_cfg = overrides.setdefault("train", {})
        if args.run_dir:
            train_cfg["run_dir"] = args.run_dir
        if args.resume:
            train_cfg["resume"] = True
    elif args.run_dir or args.resume:
        raise ValueError(f"{args.method} is not a deep method: --run-dir/--resume do not apply")
    dataset = open_from_args(args)
    model = cls(bits=args.bits, seed=args.seed, **overrides).fit(dataset)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        model.save(args.out)
        print(f"trained {model!r} (profile: {profile_note}) on {dataset.describe()}\nsaved {args.out}")
    return 0
