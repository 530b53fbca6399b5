"""The spec's quick example done with blackjax: the baseline half of the
benchmark "quick example end to end against blackjax"
(benches/quickstart-vs-blackjax.sh runs it next to crux's quickstart).

Model (float64): recover (a, b) in d(x) = a*sin(pi x) + b*cos(pi x) from
101 noisy points x = 0.00, 0.01, ..., 1.00 with
target = 3.14 sin(pi x) - 2.71 cos(pi x) + N(0, 0.1^2) noise
(numpy default_rng(seed)), or the arrays `x` and `target` of `--data PATH.npz`.

    log p(a, b) = -likelihood_scale * mean((a sin(pi x) + b cos(pi x) - target)^2)
                  - (a^2 + b^2) / (2 * 10^2)

Sampler, as the spec's `p.bayesian(blackjax.nuts, step_size=1e-2,
warmup=500, keep=1000)`: blackjax.window_adaptation(blackjax.nuts, ...,
initial_step_size=1e-2, target_acceptance_rate=0.8) for 500 steps from
theta0 = (0, 0), then 1000 NUTS draws in one jit-compiled jax.lax.scan.
With `--chains K > 1` both the adaptation and the sampling are jax.vmap-ed
over the chains (the multiple-chains pattern of the blackjax docs): each
chain adapts its own step size and mass matrix from its own key.

Install (verified: jax 0.10.2 CPU + blackjax 1.7.1 + optax 0.2.8, Python 3):

    python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt
    # i.e. .venv/bin/pip install "jax[cpu]==0.10.2" blackjax==1.7.1 optax==0.2.8

Run:

    .venv/bin/python benches/jax/quickstart_blackjax.py --json /tmp/bj.json
    .venv/bin/python benches/jax/quickstart_blackjax.py --data /tmp/crux_qs.npz --chains 4

Timings (JSON): total_seconds runs from the line right after `import time`
(interpreter start-up before it is not counted; launch_to_summary_seconds
adds it when the caller exports QS_BENCH_LAUNCH_EPOCH=$(date +%s.%N)) to the
summary being printed. warmup_seconds and sampling_seconds are the first
calls (jit compilation included), each closed with block_until_ready.
sampling_seconds_steady is a second identical sampling run with another key,
after the summary was printed, so it is not part of total_seconds (nor is
the ESS, computed after the summary for the Monte Carlo error of the
comparison).
"""

import time

_T0 = time.perf_counter()
_T0_EPOCH = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

try:
    import jax  # noqa: E402

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: E402
    import numpy as np  # noqa: E402
    import blackjax  # noqa: E402
except ImportError as e:  # pragma: no cover
    sys.exit(
        f"quickstart_blackjax.py: {e}\n"
        "install with: .venv/bin/pip install -r benches/jax/requirements.txt"
    )

IMPORT_SECONDS = time.perf_counter() - _T0

A_TRUE, B_TRUE, NOISE_SD, PRIOR_SD = 3.14, -2.71, 0.1, 10.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", metavar="PATH.npz", help="read arrays `x` and `target` from this npz")
    p.add_argument("--seed", type=int, default=42, help="seed of the noise (without --data) and of the chains")
    p.add_argument("--likelihood-scale", type=float, default=1.0)
    p.add_argument("--chains", type=int, default=1)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--initial-step-size", type=float, default=1e-2)
    p.add_argument("--json", metavar="PATH", help="write the timings and the posterior summary here")
    return p.parse_args()


def load_data(args):
    if args.data:
        with np.load(args.data) as z:
            x = np.asarray(z["x"], dtype=np.float64).ravel()
            target = np.asarray(z["target"], dtype=np.float64).ravel()
        if x.shape != target.shape:
            sys.exit(f"{args.data}: x has {x.size} points, target {target.size}")
        return x, target
    x = np.linspace(0.0, 1.0, 101)
    rng = np.random.default_rng(args.seed)
    target = A_TRUE * np.sin(np.pi * x) + B_TRUE * np.cos(np.pi * x) + rng.normal(0.0, NOISE_SD, x.shape)
    return x, target


