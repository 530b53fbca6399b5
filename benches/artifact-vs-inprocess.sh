#!/usr/bin/env bash
# The quick example sampled from an ahead-of-time artifact
# (`crux sample`, loading the artifact's shared library) against the
# in-process sample (`quickstart`: trace, optimise, lower, compile, run),
# both as whole processes, alternating, REPS times; medians and their
# ratio, written to benches/results/artifact-vs-inprocess.json. The two
# print the same posterior summary (same chunk function, same seed).
#
#   taskset -c 0 benches/artifact-vs-inprocess.sh      # REPS=11 by default
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REPS=${REPS:-11}
RESULTS=${RESULTS:-$ROOT/benches/results/artifact-vs-inprocess.json}
cargo build --release -p crux-cli -p crux-samples --bin crux --bin quickstart >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
ART=$(mktemp -d)/quickstart.crux
trap 'rm -rf "$(dirname "$ART")"' EXIT
"$BIN/crux" compile quickstart -o "$ART" >&2
now() { date +%s.%N; }
a=() q=()
for ((i = 0; i < REPS; i++)); do
    t0=$(now); "$BIN/crux" sample "$ART" --quiet >/dev/null; t1=$(now)
    "$BIN/quickstart" --quiet >/dev/null; t2=$(now)
    a+=("$(awk -v x="$t0" -v y="$t1" 'BEGIN { print y - x }')")
    q+=("$(awk -v x="$t1" -v y="$t2" 'BEGIN { print y - x }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ma=$(median "${a[@]}") mq=$(median "${q[@]}")
ratio=$(awk -v a="$ma" -v q="$mq" 'BEGIN { printf "%.2f", q / a }')
printf 'quick example, whole process, median of %d: crux sample (artifact) %.1f ms, quickstart (in process) %.1f ms, ratio %sx\n' \
    "$REPS" "$(awk -v a="$ma" 'BEGIN { print a * 1000 }')" "$(awk -v q="$mq" 'BEGIN { print q * 1000 }')" "$ratio"
mkdir -p "$(dirname "$RESULTS")"
printf '{"benchmark": "quick example end to end, artifact vs in-process", "reps": %d, "artifact_seconds": %s, "in_process_seconds": %s, "ratio_in_process_over_artifact": %s, "loadavg": "%s"}\n' \
    "$REPS" "$ma" "$mq" "$ratio" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RESULTS"
