#!/usr/bin/env bash
# Tune methods at 32 bits under the equal budget of docs/tuning.md and install the tuned
# profiles; the study summaries are copied to benchmarks/tuning/<family>/<method>-32bits/.
# Usage: nice -n 10 benchmarks/tune_baselines.sh [method ...]   (default: the seven baselines)
#        FAMILIES="wiki" benchmarks/tune_baselines.sh ddss dhsl sdeh cdhtk fjsph
set -euo pipefail
cd "$(dirname "$0")/.."
CMHASH=${CMHASH:-.venv/bin/cmhash}
METHODS=${*:-"dcmh clip_contrastive cca_itq cmfh scm dlfh alech"}
FAMILIES=${FAMILIES:-"wiki synthetic"}
# Equal budget (docs/tuning.md): deep methods WIKI_TRIALS / SYN_TRIALS trials with an epoch cap of
# MAX_EPOCHS, shallow methods SHALLOW_TRIALS trials (no epochs).
WIKI_TRIALS=${WIKI_TRIALS:-20} SYN_TRIALS=${SYN_TRIALS:-12} SHALLOW_TRIALS=${SHALLOW_TRIALS:-20} MAX_EPOCHS=${MAX_EPOCHS:-15}
for family in $FAMILIES; do
  for m in $METHODS; do
    case $m in dcmh|clip_contrastive|ddss|dhsl|sdeh|cdhtk|fjsph) trials=$([ $family = wiki ] && echo $WIKI_TRIALS || echo $SYN_TRIALS);;
                *) trials=$SHALLOW_TRIALS;; esac
    out=runs/tune/$family/$m-32bits
    $CMHASH tune --method $m --dataset $family --data-seed 0 --bits 32 --trials $trials --max-epochs $MAX_EPOCHS \
      --jobs 1 --out $out --save-profile $family --no-progress
    keep=benchmarks/tuning/$family/$m-32bits
    mkdir -p $keep && cp $out/{summary.json,trials.csv,best.yaml,history.png} $keep/
  done
done
