#!/usr/bin/env bash
# The worked study: 2 first blocks x 2 core blocks x 2 final blocks x 3 seeds on the DREAM sample,
# scored on 1,500 held-out reads. Run from the repository root: bash docs/worked_study/run.sh
# Re-running resumes: jobs already ok in the sweep's ledger are skipped (so it can run in pieces).
set -euo pipefail
STUDY=${STUDY:-outputs/worked_study}  # the study folder (outputs/ is not tracked by git)
PY=${PY:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -f "$STUDY/train.txt" ] || "$PY" docs/worked_study/make_split.py ../shared/data/dream/train_sample.txt "$STUDY"
"$PY" train.py -m -cd docs/worked_study/conf \
  first=autosome_small,bhi_small core=autosome_small,bhi_small final=autosome,bhi seed=${SEEDS:-0,1,2} \
  data=dream data.path="$STUDY/train.txt" test_data="$STUDY/test" \
  data.scale.epochs=2 data.scale.batch_size=64 recipe.steps_per_epoch=40 \
  logger=none trainer.enable_progress_bar=false trainer.enable_model_summary=false \
  hydra.sweep.dir="$STUDY/sweep" hydra.callbacks.summarize.enabled=false
"$PY" -m src.sweep.summarize "$STUDY/sweep" --metric test/pearson_score > /dev/null
