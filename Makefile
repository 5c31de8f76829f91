# Two commands set everything up: `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-docs bench-presets tune-baselines install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cmhash demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_search.py

# Regenerates every table in docs/benchmarks.md, docs/ablations.md and the method pages, with the
# tuned profiles (docs/tuning.md). Synthetic tables run on data seeds 1-3, never on the tuning seed 0.
BENCH := $(BIN)/cmhash bench --jobs 2 --profile tuned
HELD_OUT := --data-seeds 1 2 3 --seeds 1
# Ablations: a defining part that a tuned profile switched off is forced back on (--set), so the first row
# has it and its "w/o" row measures it; every ablation block names its command. SDEH runs every part;
# the other four first the parts their papers name, then the generic terms in a second table each
# (--parts; the generic terms were run after the named parts, when CPU allowed).
ablate_wiki = $(BENCH) --dataset wiki --bits 32 --seeds 3 --ablate $(1) --out runs/ablate-wiki-$(1) \
  --docs docs/ablations.md --docs-section ablation-wiki-$(1) --docs-title "\#\# $(1) on Wiki" --method-docs
ablate_generic = $(BENCH) --dataset wiki --bits 32 --seeds 3 --ablate $(1) --out runs/ablate-wiki-generic-$(1) \
  --docs docs/ablations.md --docs-section ablation-wiki-generic-$(1) --docs-title "\#\# $(1) on Wiki: the generic terms" \
  --method-docs
# A method's named parts on the synthetic preset built to exercise them (synthetic tuned profile, data seeds 1-3).
ablate_preset = $(BENCH) --dataset synthetic:preset=$(1) --bits 32 $(HELD_OUT) --ablate $(2) --out runs/ablate-$(1)-$(2) \
  --docs docs/ablations.md --docs-section ablation-$(1)-$(2) --docs-title "\#\# $(2) on the $(1) preset" --method-docs
bench-docs: $(STAMP)
	$(BENCH) --dataset wiki --methods baselines --bits 16 32 64 --seeds 1 --out runs/wiki-baselines \
	  --docs docs/benchmarks.md --docs-section wiki-baselines --docs-title "## Baselines on Wiki, timed (1 seed)"
	$(BENCH) --dataset wiki --methods all --bits 16 32 64 --seeds 3 --out runs/main-wiki \
	  --docs docs/benchmarks.md --docs-section main-wiki --docs-title "## All methods on Wiki (3 seeds)" --method-docs
	$(BENCH) --dataset synthetic:preset=mirflickr --methods all --bits 32 $(HELD_OUT) --out runs/suite-mirflickr \
	  --docs docs/benchmarks.md --docs-section main-synthetic \
	  --docs-title "## The synthetic suite at 32 bits (held-out data seeds 1-3)" --method-docs
	$(BENCH) --dataset synthetic:preset=noisy synthetic:preset=private --methods founding dcmh alech dlfh cca_itq cmfh \
	  --bits 32 $(HELD_OUT) --out runs/suite-np --docs docs/benchmarks.md --docs-section suite-noisy-private \
	  --docs-title "## The synthetic suite at 32 bits: noisy and private presets (held-out data seeds 1-3)" --method-docs
	$(call ablate_wiki,sdeh) --set sdeh.components.semantic_decomposition=true
	$(call ablate_wiki,ddss) --set ddss.components.private_elimination=true \
	  --parts graph_branch attention_branch private_elimination private_separation inter_contrastive
	$(call ablate_wiki,cdhtk) --parts knowledge_network knowledge_transfer fused_code differential
	$(call ablate_wiki,fjsph) --parts refinement sample_similarity cluster_similarity contrastive
	$(call ablate_wiki,dhsl) --parts relation_inter relation_intra feature_selector
	$(call ablate_generic,ddss) --set ddss.components.private_elimination=true \
	  --parts intra_contrastive instance_hash semantic_hash quantization
	$(call ablate_generic,cdhtk) --parts label_prediction triplet_quantization
	$(call ablate_generic,dhsl) --parts triplet quantization
	$(call ablate_generic,fjsph) --parts quantization
	$(call ablate_preset,noisy,cdhtk) --set cdhtk.components.knowledge_network=true --set cdhtk.components.fused_code=true \
	  --parts knowledge_network fused_code knowledge_transfer differential
	$(call ablate_preset,noisy,fjsph) --parts refinement sample_similarity cluster_similarity contrastive
	$(call ablate_preset,noisy,dhsl) --parts relation_inter relation_intra feature_selector
	$(call ablate_preset,private,ddss) --set ddss.components.private_elimination=true \
	  --parts private_elimination private_separation graph_branch attention_branch
	$(call ablate_preset,noisy,sdeh) --set sdeh.components.semantic_decomposition=true \
	  --set sdeh.components.label_teacher=true --parts semantic_decomposition label_teacher multilevel_similarity slot_alignment
	for preset in coco nuswide; do $(BENCH) --dataset synthetic:preset=$$preset --methods founding dcmh alech --bits 32 \
	  $(HELD_OUT) --out runs/suite-$$preset --docs docs/benchmarks.md --docs-section suite-$$preset \
	  --docs-title "## The synthetic suite at 32 bits: the $$preset preset (held-out data seeds 1-3)" --method-docs; done

# CCA-ITQ and DCMH-style on the five synthetic presets (docs/benchmarks-presets.md).
bench-presets: $(STAMP)
	$(BIN)/cmhash bench --dataset synthetic:preset=mirflickr synthetic:preset=nuswide synthetic:preset=coco \
	  synthetic:preset=noisy synthetic:preset=private --data-seeds 1 --methods cca_itq dcmh --bits 32 --seeds 1 \
	  --set dcmh.train.epochs=20 --out runs/presets --docs docs/benchmarks-presets.md --docs-section presets \
	  --docs-title "## CCA-ITQ and DCMH-style on the five presets (generated)"

# Tune the seven baselines under the equal budget and install their profiles (docs/tuning.md; about
# an hour); benchmarks/tune_baselines.sh ddss dhsl sdeh cdhtk fjsph tunes the founding methods.
tune-baselines: $(STAMP)
	nice -n 10 benchmarks/tune_baselines.sh

clean:
	rm -rf $(VENV) build dist src/*.egg-info
