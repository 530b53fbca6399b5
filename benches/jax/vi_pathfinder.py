"""blackjax's side of benches/vi-pathfinder-vs-blackjax.sh: meanfield_vi on
the BPINN and pathfinder on gauss100, float64, each timed end to end (the
first call: tracing and XLA compilation included) and in steady state (the
same jitted call again), median of 5 runs.

    .venv/bin/python benches/jax/vi_pathfinder.py --json bj.json

- VI: blackjax.meanfield_vi(logp, optax.adam(1e-3), num_samples=8), 500
  steps in one jitted lax.scan, on the BPINN log-density of logp_bench.py.
- Pathfinder: blackjax.vi.pathfinder.approximate(key, logp, x0,
  num_samples=200, maxiter=30) on logp_bench.py's gauss100, jitted.
"""

import argparse
import json
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import blackjax  # noqa: E402
import optax  # noqa: E402

from logp_bench import bpinn, gauss100  # noqa: E402

STEPS, DRAWS = 500, 8


def timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def vi_bpinn():
    logp, theta0 = bpinn()
    vi = blackjax.meanfield_vi(logp, optax.adam(1e-3), num_samples=DRAWS)

    @jax.jit
    def run(key):
        state = vi.init(theta0)

        def body(s, k):
            s, info = vi.step(k, s)
            return s, info.elbo

        _, elbo = jax.lax.scan(body, state, jax.random.split(key, STEPS))
        return elbo

    e2e, steady = [], []
    for i in range(5):
        jax.clear_caches()
        t, _ = timed(run, jax.random.PRNGKey(i))
        e2e.append(t)
        t, elbo = timed(run, jax.random.PRNGKey(i))
        steady.append(STEPS / t)
    return {"steps": STEPS, "num_samples": DRAWS, "end_to_end_seconds": statistics.median(e2e),
            "steps_per_second_steady": statistics.median(steady), "final_elbo": float(elbo[-50:].mean())}


def pathfinder_gauss100():
    logp, x0 = gauss100()

    @jax.jit
    def run(key):
        state, _ = blackjax.vi.pathfinder.approximate(key, logp, x0, num_samples=200, maxiter=30)
        return state.elbo

    e2e, steady = [], []
    for i in range(5):
        jax.clear_caches()
        t, _ = timed(run, jax.random.PRNGKey(i))
        e2e.append(t)
        t, _ = timed(run, jax.random.PRNGKey(i))
        steady.append(t)
    return {"end_to_end_seconds": statistics.median(e2e), "steady_seconds": statistics.median(steady)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {"jax": jax.__version__, "blackjax": blackjax.__version__,
           "vi_bpinn": vi_bpinn(), "pathfinder_gauss100": pathfinder_gauss100()}
    v, p = out["vi_bpinn"], out["pathfinder_gauss100"]
    print(f"bpinn meanfield VI: end to end {v['end_to_end_seconds']:.3f} s, steady {v['steps_per_second_steady']:.0f} steps/s")
    print(f"gauss100 pathfinder: end to end {p['end_to_end_seconds']:.3f} s, steady {p['steady_seconds']:.4f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
