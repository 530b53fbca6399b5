#!/usr/bin/env bash
# GPU throughput of the quick example (issue 6): crux `--backend cuda` (one
# GPU thread per chain) against blackjax `jit(vmap(...))` on the same GPU,
# for 1, 1024 and 65,536 chains (500 warmup + 1000 draws each). Needs an
# NVIDIA driver, and for the baseline `.venv` with `jax[cuda12]` and
# blackjax (`.venv/bin/pip install -r benches/jax/requirements.txt
# "jax[cuda12]"`). Writes benches/results/gpu-bench.json.
#
#   benches/gpu-bench.sh                 # all chain counts
#   CHAINS="1 1024" benches/gpu-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CHAINS=${CHAINS:-"1 1024 65536"}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=benches/results
mkdir -p "$OUT"
cargo build --release -p crux-samples --bin quickstart >&2
for k in $CHAINS; do
    echo "crux, $k chains ..." >&2
    target/release/quickstart --backend cuda --chains "$k" --quiet --json "$OUT/gpu-crux-$k.json" >/dev/null
    if [[ -x $PYTHON ]]; then
        echo "blackjax, $k chains ..." >&2
        JAX_PLATFORMS=cuda "$PYTHON" benches/jax/quickstart_blackjax.py --chains "$k" \
            --json "$OUT/gpu-blackjax-$k.json" >/dev/null
    fi
done
python3 - "$OUT" $CHAINS <<'PY'
import json, os, sys
out, chains = sys.argv[1], [int(k) for k in sys.argv[2:]]
rows = []
for k in chains:
    c = json.load(open(os.path.join(out, f"gpu-crux-{k}.json")))
    row = {"chains": k,
           "crux_draws_per_s": k * c["num_draws"] / c["sampling_seconds"],
           "crux_grad_evals_per_s": c["grad_evals"] / c["sampling_seconds"],
           "crux_compile_seconds": c["compile_seconds"]}
    p = os.path.join(out, f"gpu-blackjax-{k}.json")
    if os.path.exists(p):
        b = json.load(open(p))
        row["blackjax_draws_per_s"] = k * b["draws"] / b["sampling_seconds_steady"]
        row["blackjax_grad_evals_per_s"] = b["grad_evals_per_second_steady"]
        row["draws_ratio_crux_over_blackjax"] = row["crux_draws_per_s"] / row["blackjax_draws_per_s"]
    rows.append(row)
    print(json.dumps(row))
json.dump({"rows": rows}, open(os.path.join(out, "gpu-bench.json"), "w"), indent=2)
PY
