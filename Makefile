# Two commands set everything up: `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-docs install clean

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

# Regenerates every table in docs/benchmarks.md, docs/ablations.md and the method pages.
BENCH := $(BIN)/cmhash bench --jobs 2
bench-docs: $(STAMP)
	$(BENCH) --dataset wiki --methods baselines --bits 16 32 64 --seeds 1 --out runs/wiki-baselines \
	  --docs docs/benchmarks.md --docs-section wiki-baselines --docs-title "## Baselines on Wiki, timed (1 seed)"
	$(BENCH) --dataset wiki --methods all --bits 16 32 64 --seeds 3 --out runs/main-wiki \
	  --docs docs/benchmarks.md --docs-section main-wiki --docs-title "## All methods on Wiki (3 seeds)" --method-docs
	$(BENCH) --dataset synthetic --methods all --bits 16 32 64 --seeds 3 --out runs/main-synthetic \
	  --docs docs/benchmarks.md --docs-section main-synthetic --docs-title "## All methods on the synthetic default (3 seeds)" \
	  --method-docs
	for m in ddss dhsl sdeh cdhtk fjsph; do \
	  $(BENCH) --dataset synthetic --ablate $$m --bits 32 --seeds 1 --out runs/ablate-$$m \
	    --docs docs/ablations.md --docs-section ablation-$$m --docs-title "## $$m" --method-docs || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
