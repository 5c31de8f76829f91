"""cmhash bench / train / eval: the grid, its outputs, generated doc blocks, overrides and ablations."""

from __future__ import annotations

import csv
import json

import pytest

from cmhash.bench.report import update_doc_section
from cmhash.bench.runner import plan_variants
from cmhash.cli import main

TINY = "synthetic:n=400,image_dim=24,text_dim=16,num_labels=5,n_query=60,n_train=200"
FAST = ["--set", "train.epochs=1", "--set", "train.val_fraction=0", "--set", "dcmh.hidden=32"]


def test_bench_grid_writes_tables_plots_and_docs(tmp_path, capsys):
    out, doc = tmp_path / "out", tmp_path / "doc.md"
    args = ["bench", "--dataset", TINY, "--methods", "cca_itq", "dcmh", "--bits", "8", "16", "--seeds", "2",
            "--out", str(out), "--docs", str(doc), "--docs-section", "tiny", *FAST]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    before = {(r["variant"], r["bits"], r["seed"]): r["i2t"] for r in rows}
    assert len(rows) == 2 * 2 * 2
    assert {(r["variant"], r["bits"], r["seed"]) for r in rows} == {
        (m, b, s) for m in ("cca_itq", "dcmh") for b in ("8", "16") for s in ("0", "1")}
    assert all(0 < float(r["i2t"]) <= 1 and 0 < float(r["t2i"]) <= 1 for r in rows)
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert {s["seeds"] for s in summary} == {2}
    md = (out / "results.md").read_text()
    assert "mAP over the whole Hamming ranking" in md and "| cca_itq |" in md and "I→T 16" in md
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        [f"synthetic_{b}bits_{d}_{k}.png" for b in (8, 16) for d in ("i2t", "t2i") for k in ("pr", "pk")]
        + ["synthetic_map_vs_bits.png"])
    assert "vs cca_itq (8 bits)" in md and "Profile: default" in md  # the paired test and the profile
    text = doc.read_text()
    assert text.count("<!-- cmhash:generated:tiny -->") == 1 and "| dcmh |" in text
    # The page embeds the figures, copied beside it.
    assert "![synthetic map vs bits](img/tiny/synthetic_map_vs_bits.png)" in text
    assert (tmp_path / "img" / "tiny" / "synthetic_16bits_t2i_pr.png").exists()

    # A stopped bench: the report is rebuilt from runs.jsonl and says it is partial.
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:5]) + "\n")
    assert main([*args[:-len(FAST)], *FAST, "--report-only"]) == 0
    partial_md = (out / "results.md").read_text()
    assert "Partial: 5 of 8 runs" in partial_md and "better in" in partial_md  # per-query AP reloaded
    assert doc.read_text().count("<!-- cmhash:generated:tiny -->") == 1

    # --update retrains one method and keeps the other's runs: same numbers for the kept rows, and the
    # curves are redrawn from the saved first-seed metrics (every row has them again).
    (out / "runs.jsonl").write_text("\n".join(lines) + "\n")
    (out / "plots" / "synthetic_8bits_i2t_pr.png").unlink()
    upd = [*args[:-len(FAST)], *FAST, "--update", "--set", "dcmh.train.lr=0.003"]
    upd[upd.index("cca_itq")] = "dcmh"  # --methods dcmh dcmh -> only dcmh retrained
    assert main(upd) == 0
    after = {(r["variant"], r["bits"], r["seed"]): r["i2t"] for r in csv.DictReader(open(out / "results.csv"))}
    assert after.keys() == before.keys()
    assert all(after[k] == v for k, v in before.items() if k[0] == "cca_itq")
    assert any(after[k] != v for k, v in before.items() if k[0] == "dcmh")  # the new lr changed dcmh
    assert [r["variant"] for r in csv.DictReader(open(out / "results.csv"))][:4] == ["cca_itq"] * 4  # plan order
    assert (out / "plots" / "synthetic_8bits_i2t_pr.png").exists()


def test_parallel_jobs_give_the_same_numbers_in_plan_order(tmp_path):
    rows = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        assert main(["bench", "--dataset", TINY, "--methods", "dcmh", "cca_itq", "--bits", "8", "16",
                     "--out", str(out), "--jobs", str(jobs), *FAST]) == 0
        rows[jobs] = [(r["variant"], r["bits"], r["seed"], r["i2t"], r["t2i"])
                      for r in csv.DictReader(open(out / "results.csv"))]
    assert rows[1] == rows[2]
    assert [r[:2] for r in rows[2]] == [("dcmh", "8"), ("dcmh", "16"), ("cca_itq", "8"), ("cca_itq", "16")]
    assert "2 run(s) at a time, 1 thread(s) each" in (tmp_path / "jobs2" / "results.md").read_text()


def test_topk_names_the_metric(tmp_path):
    assert main(["bench", "--dataset", TINY, "--methods", "cca_itq", "--bits", "8", "--out", str(tmp_path),
                 "--topk", "50"]) == 0
    assert "mAP@50" in (tmp_path / "results.md").read_text()


def test_update_doc_section_replaces_only_its_block(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("# Title\n\nkept text\n")
    update_doc_section(doc, "a", "first", title="## A")
    update_doc_section(doc, "b", "other", title="## B")
    update_doc_section(doc, "a", "second", title="## A")
    text = doc.read_text()
    assert "kept text" in text and "second" in text and "first" not in text and "other" in text
    assert text.count("## A") == 1


def test_overrides_are_routed_and_typos_caught():
    variants = plan_variants(["cca_itq", "dcmh", "ddss"], [("train.epochs", 3), ("dcmh.hidden", 16)])
    per = {v.method: v.overrides for v in variants}
    assert per["dcmh"] == {"train": {"epochs": 3}, "hidden": 16}
    assert per["ddss"] == {"train": {"epochs": 3}} and per["cca_itq"] == {}
    with pytest.raises(ValueError, match="no_such"):
        plan_variants(["dcmh"], [("train.no_such", 1)])


def test_ablation_variants_remove_one_part_each():
    variants = plan_variants([], [], ablate="dcmh")
    assert [v.label for v in variants] == ["dcmh", "dcmh w/o quantization", "dcmh w/o balance"]
    assert variants[1].overrides == {"losses": {"quantization": 0.0}}
    with pytest.raises(ValueError, match="no ablatable"):
        plan_variants([], [], ablate="cca_itq")
    only = plan_variants([], [], ablate="dcmh", parts=["balance"])
    assert [v.label for v in only] == ["dcmh", "dcmh w/o balance"]
    with pytest.raises(ValueError, match="no ablatable part 'balanse'.*known: quantization, balance"):
        plan_variants([], [], ablate="dcmh", parts=["balanse"])


def test_train_then_eval_from_the_cli(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["train", "--method", "dcmh", "--dataset", TINY, "--bits", "16", "--out", str(model),
                 "--run-dir", str(tmp_path / "run"), *FAST[:4], "--set", "hidden=32", "--set", "train.progress=false"]) == 0
    assert (tmp_path / "run" / "log.jsonl").exists()
    capsys.readouterr()
    assert main(["eval", "--model", str(model), "--dataset", TINY, "--json", "--ks", "10", "50"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"i2t", "t2i"} and 0 < scores["i2t"]["mAP"] <= 1 and "NDCG@10" in scores["t2i"]
    assert main(["eval", "--model", str(tmp_path / "missing.pt"), "--dataset", TINY]) == 2
