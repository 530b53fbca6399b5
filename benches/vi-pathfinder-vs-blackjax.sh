#!/usr/bin/env bash
# Mean-field VI on the BPINN and pathfinder on gauss100: crux
# (benches/src/bin/vi-bench.rs) against blackjax's meanfield_vi and
# pathfinder (benches/jax/vi_pathfinder.py), float64, in one run, ratios
# printed and written to benches/results/vi-pathfinder-vs-blackjax.json.
# Run it pinned to one core, with nothing else running:
#
#   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
#       taskset -c 0 benches/vi-pathfinder-vs-blackjax.sh
#
# Environment: PYTHON (.venv/bin/python), RESULTS, CARGO_TARGET_DIR (target).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
RESULTS=${RESULTS:-$ROOT/benches/results/vi-pathfinder-vs-blackjax.json}
die() {
    echo "vi-pathfinder-vs-blackjax: $*" >&2
    exit 1
}
"$PYTHON" -c 'import jax, blackjax, optax' 2>/dev/null ||
    die "jax, blackjax or optax missing from $PYTHON; install with:
    cd $ROOT && python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt"
echo "building vi-bench (release, not timed) ..." >&2
cargo build --release -p crux-benches --bin vi-bench >&2 || die "cargo build failed"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/vi-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" --json "$WORK/crux.json" || die "vi-bench failed"
(cd benches/jax && "$PYTHON" vi_pathfinder.py --json "$WORK/bj.json") || die "vi_pathfinder.py failed"
mkdir -p "$(dirname "$RESULTS")"
"$PYTHON" - "$WORK/crux.json" "$WORK/bj.json" "$RESULTS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
c, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cv, bv = c["vi_bpinn"], b["vi_bpinn"]
cp, bp = c["pathfinder_gauss100"], b["pathfinder_gauss100"]
rows = {
    "vi_bpinn_end_to_end_seconds": (cv["end_to_end_seconds"], bv["end_to_end_seconds"], bv["end_to_end_seconds"] / cv["end_to_end_seconds"]),
    "vi_bpinn_steps_per_second_steady": (cv["steps_per_second_steady"], bv["steps_per_second_steady"], cv["steps_per_second_steady"] / bv["steps_per_second_steady"]),
    "pathfinder_gauss100_end_to_end_seconds": (cp["seconds"], bp["end_to_end_seconds"], bp["end_to_end_seconds"] / cp["seconds"]),
    "pathfinder_gauss100_vs_blackjax_steady_seconds": (cp["seconds"], bp["steady_seconds"], bp["steady_seconds"] / cp["seconds"]),
}
print(f"{'':48s}{'crux':>12s}{'blackjax':>12s}{'ratio (crux better > 1)':>26s}")
for k, (x, y, r) in rows.items():
    print(f"{k:48s}{x:12.4g}{y:12.4g}{r:20.2f}x")
out = {"benchmark": "meanfield VI on the BPINN, pathfinder on gauss100, crux vs blackjax (median of 5)",
       "rows": {k: {"crux": x, "blackjax": y, "ratio_crux_better": r} for k, (x, y, r) in rows.items()},
       "versions": {"jax": b["jax"], "blackjax": b["blackjax"]}, "loadavg": sys.argv[4],
       "note": "pathfinder: crux's figure includes compiling its log-density; blackjax steady excludes jit"}
json.dump(out, open(sys.argv[3], "w"), indent=2)
print(f"written: {sys.argv[3]}")
PY
