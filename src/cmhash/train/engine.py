"""The training engine: a method gives networks and loss terms; this owns everything else.

Built on the Lightning ``Trainer``: batching from the dataset type, optimiser and LR schedule,
gradient clipping, seeding, device choice, mixed precision on GPU, a rich progress bar with the
loss terms, validation mAP on a split carved from the training data (never the query set) with
best-weights keeping and early stopping, resumable checkpoints and a JSONL epoch log in
``run_dir``. Launched under ``torchrun`` it trains with DDP (gloo on CPU, nccl on GPU) unchanged.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from cmhash.data.dataset import CrossModalDataset
from cmhash.train.callbacks import BestWeights, JsonlLog, ValidationMAP, ValidationListener

for _name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


class Trainable(Protocol):
    """What the engine needs from a deep method (``methods.deep.DeepHashMethod`` is one).

    The engine depends on this protocol, not on the methods package, so ``methods`` imports
    ``train`` and never the other way round.
    """

    name: str
    seed: int
    config: dict[str, Any]
    net: torch.nn.Module | None
    on_validation: Callable[[int, float], None] | None

    def build_network(self) -> torch.nn.Module: ...

    def prepare(self, net: torch.nn.Module, train: CrossModalDataset) -> None: ...

    def loss_terms(self, net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def weight(self, term: str) -> float: ...

    def fit_input_stats(self, train: CrossModalDataset) -> None: ...

    def standardize(self, modality: str, x: torch.Tensor) -> torch.Tensor: ...

    def encode_image(self, x: np.ndarray) -> np.ndarray: ...

    def encode_text(self, x: np.ndarray) -> np.ndarray: ...


class HashingModule(L.LightningModule):
    """Lightning wrapper: weighted sum of the method's loss terms, validation mAP, optimisers."""

    def __init__(self, method: Trainable, steps_per_epoch: int):
        super().__init__()
        self.method = method
        self.net = method.net
        self.steps_per_epoch = steps_per_epoch
        self.train_cfg = method.config["train"]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        image, text, labels, index = batch
        terms = self.method.loss_terms(self.net, {"image": image, "text": text, "labels": labels, "index": index})
        total = torch.zeros((), device=image.device)
        for name, value in terms.items():
            w = self.method.weight(name)
            if w == 0:
                continue
            if not torch.isfinite(value):
                raise FloatingPointError(f"{self.method.name}: loss term {name!r} is {value.item()} "
                                         f"at epoch {self.current_epoch}, step {batch_idx}")
            total = total + w * value
            self.log(f"loss/{name}", value.detach(), on_step=False, on_epoch=True, batch_size=len(image))
        self.log("loss", total.detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=len(image))
        return total

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        params = [p for p in self.net.parameters() if p.requires_grad]
        kind = cfg["optimizer"]
        if kind == "adamw":
            opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        elif kind == "adam":
            opt = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        elif kind == "sgd":
            opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"])
        else:
            raise ValueError(f"unknown optimizer {kind!r} (adamw | adam | sgd)")
        total = max(1, cfg["epochs"] * self.steps_per_epoch)
        warmup = min(total - 1, cfg["warmup_epochs"] * self.steps_per_epoch)
        sched = cfg["scheduler"]
        if sched == "none":
            return opt
        if sched == "cosine":
            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / (warmup + 1)
                return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        elif sched == "step":
            def factor(step: int) -> float:
                return 0.1 ** (step // max(1, total // 3))
        else:
            raise ValueError(f"unknown scheduler {sched!r} (cosine | step | none)")
        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lr_sched, "interval": "step"}}


