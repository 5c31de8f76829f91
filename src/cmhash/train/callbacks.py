"""Engine callbacks Lightning does not ship: validation mAP, best weights kept in memory, a JSONL log."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch

from cmhash.data.dataset import CrossModalDataset
from cmhash.metrics.evaluate import Encoder


class ValidationMAP(L.Callback):
    """Log ``val_map``: mean of I→T and T→I mAP (whole ranking) within the validation split.

    Every DDP rank encodes the whole (small) validation split itself, so all ranks get the same
    score with no gather, and early stopping / best-weights decisions agree across ranks.
    """

    def __init__(self, method: Encoder, val: CrossModalDataset, every: int):
        self.method, self.val, self.every = method, val, max(1, every)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every:
            return
        from cmhash.metrics import mean_average_precision

        img, txt = self.method.encode_image(self.val.image), self.method.encode_text(self.val.text)
        module.net.train()
        labels = self.val.labels
        score = (mean_average_precision(img, txt, labels, labels) + mean_average_precision(txt, img, labels, labels)) / 2
        module.log("val_map", float(score), prog_bar=True, sync_dist=False)


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
