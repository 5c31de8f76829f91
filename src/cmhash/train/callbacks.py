"""Engine callbacks Lightning does not ship: validation mAP, best weights kept in memory, a JSONL log."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch

from cmhash.data.dataset import CrossModalDataset
from cmhash.metrics.evaluate import Encoder


class ValidationMAP(L.Callback):
    """Log ``val_map`` and its smoothed form ``val_map_smooth`` after every ``every``-th epoch.

    ``val_map`` is the mean of I→T and T→I mAP (whole ranking) of the validation items as queries
    against ``database``: training rows the network was fitted on, as the query split is ranked
    against the training database at test time. Without a database the validation split is
    ranked against itself. Ranking a few hundred validation items among themselves gives a score
    whose epoch-to-epoch noise is as large as the differences between epochs, and it ignores how
    well the fitted database items are coded, which the test protocol rewards.

    ``val_map_smooth`` is the mean of the last ``window`` scores: early stopping and best-weights
    read it, so one lucky epoch does not decide which weights are kept.

    Every DDP rank encodes the (bounded) validation and database rows itself, so all ranks get the
    same score with no gather, and early stopping / best-weights decisions agree across ranks.
    """

    def __init__(self, method: Encoder, val: CrossModalDataset, every: int,
                 database: CrossModalDataset | None = None, window: int = 1):
        self.method, self.val, self.every = method, val, max(1, every)
        self.database = database if database is not None else val
        self.window = max(1, window)
        self.scores: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every:
            return
        from cmhash.metrics import mean_average_precision

        encode_image, encode_text = self.method.encode_image, self.method.encode_text
        q, db = self.val, self.database
        score = (mean_average_precision(encode_image(q.image), encode_text(db.text), q.labels, db.labels)
                 + mean_average_precision(encode_text(q.text), encode_image(db.image), q.labels, db.labels)) / 2
        module.net.train()
        self.scores.append(float(score))
        module.log("val_map", float(score), prog_bar=True, sync_dist=False)
        module.log("val_map_smooth", float(np.mean(self.scores[-self.window:])), sync_dist=False)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = list(state["scores"])


class ValidationListener(L.Callback):
    """Pass each epoch's validation score to ``listen(epoch, score)`` (it may raise to stop training)."""

    def __init__(self, monitor: str, listen: Callable[[int, float], None]):
        self.monitor, self.listen = monitor, listen

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None:
            self.listen(trainer.current_epoch, float(score))


class BestWeights(L.Callback):
    """Keep the network weights of the best monitored score and restore them when training ends.

    Held in memory (identical on every DDP rank, since every rank computes the same validation
    score) and stored inside Lightning checkpoints, so a resumed run still knows its best.
    """

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.best_score = -float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) > self.best_score:
            self.best_score = float(score)
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in module.net.state_dict().items()})

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.best_state is not None:
            module.net.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_state = state["best_score"], state["best_state"]


class JsonlLog(L.Callback):
    """One record per epoch (all logged metrics) appended to ``history`` and, on rank 0, a JSONL file."""

    def __init__(self, history: list[dict[str, float]], path: Path | None):
        self.history, self.path = history, path

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        record = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                  "lr": trainer.optimizers[0].param_groups[0]["lr"],
                  **{k: float(v) for k, v in trainer.callback_metrics.items()}}
        self.history.append(record)
        if self.path is not None and trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
