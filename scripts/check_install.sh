#!/usr/bin/env bash
# A non-editable install of this checkout's HEAD in a fresh virtual environment, used from an empty directory: the
# interface contract's ground-truth multirun (joblib), live searches (in-process, and launching one job per motif)
# and the dish sweeper plugin, checked by the rows they write. Exits non-zero on the first command that fails or
# writes too little.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/dish-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
python -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install -q --root-user-action=ignore)
"${pip[@]}" torch==2.13.0
mkdir "$work/source" && git -C "$repo" archive HEAD | tar -x -C "$work/source"  # a build leaves the checkout alone
"${pip[@]}" "$work/source"
export PATH="$work/venv/bin:$PATH" WANDB_MODE=offline
mkdir "$work/empty" && cd "$work/empty"

rows() { python -c "import csv, sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))" "$1"; }
expect() {  # expect <what> <wanted> <got>
    if [[ "$2" != "$3" ]]; then echo "check_install: $1: expected $2, got $3" >&2; exit 1; fi
    echo "check_install: $1: $3"
}
expect "dish imported from" "$work/venv" "$(python -c 'import dish, pathlib; print(pathlib.Path(dish.__file__).parents[4])')"

dish-ground-truth -m hydra/launcher=joblib motif.slope=0.5,2 store.path=F trainer.max_epochs=2
expect "rows of the ground-truth multirun" 2 "$(rows F)"

dish-search search.budget=2 store.path=F2 trainer.max_epochs=2
expect "rows of the live search (4 starting motifs, 2 budgeted)" 6 "$(rows F2)"

dish-search search.budget=2 search.start.random=1 ground_truth.launcher=basic store.path=F3 trainer.max_epochs=2 \
    logger=none
expect "rows of the live search launching one job per motif" 3 "$(rows F3)"
expect "finite scores in its search.json" 3 "$(python -c '
import glob, json
(path,) = sorted(glob.glob("outputs/search/runs/*/search.json"))[-1:]
print(sum(e["score"] is not None for e in json.load(open(path))["evaluations"]))')"

dish-ground-truth -m hydra/sweeper=dish hydra.sweeper.strategy=random \
    'hydra.sweeper.search=["search.budget=2","search.start.random=1"]' store.path=F4 trainer.max_epochs=2 logger=none
expect "rows of the dish sweeper over the ground-truth task (plugin found in the installed package)" 3 "$(rows F4)"
