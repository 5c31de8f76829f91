"""Compare configurations ("arms") of methods on the VALIDATION split only (never the query split).

The protocol is the tuner's (``cmhash tune``): the study is given only the training rows of the
dataset; each run is scored by :func:`cmhash.bench.tune.score_config`, the function that scores a
tuning trial. Deep methods: the engine carves ``train.val_fraction`` of the training rows for
validation (seeded by the training seed), ranks the validation queries against the fitted rows
and the score is the best smoothed validation mAP (mean of I→T and T→I), the one the engine
keeps weights on. Shallow methods: the same carve, fitted on the rest and scored the same way.

Why this protocol and not a separate held-out dev carve (the former ``wiki_stability.py``
held out 20 % of the training rows as dev queries and fitted on the other 80 %):

- a study answers the question tuning answers, with the same number, so a study can confirm or
  overturn a tuner's choice on equal terms (docs/methods/cdhtk.md did exactly that);
- the models are fitted on all training rows but the one carve, as in tuning and in the bench,
  not on 80 % of 90 % of them (on Wiki, 1,565 of 2,173 pairs);
- the query split is never opened, not even "for reporting": a tool for choosing does not show
  the numbers nothing may be chosen by.

The price: the validation rows that choose the best epoch also give the score, so the score is
optimistic by a little (smoothed over 3 epochs, it is little). The bias is shared by the arms
compared and by every tuning trial; arms are compared to each other, seed by seed on identical
carves (the carve is seeded by the training seed), never read as absolute test figures. It is
shared only while the arms keep the same validation: arms that differ in the engine's
``train.val_fraction``, ``val_database``, ``val_window`` or ``val_every`` would each be scored by
a different yardstick, so the study refuses them (a study-wide ``--set`` of those keys is fine:
every arm is then measured alike). Changing the validation itself is the one question this
protocol cannot score; the former ``wiki_stability.py`` answered it once on its dev carve
(docs/stability.md), and the recorded lines stay readable here.

Arms: ``--arm NAME`` (method defaults) or ``--arm NAME:BASE,key=value,...`` where BASE
(optional, first) is ``tuned`` (the shipped tuned profile of each method for the dataset's
family), ``default``, or a YAML file of overrides (a ``best.yaml`` of ``cmhash tune``, or any
``--config`` file); key=value pairs are the override dialect of ``cmhash train`` (``--set``).
``--set KEY=VALUE`` applies to every arm (after the base, before the arm's own pairs).
Overrides are routed as in ``cmhash bench``: ``dcmh.hidden=32`` is scoped to one method, an
unscoped key applies to each selected method that has it, and a key no method has is an error.

One JSON line per run (method, bits, training seed, arm) is appended to ``--out``; the line
records the resolved overrides. ``--summary`` prints, per method, dataset and bit length, the
mean ± std (sample std over seeds) per arm and the per-seed difference to the FIRST arm with a
paired t-test over seeds (with 3 seeds only large, consistent differences reach p < 0.05: a
difference that does not is reported as "no difference"). It also reads the lines written by the
former ``validation_study.py`` and ``wiki_stability.py``, each group labelled with its protocol.

    python benchmarks/validation_study.py --methods sdeh --dataset synthetic --bits 32 --seeds 0 1 2 \\
        --arm base --arm scaled:similarity_scale=8 --out docs/studies/sdeh.jsonl
    python benchmarks/validation_study.py --methods cdhtk --dataset wiki --bits 32 \\
        --arm kn-off:tuned,components.knowledge_network=false --arm kn-on:tuned --out x.jsonl
    python benchmarks/validation_study.py --methods dcmh ddss --dataset wiki --bits 16 32 64 \\
        --arm before:train.val_database=0,train.val_window=1 --arm after --out x.jsonl
    python benchmarks/validation_study.py --summary --out x.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import ttest_rel

from cmhash.bench.tune import score_config, tuning_split
from cmhash.config import Override, dataset_family, flatten, gather, load_profile, method_defaults, parse_set, route
from cmhash.data.sources import open_dataset
from cmhash.errors import ConfigError
from cmhash.methods import get_method

PROTOCOL = "tune"  # recorded in every line: the score is cmhash.bench.tune.score_config's
PROTOCOLS = {  # (summary heading, score column) by the protocol a line was scored with
    PROTOCOL: ("validation split, the tuner's score (deep methods: best smoothed epoch)", "validation mAP"),
    "former-validation": ("validation split, rows of the former validation_study.py (best unsmoothed epoch; "
                          "shallow methods ranked within the validation split)", "validation mAP"),
    "former-dev": ("20 % dev carve of the training rows against the fitted rows, rows of the former "
                   "wiki_stability.py", "dev mAP"),
}
PROFILES = ("default", "tuned")
YARDSTICK = ("val_fraction", "val_database", "val_window", "val_every")  # engine keys that define the score


@dataclass(frozen=True)
class Arm:
    name: str
    base: str | None  # "default", "tuned" or a YAML file of overrides
    pairs: list[Override]

    @classmethod
    def parse(cls, text: str) -> "Arm":
        """``NAME`` or ``NAME:[BASE,]key=value,...``."""
        name, _, spec = text.partition(":")
        if not name.strip():
            raise ConfigError(f"--arm {text!r}: the arm needs a name (NAME or NAME:key=value,...)")
        items = [item for item in spec.split(",") if item.strip()]
        base = items.pop(0).strip() if items and "=" not in items[0] else None
        if any("=" not in item for item in items):
            raise ConfigError(f"--arm {text!r}: after the optional profile, expected key=value items")
        return cls(name.strip(), base, parse_set(items))

    def overrides(self, methods: list[str], family: str, common: list[Override]) -> list[Override]:
        """Base, then the study-wide ``--set``, then the arm's own pairs (later wins)."""
        if self.base in PROFILES:
            base = [o for m in methods for o in load_profile(self.base, family, m)[0]]
        else:
            base = gather(self.base) if self.base else []
        return base + common + self.pairs