def carve_validation(train: CrossModalDataset, fraction: float, seed: int) -> tuple[CrossModalDataset, CrossModalDataset | None]:
    """Split ``fraction`` of the training rows off for validation (seeded)."""
    if fraction <= 0:
        return train, None
    n_val = int(round(len(train) * fraction))
    if n_val < 2 or len(train) - n_val < 2:
        raise ValueError(f"val_fraction={fraction} leaves too few items from {len(train)} training pairs")
    perm = np.random.default_rng(seed).permutation(len(train))
    return train.subset(np.sort(perm[n_val:]), name=train.name), train.subset(np.sort(perm[:n_val]), name=f"{train.name}/val")


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _trainer_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Device, precision and strategy from the config and the launch environment."""
    accelerator = cfg["accelerator"]
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    precision = cfg["precision"]
    if precision == "auto":
        precision = "16-mixed" if accelerator == "cuda" else "32-true"
    kwargs: dict[str, Any] = {"accelerator": accelerator, "precision": precision}
    if _distributed():
        kwargs.update(strategy="ddp", devices=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                      num_nodes=int(os.environ["WORLD_SIZE"]) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    else:
        kwargs["devices"] = 1 if cfg["devices"] == "auto" else cfg["devices"]
    return kwargs


def fit_deep(method: Trainable, train: CrossModalDataset) -> list[dict[str, float]]:
    """Train ``method.net`` on ``train``; leaves the best-validation weights in place; returns the epoch log."""
    cfg = method.config["train"]
    L.seed_everything(method.seed, workers=True, verbose=False)
    fit_set, val = carve_validation(train, float(cfg["val_fraction"]), method.seed)
    method.fit_input_stats(fit_set)
    # The method sees standardised features throughout training (prepare, batches); validation
    # goes through the public encode path, which standardises raw features the same way.
    image = method.standardize("image", torch.from_numpy(fit_set.image))
    text = method.standardize("text", torch.from_numpy(fit_set.text))
    method.net = method.build_network()
    method.prepare(method.net, CrossModalDataset(image.numpy(), text.numpy(), fit_set.labels, fit_set.ids,
                                                 name=fit_set.name, source=fit_set.source))

    tensors = TensorDataset(image, text, torch.from_numpy(fit_set.labels).float(), torch.arange(len(fit_set)))
    batch_size = min(int(cfg["batch_size"]), len(fit_set))
    loader = DataLoader(tensors, batch_size=batch_size, shuffle=True, drop_last=len(fit_set) > batch_size,
                        generator=torch.Generator().manual_seed(method.seed))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps = max(1, len(fit_set) // (batch_size * world))
    module = HashingModule(method, steps)

    run_dir = Path(cfg["run_dir"]) if cfg["run_dir"] else None
    history: list[dict[str, float]] = []
    callbacks: list[L.Callback] = []  # order matters: validation first, then who reads its score
    if val is not None:
        callbacks += [ValidationMAP(method, val, int(cfg["val_every"])), BestWeights("val_map")]
        if method.on_validation is not None:  # e.g. cmhash tune reporting to its pruner
            callbacks.append(ValidationListener("val_map", method.on_validation))
        if cfg["patience"]:
            callbacks.append(L.pytorch.callbacks.EarlyStopping("val_map", mode="max", patience=int(cfg["patience"]),
                                                               check_on_train_epoch_end=True))
    callbacks.append(JsonlLog(history, run_dir / "log.jsonl" if run_dir else None))
    if run_dir:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=0))
    if cfg["progress"]:
        callbacks.append(L.pytorch.callbacks.RichProgressBar(leave=False))

    trainer = L.Trainer(
        max_epochs=int(cfg["epochs"]), gradient_clip_val=float(cfg["grad_clip"]) or None,
        callbacks=callbacks, logger=False, enable_checkpointing=run_dir is not None,
        enable_progress_bar=bool(cfg["progress"]), enable_model_summary=False, deterministic=True,
        num_sanity_val_steps=0, default_root_dir=str(run_dir) if run_dir else None,
        **_trainer_kwargs(cfg),
    )
    ckpt = run_dir / "last.ckpt" if run_dir and cfg["resume"] and (run_dir / "last.ckpt").exists() else None
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt) if ckpt else None)
    method.net = module.net.cpu().eval()
    return history
