#!/usr/bin/env bash
# The spec's mixed Bayesian PINN end to end: crux's
#   bpinn --quiet --pretrain 3000 --lr 3e-3 --likelihood-scale 100
# (Adam pretrain, then SGLD 2000 warmup + 1000 kept sweeps, then u pushed
# through the 1000 draws) against the same job in JAX + optax + blackjax
# (benches/jax/mixed_bpinn.py), float64, both on one core (taskset -c $CORE;
# XLA single-threaded with XLA_FLAGS). Same network, loss, initial weights,
# Adam and SGLD formulas; only the SGLD noise streams differ.
#
#   benches/mixed-vs-jax.sh                 # from anywhere in the repo
#   REPS=5 benches/mixed-vs-jax.sh
#
# Environment: REPS (3), CORE (0), PRETRAIN (3000), LR (3e-3),
# LIKELIHOOD_SCALE (100), PYTHON (.venv/bin/python),
# RESULTS (benches/results/mixed-bpinn.json), CARGO_TARGET_DIR (target).
#
# End to end is process start -> band table printed. crux: the wall time of
# the process (`date +%s.%N` around it). JAX: the script times steady-state
# second calls after printing the table, so its end to end is the table's
# time stamp minus the launch time stamp (MIXED_BENCH_LAUNCH_EPOCH, taken
# just before the launch); the process's wall time is recorded too.
# Phases: crux's pretrain time comes from its JSON (`pretrain_seconds`) when
# it has one, otherwise from its stdout line "pretrain: ... in X s" (its
# compile included); its SGLD time is compile + warmup + sampling from the
# JSON. JAX's phases are the first calls (compile included) and, separately,
# second calls (steady state). Ratios are JAX time / crux time (> 1: crux
# is faster). The runs alternate crux/JAX REPS times; the table shows
# medians and is written as JSON to benches/results/mixed-bpinn.json.
#
# Exit status: 0 ok; 1 a run or the build failed; 2 the JAX venv is
# missing; 3 the two predictive bands disagree (see the warning).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPS=${REPS:-3}
CORE=${CORE:-0}
PRETRAIN=${PRETRAIN:-3000}
LR=${LR:-3e-3}
LIKELIHOOD_SCALE=${LIKELIHOOD_SCALE:-100}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
JAX_SCRIPT=$ROOT/benches/jax/mixed_bpinn.py
RESULTS=${RESULTS:-$ROOT/benches/results/mixed-bpinn.json}
INSTALL_CMD='python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt'
# One XLA thread (no Eigen thread pool); the second entry is inert for XLA
# but kept as the benchmark convention.
export XLA_FLAGS=${XLA_FLAGS:-"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}

die() {
    echo "mixed-vs-jax: $*" >&2
    exit 1
}

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
[[ $CORE =~ ^[0-9]+$ ]] || die "CORE must be a core number, got '$CORE'"

# --- the JAX side must be installed (exit 2 if not) --------------------------
if [[ ! -x $PYTHON ]] || ! "$PYTHON" -c 'import jax, optax, blackjax' 2>/dev/null; then
    echo "mixed-vs-jax: no Python with jax, optax and blackjax at $PYTHON (or set PYTHON=...)." >&2
    echo "Install the JAX baseline with:" >&2
    echo "    cd $ROOT && $INSTALL_CMD" >&2
    exit 2
fi
[[ -f $JAX_SCRIPT ]] || die "missing $JAX_SCRIPT"
command -v taskset >/dev/null || die "taskset (util-linux) is needed to pin both runs to core $CORE"
taskset -c "$CORE" true 2>/dev/null || die "cannot pin to core $CORE (taskset -c $CORE failed)"

# --- build crux's sample once (not timed) -----------------------------------
echo "building crux-samples/bpinn (release, not timed) ..." >&2
cargo build --release -p crux-samples --bin bpinn >&2 ||
    die "cargo build --release -p crux-samples --bin bpinn failed"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CRUX_BIN=$TARGET_DIR/release/bpinn
[[ -x $CRUX_BIN ]] || die "built, but no binary at $CRUX_BIN"
HELP=$("$CRUX_BIN" --help 2>&1) || die "'$CRUX_BIN --help' failed:
$HELP"
for flag in --pretrain --lr --likelihood-scale --json --quiet; do
    grep -q -- "$flag" <<<"$HELP" || die "crux's bpinn has no $flag flag; its --help says:
$HELP"
done
CRUX_ARGS=(--quiet --pretrain "$PRETRAIN" --lr "$LR" --likelihood-scale "$LIKELIHOOD_SCALE")
JAX_ARGS=(--pretrain "$PRETRAIN" --lr "$LR" --likelihood-scale "$LIKELIHOOD_SCALE")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $(nproc) cores, load average $LOAD_BEFORE (shared; timings are noisy); both sides on core $CORE" >&2

for ((i = 1; i <= REPS; i++)); do
    t0=$(now)
    if ! taskset -c "$CORE" "$CRUX_BIN" "${CRUX_ARGS[@]}" --json "$WORK/crux_$i.json" >"$WORK/crux_$i.log" 2>&1; then
        cat "$WORK/crux_$i.log" >&2
        die "crux run $i failed: taskset -c $CORE $CRUX_BIN ${CRUX_ARGS[*]}"
    fi
    t1=$(now)
    [[ -s $WORK/crux_$i.json ]] || die "crux run $i wrote no JSON"
    crux_wall=$(elapsed "$t0" "$t1")

    export MIXED_BENCH_LAUNCH_EPOCH
    MIXED_BENCH_LAUNCH_EPOCH=$(now)
    if ! taskset -c "$CORE" "$PYTHON" "$JAX_SCRIPT" "${JAX_ARGS[@]}" --json "$WORK/jax_$i.json" >"$WORK/jax_$i.log" 2>&1; then
        cat "$WORK/jax_$i.log" >&2
        die "JAX run $i failed: taskset -c $CORE $PYTHON $JAX_SCRIPT ${JAX_ARGS[*]}"
    fi
    t2=$(now)
    jax_wall=$(elapsed "$MIXED_BENCH_LAUNCH_EPOCH" "$t2")
    unset MIXED_BENCH_LAUNCH_EPOCH
    echo "$i $crux_wall $jax_wall" >>"$WORK/walls.txt"
    echo "run $i/$REPS: crux ${crux_wall} s, JAX ${jax_wall} s (process wall times)" >&2
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo "--- crux output (run $REPS) ---" >&2
cat "$WORK/crux_$REPS.log" >&2
echo "--- JAX output (run $REPS) ---" >&2
cat "$WORK/jax_$REPS.log" >&2
echo >&2

mkdir -p "$(dirname "$RESULTS")"
"$PYTHON" - "$WORK" "$REPS" "$RESULTS" "$LOAD_BEFORE" "$LOAD_AFTER" "$CORE" <<'PY'
import json, os, re, statistics, sys

work, reps, results, load_before, load_after, core = sys.argv[1:7]
reps = int(reps)
runs = range(1, reps + 1)
med = statistics.median


def fail(msg):
    print(f"mixed-vs-jax: {msg}", file=sys.stderr)
    sys.exit(1)


walls = {}
for line in open(os.path.join(work, "walls.txt")):
    i, c, j = line.split()
    walls[int(i)] = (float(c), float(j))


def crux_run(i):
    """crux's JSON plus what only its stdout says (pretrain time, pushforward, band)."""
    d = json.load(open(os.path.join(work, f"crux_{i}.json")))
    log = open(os.path.join(work, f"crux_{i}.log")).read()
    for k in ["compile_seconds", "warmup_seconds", "sampling_seconds", "grad_evals"]:
        if k not in d:
            fail(f"crux's JSON (run {i}) has no field {k}")
    if "pretrain_seconds" in d:
        d["pretrain_source"] = "json"
    else:
        m = re.search(r"pretrain: .* for (\d+) sweeps in ([0-9.]+) s", log)
        if not m:
            fail(f"crux run {i}: no pretrain time in its JSON or stdout")
        d["pretrain_seconds"], d["pretrain_source"] = float(m.group(2)), "stdout"
    m = re.search(r"pushforward of \d+ draws ([0-9.]+) s", log)
    d["pushforward_seconds"] = float(m.group(1)) if m else None
    d["band"] = [
        {"x": float(a), "mean": float(b), "q05": float(c), "q95": float(e), "exact": float(f)}
        for a, b, c, e, f in re.findall(
            r"^\s+([0-9.]+)\s+(-?[0-9.]+)\s+\[\s*(-?[0-9.]+),\s*(-?[0-9.]+)\]\s+(-?[0-9.]+)\s*$", log, re.M)
    ]
    m = re.search(r"loss (.*)$", log, re.M)
    d["loss_curve"] = m.group(1) if m else None
    return d


crux = [crux_run(i) for i in runs]
jx = [json.load(open(os.path.join(work, f"jax_{i}.json"))) for i in runs]
sweeps_sgld = jx[-1]["warmup"] + jx[-1]["keep"]
pretrain = jx[-1]["pretrain_steps"]

per_run = {
    "crux_end_to_end_seconds": [walls[i][0] for i in runs],
    "jax_end_to_end_seconds": [j.get("launch_to_summary_seconds", walls[i][1]) for i, j in zip(runs, jx)],
    "jax_process_wall_seconds": [walls[i][1] for i in runs],
    "crux_pretrain_seconds": [c["pretrain_seconds"] for c in crux],
    "crux_sgld_seconds": [c["compile_seconds"] + c["warmup_seconds"] + c["sampling_seconds"] for c in crux],
    "crux_sgld_compile_seconds": [c["compile_seconds"] for c in crux],
    "crux_sgld_kept_grad_evals_per_second": [c["grad_evals"] / c["sampling_seconds"] for c in crux],
    "crux_pushforward_seconds": [c["pushforward_seconds"] for c in crux],
    "jax_import_seconds": [j["import_seconds"] for j in jx],
    "jax_pretrain_seconds": [j["pretrain_seconds"] for j in jx],
    "jax_pretrain_seconds_steady": [j["pretrain_seconds_steady"] for j in jx],
    "jax_sgld_seconds": [j["sgld_seconds"] for j in jx],
    "jax_sgld_seconds_steady": [j["sgld_seconds_steady"] for j in jx],
    "jax_pushforward_seconds": [j["pushforward_seconds"] for j in jx],
    "jax_pushforward_seconds_steady": [j["pushforward_seconds_steady"] for j in jx],
}
m = {k: (med(v) if None not in v else None) for k, v in per_run.items()}


def phase(crux_s, jax_first, jax_steady, sweeps):
    row = {"crux_seconds": crux_s, "jax_seconds_first_call": jax_first, "jax_seconds_steady": jax_steady,
           "ratio_jax_first_over_crux": jax_first / crux_s, "ratio_jax_steady_over_crux": jax_steady / crux_s}
    if sweeps:
        row.update({"crux_sweeps_per_second": sweeps / crux_s,
                    "jax_sweeps_per_second_first_call": sweeps / jax_first,
                    "jax_sweeps_per_second_steady": sweeps / jax_steady})
    return row


e2e = {"crux": m["crux_end_to_end_seconds"], "jax": m["jax_end_to_end_seconds"],
       "jax_process_wall": m["jax_process_wall_seconds"]}
e2e["ratio_jax_over_crux"] = e2e["jax"] / e2e["crux"]
phases = {
    "pretrain": phase(m["crux_pretrain_seconds"], m["jax_pretrain_seconds"], m["jax_pretrain_seconds_steady"], pretrain),
    "sgld": phase(m["crux_sgld_seconds"], m["jax_sgld_seconds"], m["jax_sgld_seconds_steady"], sweeps_sgld),
}
if m["crux_pushforward_seconds"]:
    phases["pushforward"] = phase(m["crux_pushforward_seconds"], m["jax_pushforward_seconds"],
                                  m["jax_pushforward_seconds_steady"], None)
# Gradient evaluations per second in steady state: crux's kept SGLD sweeps
# (after its warmup, on the code tier it settled on) against JAX's second call.
grad_rate = {"crux_sgld_kept": m["crux_sgld_kept_grad_evals_per_second"],
             "jax_sgld_steady": sweeps_sgld / m["jax_sgld_seconds_steady"],
             "jax_pretrain_steady": pretrain / m["jax_pretrain_seconds_steady"]}
grad_rate["ratio_crux_over_jax_sgld"] = grad_rate["crux_sgld_kept"] / grad_rate["jax_sgld_steady"]

# Sanity: the two predictive bands (last run) should overlap; each mean
# inside the other side's 90% band.
cb, jb = crux[-1]["band"], jx[-1]["band"]
disagree = []
if len(cb) != len(jb):
    disagree.append(f"crux printed {len(cb)} band rows, JAX {len(jb)}")
else:
    for c, j in zip(cb, jb):
        if not (j["q05"] <= c["mean"] <= j["q95"] and c["q05"] <= j["mean"] <= c["q95"]):
            disagree.append(f"x = {c['x']:.2f}")

out = {
    "benchmark": "mixed BPINN (Adam pretrain + SGLD) end to end, crux vs JAX/optax/blackjax",
    "reps": reps,
    "statistic": "median",
    "config": {"pretrain": pretrain, "lr": jx[-1]["lr"], "likelihood_scale": jx[-1]["likelihood_scale"],
               "sgld_step_size": jx[-1]["step_size"], "warmup": jx[-1]["warmup"], "keep": jx[-1]["keep"],
               "num_params": jx[-1]["num_params"], "dtype": "float64", "core": int(core),
               "xla_flags": jx[-1]["xla_flags"]},
    "end_to_end_seconds": e2e,
    "phases": phases,
    "grad_evals_per_second_steady": grad_rate,
    "crux_pretrain_time_from": crux[-1]["pretrain_source"],
    "band": {"crux": cb, "jax": jb, "agree": not disagree},
    "loss_curve": {"crux": crux[-1]["loss_curve"], "jax": jx[-1]["loss_history"]},
    "per_run": per_run,
    "versions": {k: jx[-1][f"{k}_version"] for k in ["jax", "optax", "blackjax"]},
    "machine": {"cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                "note": "shared machine: timings are noisy; both sides pinned to one core"},
}
with open(results, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")

v = out["versions"]
print(f"mixed BPINN end to end, median of {reps} alternating runs on core {core} "
      f"(Adam {pretrain} + SGLD {out['config']['warmup']}+{out['config']['keep']}, "
      f"{out['config']['num_params']} weights, float64; jax {v['jax']}, optax {v['optax']}, "
      f"blackjax {v['blackjax']}; {os.cpu_count()} shared cores, load {load_before} -> {load_after})")
print(f"{'':30s}{'crux':>10s}{'JAX 1st':>10s}{'JAX 2nd':>10s}{'1st/crux':>10s}{'2nd/crux':>10s}")
print(f"{'end to end (s)':30s}{e2e['crux']:10.3f}{e2e['jax']:10.3f}{'':>10s}{e2e['ratio_jax_over_crux']:9.2f}x")
for name, label in [("pretrain", f"pretrain, {pretrain} Adam (s)"), ("sgld", f"SGLD, {sweeps_sgld} sweeps (s)"),
                    ("pushforward", "pushforward (s)")]:
    if name in phases:
        p = phases[name]
        print(f"{label:30s}{p['crux_seconds']:10.3f}{p['jax_seconds_first_call']:10.3f}{p['jax_seconds_steady']:10.3f}"
              f"{p['ratio_jax_first_over_crux']:9.2f}x{p['ratio_jax_steady_over_crux']:9.2f}x")
for name in ["pretrain", "sgld"]:
    p = phases[name]
    print(f"{name + ' sweeps/s':30s}{p['crux_sweeps_per_second']:10.0f}{p['jax_sweeps_per_second_first_call']:10.0f}"
          f"{p['jax_sweeps_per_second_steady']:10.0f}")
print(f"(crux times include its compile; its pretrain time is from its {out['crux_pretrain_time_from']}. "
      f"JAX 1st: first call incl. tracing + XLA compile; 2nd: second call. Ratios: JAX time / crux time.)")
print(f"gradient evaluations/s, steady: crux SGLD kept sweeps {grad_rate['crux_sgld_kept']:.0f}, "
      f"JAX SGLD {grad_rate['jax_sgld_steady']:.0f}, JAX Adam {grad_rate['jax_pretrain_steady']:.0f} "
      f"(crux/JAX {grad_rate['ratio_crux_over_jax_sgld']:.2f}x)")
print()
print(f"{'x':>6s}{'crux mean [90% band]':>32s}{'JAX mean [90% band]':>32s}{'exact':>9s}")
for c, j in zip(cb, jb):
    print(f"{c['x']:6.2f}{c['mean']:10.4f} [{c['q05']:8.4f}, {c['q95']:8.4f}]{j['mean']:10.4f} "
          f"[{j['q05']:8.4f}, {j['q95']:8.4f}]{c['exact']:9.4f}")
print(f"loss after Adam: crux {crux[-1]['loss_curve']}")
print("                 JAX  " + ", ".join(f"{k}: {val:.3e}" for k, val in jx[-1]["loss_history"].items()))
print(f"\nwritten: {results}")
if disagree:
    print("WARNING: the predictive bands disagree (a mean outside the other side's 90% band) at "
          + ", ".join(disagree), file=sys.stderr)
    sys.exit(3)
PY
