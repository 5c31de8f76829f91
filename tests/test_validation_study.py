"""benchmarks/validation_study.py: arms, the tuner's score, refused yardstick changes, the summary of old lines."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from cmhash.bench.tune import score_config, tuning_split
from cmhash.data.sources import open_dataset
from cmhash.errors import ConfigError

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "validation_study.py"
TINY = "synthetic:n=400,image_dim=24,text_dim=16,num_labels=5,n_query=60,n_train=200"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("validation_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def run_main(study, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["validation_study.py", *argv])
    study.main()


def test_arm_forms(study, tmp_path):
    assert study.Arm.parse("base") == study.Arm("base", None, [])
    assert study.Arm.parse("x:tuned,a.b=1,c=[1]") == study.Arm("x", "tuned", [("a.b", 1), ("c", [1])])
    profile = tmp_path / "best.yaml"
    profile.write_text("cca_itq:\n  reg: 0.5\n")
    arm = study.Arm.parse(f"f:{profile},cca_itq.reg=0.25")
    assert arm.overrides(["cca_itq"], "synthetic", [("n_iter", 3)]) == [("cca_itq.reg", 0.5), ("n_iter", 3),
                                                                        ("cca_itq.reg", 0.25)]
    for bad in (":a=1", "x:tuned,y"):
        with pytest.raises(ConfigError):
            study.Arm.parse(bad)


def test_arms_are_scored_as_tuning_trials_paired_by_seed(study, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.jsonl"
    run_main(study, monkeypatch, "--methods", "cca_itq", "--dataset", TINY, "--bits", "8", "--seeds", "0", "1",
             "--arm", "base", "--arm", "same:n_iter=50", "--arm", "ridge:reg=0.5", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["seed"], r["arm"]) for r in rows] == [(s, a) for s in (0, 1) for a in ("base", "same", "ridge")]
    score = {(r["seed"], r["arm"]): r["val_map"] for r in rows}
    train = tuning_split(open_dataset(TINY))
    assert score[0, "ridge"] == round(score_config("cca_itq", 8, 0, {"reg": 0.5}, train)[0], 5)
    assert score[0, "base"] == score[0, "same"] and score[1, "base"] == score[1, "same"]  # same carve per seed
    assert rows[2]["overrides"] == {"reg": 0.5} and rows[0]["protocol"] == "tune"
    text = capsys.readouterr().out
    assert "| same | 2 |" in text and "+0.0000 ± 0.0000, higher in 0/2" in text


def test_arms_that_change_the_validation_are_refused(study, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        run_main(study, monkeypatch, "--methods", "dcmh", "--dataset", TINY, "--arm", "a",
                 "--arm", "b:train.val_window=1", "--out", str(tmp_path / "x.jsonl"))
    assert "arms differ in train.val_window" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_summary_reads_the_former_scripts_lines(study, tmp_path, monkeypatch, capsys):
    old_study = {"method": "m", "dataset": "wiki", "bits": 32, "arm": "base", "overrides": {}, "epochs": 9}
    old_dev = {"tag": "before", "set": [], "method": "m", "bits": 16, "query": 0.1, "epochs": 30}
    lines = [{**old_study, "seed": s, "val_map": v} for s, v in ((0, 0.5), (1, 0.6), (2, 0.7))]
    lines += [{**old_study, "arm": "on", "seed": s, "val_map": v} for s, v in ((0, 0.6), (1, 0.7), (2, 0.81))]
    lines += [{**old_dev, "seed": s, "dev": v} for s, v in ((0, 0.3), (1, 0.4))]
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_main(study, monkeypatch, "--summary", "--out", str(path))
    text = capsys.readouterr().out
    assert "## m on wiki, 32 bits: validation split, rows of the former validation_study.py" in text
    assert "| base | 3 | 0.6000 ± 0.1000 | — | 9–9 |" in text
    # differences 0.10, 0.10, 0.11: t = 0.1033 / (0.0058 / sqrt 3) = 31.0 on 2 degrees of freedom, p = 0.001
    assert "| on | 3 | 0.7033 ± 0.1050 | +0.1033 ± 0.0058, higher in 3/3 (paired t-test p = 0.001) | 9–9 |" in text
    assert "## m on wiki, 16 bits: 20 % dev carve" in text and "| before | 2 | 0.3500 ± 0.0707 |" in text
