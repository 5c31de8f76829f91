"""``cmhash bench``: methods x bit lengths x datasets x seeds into trustworthy tables and plots."""

from cmhash.bench.runner import RunResult, Variant, plan_variants, run_grid

__all__ = ["RunResult", "Variant", "plan_variants", "run_grid"]