def main():
    args = parse_args()
    x_np, target_np = load_data(args)
    x, target = jnp.asarray(x_np), jnp.asarray(target_np)
    sin_x, cos_x = jnp.sin(jnp.pi * x), jnp.cos(jnp.pi * x)
    scale = args.likelihood_scale

    def logdensity(theta):
        a, b = theta[0], theta[1]
        r = a * sin_x + b * cos_x - target
        return -scale * jnp.mean(r * r) - (a * a + b * b) / (2.0 * PRIOR_SD**2)

    K, n_warmup, n_draws = args.chains, args.warmup, args.draws
    warmup = blackjax.window_adaptation(
        blackjax.nuts,
        logdensity,
        initial_step_size=args.initial_step_size,
        target_acceptance_rate=0.8,
    )

    def adapt(key, theta0):
        (state, params), _ = warmup.run(key, theta0, num_steps=n_warmup)
        return state, params

    def sample(key, state, params):
        step = blackjax.nuts(logdensity, **params).step

        def one_step(state, k):
            state, info = step(k, state)
            return state, (state.position, info.num_integration_steps, info.is_divergent, info.acceptance_rate)

        _, out = jax.lax.scan(one_step, state, jax.random.split(key, n_draws))
        return out

    key = jax.random.key(args.seed)
    k_warm, k_sample, k_steady = jax.random.split(key, 3)
    theta0 = jnp.zeros(2)

    # Warmup (first call: tracing + compilation included).
    t = time.perf_counter()
    if K == 1:
        state, params = adapt(k_warm, theta0)
    else:
        state, params = jax.jit(jax.vmap(adapt))(jax.random.split(k_warm, K), jnp.tile(theta0, (K, 1)))
    jax.block_until_ready((state, params))
    warmup_seconds = time.perf_counter() - t

    sample_jit = jax.jit(sample) if K == 1 else jax.jit(jax.vmap(sample))
    keys = (lambda k: k) if K == 1 else (lambda k: jax.random.split(k, K))

    def timed_sampling(k):
        t = time.perf_counter()
        out = jax.block_until_ready(sample_jit(keys(k), state, params))
        return time.perf_counter() - t, out

    sampling_seconds, (pos, n_steps, divergent, acc) = timed_sampling(k_sample)
    pos = np.asarray(pos).reshape(K, n_draws, 2)  # (chains, draws, 2)

    summary = {}
    for i, name in enumerate(["a", "b"]):
        d = pos[:, :, i]
        summary[name] = {
            "mean": float(d.mean()),
            "sd": float(d.std(ddof=1)),
            "q05": float(np.quantile(d, 0.05)),
            "q95": float(np.quantile(d, 0.95)),
        }
    grad_evals = int(np.sum(n_steps))
    divergences = int(np.sum(divergent))
    mean_acceptance = float(np.mean(acc))

    src = args.data if args.data else f"seed {args.seed}"
    print(f"quick example with blackjax {blackjax.__version__} / jax {jax.__version__}: "
          f"{x_np.size} points ({src}), likelihood_scale = {scale}, prior N(0, 10^2)")
    print(f"window_adaptation(nuts) {n_warmup} steps + {n_draws} NUTS draws x {K} chain(s); "
          f"{divergences} divergences, mean acceptance {mean_acceptance:.3f}, {grad_evals} gradient evaluations")
    for name in ["a", "b"]:
        s = summary[name]
        print(f"  {name} = {s['mean']:.3f} [{s['q05']:.3f}, {s['q95']:.3f}]  (sd {s['sd']:.3f}, 90% interval)")
    sys.stdout.flush()
    total_seconds = time.perf_counter() - _T0
    t_summary_epoch = time.time()
    print(f"imports {IMPORT_SECONDS:.2f} s, warmup {warmup_seconds:.2f} s, sampling {sampling_seconds:.2f} s "
          f"(first calls, compilation included); total {total_seconds:.2f} s")

    # Not timed (after the summary): blackjax's ESS (and R-hat) for the Monte
    # Carlo error of the comparison; its eager first call costs ~2 s of
    # op-by-op compilation, which a user printing a summary need not pay.
    for i, name in enumerate(["a", "b"]):
        d = jnp.asarray(pos[:, :, i])
        summary[name]["ess"] = float(blackjax.diagnostics.effective_sample_size(d, chain_axis=0, sample_axis=1))
        if K > 1:
            summary[name]["rhat"] = float(blackjax.diagnostics.potential_scale_reduction(d, chain_axis=0, sample_axis=1))
    print("  ess: " + ", ".join(f"{n} {summary[n]['ess']:.0f}" for n in ["a", "b"])
          + ("" if K == 1 else "; rhat: " + ", ".join(f"{n} {summary[n]['rhat']:.3f}" for n in ["a", "b"])))

    # Steady state: the same compiled sampler again, another key.
    sampling_seconds_steady, (_, n_steps_steady, _, _) = timed_sampling(k_steady)
    grad_evals_steady = int(np.sum(n_steps_steady))
    print(f"steady-state sampling {sampling_seconds_steady:.3f} s, "
          f"{grad_evals_steady / sampling_seconds_steady:.3g} gradient evaluations/s")

    if args.json:
        out = {
            "tool": "blackjax",
            "chains": K,
            "warmup": n_warmup,
            "draws": n_draws,
            "likelihood_scale": scale,
            "data": args.data or f"synthetic, default_rng({args.seed})",
            "total_seconds": total_seconds,
            "import_seconds": IMPORT_SECONDS,
            "warmup_seconds": warmup_seconds,
            "sampling_seconds": sampling_seconds,
            "sampling_seconds_steady": sampling_seconds_steady,
            "grad_evals": grad_evals,
            "grad_evals_steady": grad_evals_steady,
            "grad_evals_per_second_steady": grad_evals_steady / sampling_seconds_steady,
            "divergences": divergences,
            "mean_acceptance": mean_acceptance,
            "step_size": np.asarray(params["step_size"]).tolist(),
            "inverse_mass_matrix": np.asarray(params["inverse_mass_matrix"]).tolist(),
            "a": summary["a"],
            "b": summary["b"],
            "blackjax_version": blackjax.__version__,
            "jax_version": jax.__version__,
        }
        launch = os.environ.get("QS_BENCH_LAUNCH_EPOCH")
        if launch:
            out["launch_to_summary_seconds"] = t_summary_epoch - float(launch)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
