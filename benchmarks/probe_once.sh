#!/bin/bash
# One transfer with cka + projection + head (one probe pass), timed; OLD=DIR (a checkout of 762863e,
# which probed three times) times that too. Needs the zoo (pip install -e ".[zoo]") and ../shared/data.
cd "$(dirname "$0")/.."
ARGS="transfer --teacher zoo:all-mpnet-base-v2 --student zoo:all-MiniLM-L6-v2 --module docs/results/widths/runs/teacher-a167cdab9428/module --layer-map cka --align projection --head --probe-data ../shared/data/wikineural/en/val.conllu.gz --probe-sentences 300 --force"
for round in 1; do
  /usr/bin/time -f "new %e s %M KB" .venv/bin/peftport $ARGS --out /tmp/bench-new 2>&1 | grep -v "^warning\|^note" | tail -4
  [ -n "$OLD" ] && PYTHONPATH="$OLD/src" /usr/bin/time -f "old %e s %M KB" .venv/bin/python -m peftport.cli.main $ARGS --out /tmp/bench-old 2>&1 | grep -v "^warning\|^note" | tail -4
done
