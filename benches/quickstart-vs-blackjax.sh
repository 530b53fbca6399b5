#!/usr/bin/env bash
# The spec's quick example end to end: crux's `quickstart` against the same
# model done with blackjax (benches/jax/quickstart_blackjax.py), 500 warmup
# steps (window adaptation) + 1000 NUTS draws, float64, on the same data
# (crux writes its observations to an npz that the blackjax script reads).
#
#   benches/quickstart-vs-blackjax.sh            # from anywhere in the repo
#   REPS=5 CHAINS=4 benches/quickstart-vs-blackjax.sh
#
# Environment: REPS (3), CHAINS (1), SEED (42), LIKELIHOOD_SCALE (1),
# PYTHON (.venv/bin/python), RESULTS (benches/results/quickstart-vs-blackjax.json),
# CARGO_TARGET_DIR (target). The crux run writes /tmp/crux_qs.{json,npz}.
#
# End to end is process start -> summary printed, timed with `date +%s.%N`
# around the process. crux: the wall time of the process. blackjax: the script
# runs a second (steady-state) sampling run and its ESS after printing the
# summary, so its end to end is the summary's time stamp minus the launch time
# stamp (QS_BENCH_LAUNCH_EPOCH, taken just before the launch); the process's
# wall time is recorded too. The runs alternate crux/blackjax REPS times and
# the table shows medians. Prints a table and writes it as JSON to
# benches/results/quickstart-vs-blackjax.json.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPS=${REPS:-3}
CHAINS=${CHAINS:-1}
SEED=${SEED:-42}
LIKELIHOOD_SCALE=${LIKELIHOOD_SCALE:-1}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BJ_SCRIPT=$ROOT/benches/jax/quickstart_blackjax.py
CRUX_JSON=/tmp/crux_qs.json
CRUX_NPZ=/tmp/crux_qs.npz
RESULTS=${RESULTS:-$ROOT/benches/results/quickstart-vs-blackjax.json}
INSTALL_CMD='python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt'

die() {
    echo "quickstart-vs-blackjax: $*" >&2
    exit 1
}

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
[[ $CHAINS =~ ^[1-9][0-9]*$ ]] || die "CHAINS must be a positive integer, got '$CHAINS'"

# --- the blackjax side must be installed ------------------------------------
if [[ ! -x $PYTHON ]]; then
    die "no Python venv at $PYTHON (or set PYTHON=...). Install the baseline with:
    cd $ROOT && $INSTALL_CMD"
fi
if ! "$PYTHON" -c 'import jax, blackjax' 2>/dev/null; then
    die "jax or blackjax is missing from $PYTHON. Install with:
    cd $ROOT && $INSTALL_CMD"
fi
[[ -f $BJ_SCRIPT ]] || die "missing $BJ_SCRIPT"

# --- build crux's sample once (not timed) -----------------------------------
echo "building crux-samples/quickstart (release, not timed) ..." >&2
cargo build --release -p crux-samples --bin quickstart >&2 ||
    die "cargo build --release -p crux-samples --bin quickstart failed"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CRUX_BIN=$TARGET_DIR/release/quickstart
[[ -x $CRUX_BIN ]] || die "built, but no binary at $CRUX_BIN"

HELP=$("$CRUX_BIN" --help 2>&1) || die "'$CRUX_BIN --help' failed:
$HELP"
for flag in --json --npz; do
    grep -q -- "$flag" <<<"$HELP" ||
        die "crux's quickstart does not support $flag yet (needed: --json PATH --npz PATH [--chains K] [--seed S]); its --help says:
$HELP"
done
CRUX_ARGS=(--json "$CRUX_JSON" --npz "$CRUX_NPZ" --seed "$SEED" --likelihood-scale "$LIKELIHOOD_SCALE")
if grep -q -- --chains <<<"$HELP"; then
    CRUX_ARGS+=(--chains "$CHAINS")
elif [[ $CHAINS != 1 ]]; then
    die "crux's quickstart has no --chains flag yet; run with CHAINS=1"
else
    echo "warning: crux's quickstart has no --chains flag; assuming it runs 1 chain" >&2
fi
BJ_ARGS=(--data "$CRUX_NPZ" --chains "$CHAINS" --seed "$SEED" --likelihood-scale "$LIKELIHOOD_SCALE")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared; timings are noisy)" >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

