"""The training engine: determinism, validation carving, early stopping, logs, resume, errors, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmhash.data import make_synthetic
from cmhash.methods import get_method
from cmhash.metrics import mean_average_precision
from cmhash.train.engine import carve_validation, validation_database

QUIET = {"progress": False}


@pytest.fixture(scope="module")
def small():
    return make_synthetic(n=700, image_dim=32, text_dim=24, num_labels=6, n_query=100, n_train=400, seed=3)


def fit(ds, seed=0, **train):
    return get_method("dcmh")(bits=16, seed=seed, hidden=64, train={**QUIET, "epochs": 3, **train}).fit(ds)


def test_same_seed_same_codes_on_cpu(small):
    a, b = fit(small, seed=7), fit(small, seed=7)
    q = small.split("query")
    assert np.array_equal(a.encode_image(q.image), b.encode_image(q.image))
    assert np.array_equal(a.encode_text(q.text), b.encode_text(q.text))
    c = fit(small, seed=8)
    assert not np.array_equal(a.encode_image(q.image), c.encode_image(q.image))


def test_validation_is_carved_from_training_rows_only(small):
    train = small.split("train")
    fit_set, val = carve_validation(train, 0.2, seed=0)
    assert len(val) == 80 and len(fit_set) == 320
    assert not set(fit_set.ids) & set(val.ids)
    assert set(fit_set.ids) | set(val.ids) == set(train.ids)
    assert not set(val.ids) & set(small.split("query").ids)
    with pytest.raises(ValueError, match="too few"):
        carve_validation(train.subset(np.arange(3)), 0.5, seed=0)


def test_early_stopping_keeps_the_best_epoch(small):
    # lr = 0: the score never improves after the first validation, so patience 2 stops at epoch 3.
    model = fit(small, epochs=20, lr=0.0, warmup_epochs=0, patience=2, val_fraction=0.2)
    assert len(model.history) == 3
    assert all("val_map" in h for h in model.history)


def both_ways(model, q, db) -> float:
    return (mean_average_precision(model.encode_image(q.image), model.encode_text(db.text), q.labels, db.labels)
            + mean_average_precision(model.encode_text(q.text), model.encode_image(db.image), q.labels, db.labels)) / 2


def test_best_weights_are_those_of_the_best_smoothed_score(small):
    model = fit(small, epochs=6, patience=0, val_fraction=0.2, val_window=2)
    raw = [h["val_map"] for h in model.history]
    smooth = [h["val_map_smooth"] for h in model.history]
    assert smooth == pytest.approx([np.mean(raw[max(0, i - 1):i + 1]) for i in range(len(raw))])
    fit_set, val = carve_validation(small.split("train"), 0.2, seed=0)
    # validation queries are ranked against the fitted training rows, like queries against the database
    assert both_ways(model, val, fit_set) == pytest.approx(raw[int(np.argmax(smooth))], abs=1e-6)


def test_validation_against_itself_when_no_database(small):
    model = fit(small, epochs=2, patience=0, val_fraction=0.2, val_database=0, val_window=1)
    _, val = carve_validation(small.split("train"), 0.2, seed=0)
    scores = [h["val_map"] for h in model.history]
    assert [h["val_map_smooth"] for h in model.history] == scores
    assert both_ways(model, val, val) == pytest.approx(max(scores), abs=1e-6)


def test_validation_database_is_a_bounded_seeded_sample_of_the_fitted_rows(small):
    fit_set, _ = carve_validation(small.split("train"), 0.2, seed=0)
    assert validation_database(fit_set, 0, seed=0) is None
    assert validation_database(fit_set, 10_000, seed=0) is fit_set
    sample = validation_database(fit_set, 50, seed=0)
    assert len(sample) == 50 and set(sample.ids) <= set(fit_set.ids)
    assert sample.ids.tolist() == validation_database(fit_set, 50, seed=0).ids.tolist()


def test_jsonl_log_and_resume(small, tmp_path):
    run_dir = tmp_path / "run"
    fit(small, epochs=2, run_dir=str(run_dir), val_fraction=0)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    assert {"loss", "loss/likelihood", "loss/quantization", "loss/balance", "lr"} <= set(records[0])
    assert (run_dir / "last.ckpt").exists()
    resumed = fit(small, epochs=4, run_dir=str(run_dir), resume=True, val_fraction=0)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert [h["epoch"] for h in resumed.history] == [2, 3]


def test_non_finite_loss_names_the_term(small, monkeypatch):
    method = get_method("dcmh")
    original = method.loss_terms

    def broken(self, net, batch):
        terms = original(self, net, batch)
        terms["balance"] = terms["balance"] * float("nan")
        return terms

    monkeypatch.setattr(method, "loss_terms", broken)
    with pytest.raises(FloatingPointError, match="'balance'"):
        fit(small, epochs=1, val_fraction=0)


def test_zero_weight_term_is_not_optimised(small):
    model = get_method("dcmh")(bits=16, hidden=64, losses={"balance": 0.0},
                               train={**QUIET, "epochs": 1, "val_fraction": 0})
    model.fit(small)
    assert "loss/balance" not in model.history[0]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    """torchrun with 2 gloo processes: same method code, mAP within 0.02 of one process."""
    spec = "synthetic:n=3000,image_dim=64,text_dim=64,num_labels=8,n_query=300,n_train=1600"
    common = ["--method", "dcmh", "--bits", "32", "--dataset", spec, "--set", "train.progress=false",
              "--set", "train.epochs=8", "--set", "train.val_fraction=0", "--set", "hidden=256"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, ddp = tmp_path / "single.pt", tmp_path / "ddp.pt"
    subprocess.run([sys.executable, "-m", "cmhash.cli", "train", *common, "--out", str(single)], check=True, env=env)
    # Each DDP rank sees half of every epoch with the same per-process batch: halve the batch so
    # the effective batch (and the number of optimiser steps' worth of data) matches.
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "cmhash.cli", "train", *common, "--set", "train.batch_size=64", "--out", str(ddp)],
                   check=True, env=env)
    from cmhash.data.sources import open_dataset
    from cmhash.methods import HashMethod

    ds = open_dataset(spec)
    q, db = ds.split("query"), ds.split("database")

    def score(path: Path) -> float:
        m = HashMethod.load(path)
        return (mean_average_precision(m.encode_image(q.image), m.encode_text(db.text), q.labels, db.labels)
                + mean_average_precision(m.encode_text(q.text), m.encode_image(db.image), q.labels, db.labels)) / 2

    s1, s2 = score(single), score(ddp)
    assert s1 > 0.5
    assert abs(s1 - s2) <= 0.02, (s1, s2)
