"""cmhash tune: validation-only scoring (the query split cannot change the result), outputs, resume, profiles."""

from __future__ import annotations

import json

import numpy as np
import yaml

from cmhash.bench.tune import TuneSpec, tune
from cmhash.cli import main
from cmhash.data import make_synthetic

TINY = dict(n=400, image_dim=24, text_dim=16, num_labels=5, n_query=60, n_train=200)
TINY_SPEC = "synthetic:" + ",".join(f"{k}={v}" for k, v in TINY.items())


def test_query_split_cannot_change_the_tuned_result(tmp_path):
    clean = make_synthetic(**TINY, seed=3)
    noisy = make_synthetic(**TINY, seed=3)
    q = noisy.splits["query"]
    rng = np.random.default_rng(99)
    noisy.image[q] = rng.standard_normal(noisy.image[q].shape).astype(np.float32)
    noisy.text[q] = rng.standard_normal(noisy.text[q].shape).astype(np.float32)
    noisy.labels[q] = rng.integers(0, 2, noisy.labels[q].shape).astype(np.uint8)
    assert not np.array_equal(clean.image[q], noisy.image[q])
    results = []
    for name, ds in (("clean", clean), ("noisy", noisy)):
        spec = TuneSpec("dcmh", bits=8, seed=0, max_epochs=2, overrides={"hidden": 16})
        results.append(tune(ds, spec, tmp_path / name, trials=2, progress=False))
    assert results[0]["best_params"] == results[1]["best_params"]
    assert results[0]["best_value"] == results[1]["best_value"]
    assert "hidden" not in results[0]["best_params"]  # fixed by the overrides, so not searched


def test_tune_cli_writes_outputs_resumes_and_installs_a_profile(tmp_path, monkeypatch):
    import cmhash.config

    monkeypatch.setattr(cmhash.config, "PROFILE_DIR", tmp_path / "profiles")
    out = tmp_path / "study"
    args = ["tune", "--method", "cca_itq", "--dataset", TINY_SPEC, "--bits", "8", "--out", str(out), "--no-progress",
            "--set", "anchors=0"]
    assert main([*args, "--trials", "3"]) == 0
    assert {p.name for p in out.iterdir()} >= {"trials.csv", "trials.json", "best.yaml", "history.png",
                                               "summary.json", "study.db"}
    assert main([*args, "--trials", "5", "--save-profile", "synthetic"]) == 0  # resumes: 2 more trials
    rows = json.loads((out / "trials.json").read_text())
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4]
    assert len({(r["params.reg"], r["params.eigen_power"]) for r in rows}) == 5  # no repeated proposals
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"cca_itq"} and best["cca_itq"]["anchors"] == 0
    assert (tmp_path / "profiles" / "synthetic" / "cca_itq.yaml").exists()
    model = tmp_path / "m.pt"
    assert main(["train", "--method", "cca_itq", "--dataset", TINY_SPEC, "--bits", "8", "--out", str(model),
                 "--profile", "tuned"]) == 0
    from cmhash.methods import HashMethod

    assert HashMethod.load(model).config["reg"] == best["cca_itq"]["reg"]
    bench = tmp_path / "bench"
    assert main(["bench", "--dataset", TINY_SPEC, "--methods", "cca_itq", "scm", "--bits", "8", "--out", str(bench),
                 "--profile", "tuned", "--set", "scm.anchors=0"]) == 0
    assert ("Profile: tuned (synthetic): cca_itq; default (no tuned synthetic profile): scm"
            in (bench / "results.md").read_text())


def test_deep_trials_report_every_epoch_to_the_pruner(tmp_path):
    spec = TuneSpec("dcmh", bits=8, seed=0, max_epochs=3, overrides={"hidden": 16})
    tune(make_synthetic(**TINY), spec, tmp_path, trials=1, progress=False)
    row = json.loads((tmp_path / "trials.json").read_text())[0]
    assert row["state"] == "COMPLETE" and 1 <= row["epochs"] <= 3 and row["value"] >= row["last_report"]