for ((i = 1; i <= REPS; i++)); do
    # crux first: it writes the observations the blackjax run reads.
    rm -f "$CRUX_JSON" "$CRUX_NPZ"
    t0=$(now)
    if ! "$CRUX_BIN" "${CRUX_ARGS[@]}" >"$WORK/crux_$i.log" 2>&1; then
        cat "$WORK/crux_$i.log" >&2
        die "crux run $i failed: $CRUX_BIN ${CRUX_ARGS[*]}"
    fi
    t1=$(now)
    [[ -s $CRUX_JSON ]] || die "crux run $i wrote no $CRUX_JSON"
    [[ -s $CRUX_NPZ ]] || die "crux run $i wrote no $CRUX_NPZ"
    cp "$CRUX_JSON" "$WORK/crux_$i.json"
    crux_wall=$(elapsed "$t0" "$t1")
    # Steady state (not timed end to end): the optimised code tier from the
    # first sweep, like blackjax's second sampling run after compilation.
    "$CRUX_BIN" --quiet --tiering optimised --chains "$CHAINS" --seed "$SEED" \
        --likelihood-scale "$LIKELIHOOD_SCALE" --json "$WORK/crux_steady_$i.json" >/dev/null 2>&1 ||
        die "crux steady-state run $i failed"

    export QS_BENCH_LAUNCH_EPOCH
    QS_BENCH_LAUNCH_EPOCH=$(now)
    if ! "$PYTHON" "$BJ_SCRIPT" "${BJ_ARGS[@]}" --json "$WORK/bj_$i.json" >"$WORK/bj_$i.log" 2>&1; then
        cat "$WORK/bj_$i.log" >&2
        die "blackjax run $i failed: $PYTHON $BJ_SCRIPT ${BJ_ARGS[*]}"
    fi
    t2=$(now)
    bj_wall=$(elapsed "$QS_BENCH_LAUNCH_EPOCH" "$t2")
    unset QS_BENCH_LAUNCH_EPOCH
    echo "$i $crux_wall $bj_wall" >>"$WORK/walls.txt"
    echo "run $i/$REPS: crux ${crux_wall} s, blackjax ${bj_wall} s (process wall times)" >&2
done

echo "--- crux output (run $REPS) ---" >&2
cat "$WORK/crux_$REPS.log" >&2
echo "--- blackjax output (run $REPS) ---" >&2
cat "$WORK/bj_$REPS.log" >&2
echo >&2

mkdir -p "$(dirname "$RESULTS")"
"$PYTHON" - "$WORK" "$REPS" "$RESULTS" "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, math, os, statistics, sys

work, reps, results, load_before, load_after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
walls = {}
for line in open(os.path.join(work, "walls.txt")):
    i, c, b = line.split()
    walls[int(i)] = (float(c), float(b))
crux = [json.load(open(os.path.join(work, f"crux_{i}.json"))) for i in range(1, reps + 1)]
bj = [json.load(open(os.path.join(work, f"bj_{i}.json"))) for i in range(1, reps + 1)]


def need(d, *keys, who="crux"):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            sys.exit(f"quickstart-vs-blackjax: the {who} JSON has no field {'.'.join(keys)}")
        d = d[k]
    return d


crux_e2e = [walls[i][0] for i in range(1, reps + 1)]
# blackjax: launch -> summary (its steady run and ESS come after the summary).
bj_e2e = [b.get("launch_to_summary_seconds", walls[i][1]) for i, b in zip(range(1, reps + 1), bj)]
bj_wall = [walls[i][1] for i in range(1, reps + 1)]
crux_steady = [json.load(open(os.path.join(work, f"crux_steady_{i}.json"))) for i in range(1, reps + 1)]
crux_gps = []
for c in crux_steady:
    ge, s = float(need(c, "grad_evals")), float(need(c, "sampling_seconds"))
    crux_gps.append(ge / s if s > 0 else float("nan"))
bj_gps = [float(b["grad_evals_per_second_steady"]) for b in bj]
med = statistics.median

row = {
    "end_to_end_seconds": {"crux": med(crux_e2e), "blackjax": med(bj_e2e)},
    "grad_evals_per_second_steady": {"crux": med(crux_gps), "blackjax": med(bj_gps)},
}
row["end_to_end_seconds"]["ratio_blackjax_over_crux"] = row["end_to_end_seconds"]["blackjax"] / row["end_to_end_seconds"]["crux"]
row["grad_evals_per_second_steady"]["ratio_crux_over_blackjax"] = (
    row["grad_evals_per_second_steady"]["crux"] / row["grad_evals_per_second_steady"]["blackjax"])

