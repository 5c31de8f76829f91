"""PNG figures of ranking curves, one line per method: the PR curve over Hamming radii and P@K.

Drawn on a bare matplotlib ``Figure`` with the Agg canvas (no pyplot, no global backend state),
and written atomically so a crash never leaves half an image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cmhash.io import atomic_path
from cmhash.metrics.ranking import RankingMetrics


def plot_pr_curves(results: Mapping[str, RankingMetrics], path: str | os.PathLike,
                   title: str = "Precision-recall over Hamming radius") -> Path:
    """Mean precision against mean recall within Hamming radius r = 0..bits, one curve per label."""
    return _save_lines({label: (m.pr_recall, m.pr_precision) for label, m in results.items()},
                       xlabel="recall", ylabel="precision", path=path, title=title)


def plot_precision_at_k(results: Mapping[str, RankingMetrics], path: str | os.PathLike,
                        title: str = "Precision at K (Hamming ranking)") -> Path:
    """P@K against K (log scale), one curve per label."""
    series = {label: (list(m.precision_at), list(m.precision_at.values())) for label, m in results.items()}
    return _save_lines(series, xlabel="K (items retrieved)", ylabel="precision@K", path=path, title=title,
                       log_x=True)


def plot_map_vs_bits(series: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
                     path: str | os.PathLike, title: str = "mAP against code length") -> Path:
    """Mean mAP against bits with a ±1 std bar (the spread over seeds), one line per label."""
    return _save_lines(series, xlabel="code length (bits)", ylabel="mean mAP (I→T, T→I)", path=path, title=title,
                       log_x=True, ticks=sorted({b for x, *_ in series.values() for b in x}), ylim=None)


def _save_lines(series: Mapping[str, tuple[Sequence[float], ...]], xlabel: str, ylabel: str,
                path: str | os.PathLike, title: str, log_x: bool = False, ticks: Sequence[float] = (),
                ylim: tuple[float, float] | None = (0, 1.02)) -> Path:
    """One marked line per series, (x, y) or (x, y, y error); NaN points (radii retrieving nothing) left out."""
    if not series:
        raise ValueError("nothing to plot: no results given")
    fig = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, (x, y, *err) in series.items():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = ~(np.isnan(x) | np.isnan(y))
        if not keep.any():
            raise ValueError(f"{label!r}: no defined point to plot")
        yerr = np.asarray(err[0], dtype=float)[keep] if err else None
        ax.errorbar(x[keep], y[keep], yerr=yerr, marker="o", markersize=3, capsize=3 if err else 0, label=label)
    if log_x:
        ax.set_xscale("log")
    if len(ticks):
        ax.set_xticks(list(ticks), [str(int(t)) for t in ticks])
        ax.minorticks_off()
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