def same_yardstick(configs: dict[str, dict[str, dict[str, Any]]], defaults: dict[str, dict[str, Any]]) -> None:
    """Refuse arms that differ in the engine's validation settings: their scores would not compare."""
    for method, default in defaults.items():
        if "train" not in default:  # shallow: scored on the engine's default carve whatever the arm
            continue
        for key in YARDSTICK:
            values = {arm: config[method].get("train", {}).get(key, default["train"][key])
                      for arm, config in configs.items()}
            if len(set(map(repr, values.values()))) > 1:
                raise ConfigError(f"{method}: arms differ in train.{key} ({values}); it changes the validation that "
                                  "scores them, so they cannot be compared (set it for all arms with --set)")


def run(args: argparse.Namespace) -> None:
    arms = [Arm.parse(a) for a in args.arm] or [Arm("base", None, [])]
    if len({a.name for a in arms}) < len(arms):
        raise ConfigError(f"--arm names must differ, got {[a.name for a in arms]}")
    defaults = {m: method_defaults(m, get_method(m).deep) for m in args.methods}
    family, common = dataset_family(args.dataset), parse_set(args.set)
    configs = {a.name: route(a.overrides(args.methods, family, common), defaults) for a in arms}  # bad keys fail here
    same_yardstick(configs, defaults)
    train = tuning_split(open_dataset(args.dataset, seed=args.data_seed))  # nothing else of the dataset is used
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        for bits in args.bits:
            for seed in args.seeds:
                for arm in arms:
                    config = configs[arm.name][method]
                    start = time.perf_counter()
                    score, model = score_config(method, bits, seed, config, train)
                    row = {"method": method, "dataset": args.dataset, "data_seed": args.data_seed, "bits": bits,
                           "arm": arm.name, "overrides": dict(flatten(config)), "seed": seed,
                           "val_map": round(score, 5), "protocol": PROTOCOL,
                           "epochs": len(getattr(model, "history", [])),
                           "seconds": round(time.perf_counter() - start, 1)}
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """A line of this script, or of the former validation_study.py / wiki_stability.py, as one shape."""
    if "dev" in row:  # wiki_stability.py: "tag" was the arm, "dev" the score
        return {**row, "arm": row["tag"], "val_map": row["dev"], "dataset": row.get("dataset", "wiki"),
                "protocol": "former-dev"}
    return {**row, "protocol": row.get("protocol", "former-validation")}


def paired(arm: dict[int, float], base: dict[int, float]) -> str:
    """Per-seed difference to the first arm: mean ± std, how many seeds it is higher in, t-test."""
    common = sorted(set(arm) & set(base))
    if not common:
        return "no common seeds"
    diff = np.array([arm[s] - base[s] for s in common])
    spread = f" ± {diff.std(ddof=1):.4f}" if len(diff) > 1 else ""
    text = f"{diff.mean():+.4f}{spread}, higher in {int((diff > 0).sum())}/{len(diff)}"
    if len(diff) > 2 and diff.std() > 0:
        text += f" (paired t-test p = {ttest_rel([arm[s] for s in common], [base[s] for s in common]).pvalue:.3f})"
    return text


def summarise(path: Path) -> None:
    rows = [normalise(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        key = (r["method"], r["dataset"], r["bits"], r["protocol"])
        groups.setdefault(key, {}).setdefault(r["arm"], []).append(r)
    for (method, dataset, bits, protocol), arms in groups.items():
        heading, column = PROTOCOLS[protocol]
        print(f"\n## {method} on {dataset}, {bits} bits: {heading}\n")
        base_name = next(iter(arms))
        base = {r["seed"]: r["val_map"] for r in arms[base_name]}
        print(f"| arm | seeds | {column} (mean ± std) | vs {base_name}, per seed | epochs |")
        print("|---|---|---|---|---|")
        for arm, rs in arms.items():
            by_seed = {r["seed"]: r["val_map"] for r in rs}
            v = np.array(list(by_seed.values()))
            epochs = [r.get("epochs", 0) for r in rs]
            print(f"| {arm} | {len(v)} | {v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f} | "
                  f"{'—' if arm == base_name else paired(by_seed, base)} | {min(epochs)}–{max(epochs)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", "--method", nargs="+", dest="methods", help="method names")
    p.add_argument("--dataset", default="synthetic", help="dataset spec, e.g. wiki or synthetic:private_weight=3")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic data seed (0: the tuning seed)")
    p.add_argument("--bits", type=int, nargs="+", default=[32])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (also seed the carve)")
    p.add_argument("--arm", action="append", default=[], help="NAME or NAME:[tuned|default|FILE.yaml,]key=value,...")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every arm (YAML value)")
    p.add_argument("--out", type=Path, required=True, help="JSONL file the runs are appended to")
    p.add_argument("--summary", action="store_true", help="only print the summary of --out")
    a = p.parse_args()
    if a.summary:
        summarise(a.out)
        return
    if not a.methods:
        p.error("--methods is required (unless --summary)")
    try:
        run(a)
    except ConfigError as exc:
        p.error(str(exc))
    summarise(a.out)


if __name__ == "__main__":
    main()