c_last, b_last = crux[-1], bj[-1]
post = {}
for name in ["a", "b"]:
    cp = need(c_last, "params", name)
    bp = b_last[name]
    cm, cs = float(need(cp, "mean")), float(need(cp, "sd"))
    bm, bs = bp["mean"], bp["sd"]
    c_ess = cp.get("ess_bulk")
    b_ess = bp.get("ess")
    entry = {
        "crux": {k: cp.get(k) for k in ["mean", "sd", "q05", "q95", "rhat", "ess_bulk", "ess_tail"]},
        "blackjax": {k: bp.get(k) for k in ["mean", "sd", "q05", "q95", "ess", "rhat"] if k in bp},
        "diff_in_blackjax_sd": (cm - bm) / bs,
    }
    if c_ess and b_ess:
        mcse = math.sqrt(cs * cs / float(c_ess) + bs * bs / float(b_ess))
        entry["diff_in_mcse"] = (cm - bm) / mcse
    post[name] = entry

out = {
    "benchmark": "quick example end to end, crux vs blackjax",
    "reps": reps,
    "statistic": "median",
    "chains": bj[-1]["chains"],
    "warmup": bj[-1]["warmup"],
    "draws": bj[-1]["draws"],
    "likelihood_scale": bj[-1]["likelihood_scale"],
    **row,
    "posterior": post,
    "per_run": {
        "crux_end_to_end_seconds": crux_e2e,
        "blackjax_end_to_end_seconds": bj_e2e,
        "blackjax_process_wall_seconds": bj_wall,
        "crux_grad_evals_per_second": crux_gps,
        "blackjax_grad_evals_per_second_steady": bj_gps,
        "crux_compile_seconds": [c.get("compile_seconds") for c in crux],
        "crux_warmup_seconds": [c.get("warmup_seconds") for c in crux],
        "crux_sampling_seconds": [c.get("sampling_seconds") for c in crux],
        "crux_grad_evals": [c.get("grad_evals") for c in crux],
        "blackjax_import_seconds": [b["import_seconds"] for b in bj],
        "blackjax_warmup_seconds": [b["warmup_seconds"] for b in bj],
        "blackjax_sampling_seconds": [b["sampling_seconds"] for b in bj],
        "blackjax_sampling_seconds_steady": [b["sampling_seconds_steady"] for b in bj],
        "blackjax_grad_evals_steady": [b["grad_evals_steady"] for b in bj],
    },
    "versions": {"blackjax": bj[-1]["blackjax_version"], "jax": bj[-1]["jax_version"]},
    "machine": {"cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                "note": "shared machine: timings are noisy"},
}
if "chains" in c_last and c_last["chains"] != out["chains"]:
    print(f"warning: crux ran {c_last['chains']} chain(s), blackjax {out['chains']}", file=sys.stderr)
with open(results, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")

e, g = row["end_to_end_seconds"], row["grad_evals_per_second_steady"]
print(f"quick example end to end, median of {reps} alternating runs "
      f"({out['chains']} chain(s), {out['warmup']} warmup + {out['draws']} draws, float64; "
      f"blackjax {out['versions']['blackjax']}, jax {out['versions']['jax']}; {os.cpu_count()} shared cores, noisy)")
print(f"{'':28s}{'crux':>14s}{'blackjax':>14s}{'ratio':>10s}")
print(f"{'end to end (s)':28s}{e['crux']:14.3f}{e['blackjax']:14.3f}{e['ratio_blackjax_over_crux']:9.2f}x  (blackjax/crux)")
print(f"{'grad evals/s (steady)':28s}{g['crux']:14.4g}{g['blackjax']:14.4g}{g['ratio_crux_over_blackjax']:9.2f}x  (crux/blackjax)")
print()
print(f"{'posterior':10s}{'crux mean (sd)':>22s}{'blackjax mean (sd)':>22s}{'diff/sd_bj':>12s}{'diff/mcse':>11s}")
bad = []
for name in ["a", "b"]:
    p = post[name]
    z = p.get("diff_in_mcse")
    print(f"{name:10s}{p['crux']['mean']:12.4f} ({p['crux']['sd']:6.4f}){p['blackjax']['mean']:12.4f} ({p['blackjax']['sd']:6.4f})"
          f"{p['diff_in_blackjax_sd']:12.3f}{'' if z is None else f'{z:11.2f}'}")
    if (z is not None and abs(z) > 4) or abs(p["diff_in_blackjax_sd"]) > 0.25:
        bad.append(name)
print(f"\nwritten: {results}")
if bad:
    print(f"WARNING: the posteriors of {', '.join(bad)} disagree beyond Monte Carlo error "
          "(|diff| > 4 MCSE or > 0.25 sd)", file=sys.stderr)
    sys.exit(2)
PY
