"""The spec's mixed Bayesian PINN (Adam pretrain, then SGLD) done with
JAX + optax + blackjax: the baseline half of the benchmark "mixed BPINN end
to end against JAX" (benches/mixed-vs-jax.sh runs it next to crux's
`bpinn --pretrain 3000 --lr 3e-3 --likelihood-scale 100`).

Problem (float64), as samples/src/problems.rs (Bpinn):

    u'' + pi^2 sin(pi x) = 0 on the 101 nodes x = 0, 0.01, ..., 1 (the
    `interior` tag of Domain::line(0, 1, 0.01): every node, ends included),
    u(0) = u(1) = 0 on the 2 boundary nodes;
    u = MLP 1 -> 32 -> 32 -> 32 -> 1, tanh, weights (out, in), a bias per
    layer (2209 parameters), initialised exactly as crux's Net::mlp(seed 0):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from crux's Philox-4x32-10 stream
    (reimplemented below), so both sides start from the same weights;
    loss = (mean(pde^2) + mean(bc^2)) / 2   (crux averages its constraints);
    log p = -likelihood_scale * loss - sum(theta^2) / (2 * 10^2).

Job:
  1. optax.adam(3e-3) (b1 .9, b2 .999, eps 1e-8) on the loss gradient for
     3000 steps, one jax.lax.scan inside one jit (crux's optimiser target is
     -loss: likelihood scale 1, no prior);
  2. blackjax.sgld from the trained weights, step size 1e-5, temperature 1
     (theta' = theta + eps grad log p + sqrt(2 eps) xi), full-batch gradient,
     2000 warmup + 1000 kept steps: one jit holding two lax.scans (the
     warmup scan carries only the position; the second stacks the 1000 kept
     positions, so the 2000 discarded ones are never materialised);
  3. the pushforward: u at the 101 nodes for each of the 1000 kept draws
     (jit(vmap)), then the predictive mean and the 90% band (numpy's linear
     quantiles, as crux::diagnostics::quantile) at x = 0, .25, .5, .75, 1.

u'' is forward-over-forward (jvp of jvp) of the scalar network at one
point, vmapped over the points.

Install (verified: Python 3.11, jax 0.10.2 CPU, optax 0.2.8, blackjax 1.7.1):

    python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt

Run (one core, as the benchmark does):

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 0 .venv/bin/python benches/jax/mixed_bpinn.py --json /tmp/jax_mixed.json

Timings (JSON): total_seconds runs from the line right after `import time`
(interpreter start-up before it is not counted; launch_to_summary_seconds
adds it when the caller exports MIXED_BENCH_LAUNCH_EPOCH=$(date +%s.%N)) to
the band table being printed. pretrain_seconds, sgld_seconds and
pushforward_seconds are the first calls (tracing + XLA compilation
included, as crux's times include its compile), each closed with
block_until_ready. The *_steady fields are second calls of the same
compiled functions (SGLD with another key), run after the summary, so they
are not part of total_seconds.
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

try:
    import jax  # noqa: E402

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: E402
    import numpy as np  # noqa: E402
    import optax  # noqa: E402
    import blackjax  # noqa: E402
except ImportError as e:  # pragma: no cover
    sys.exit(
        f"mixed_bpinn.py: {e}\n"
        "install with: python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt"
    )

IMPORT_SECONDS = time.perf_counter() - _T0

WIDTHS = [1, 32, 32, 32, 1]
PRIOR_SD = 10.0
REPORT_X = [0.0, 0.25, 0.5, 0.75, 1.0]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrain", type=int, default=3000, help="Adam steps")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--likelihood-scale", type=float, default=100.0)
    p.add_argument("--step-size", type=float, default=1e-5, help="SGLD step size")
    p.add_argument("--warmup", type=int, default=2000, help="SGLD steps discarded")
    p.add_argument("--keep", type=int, default=1000, help="SGLD steps kept")
    p.add_argument("--init-seed", type=int, default=0, help="seed of the initial weights (crux's --init-seed)")
    p.add_argument("--seed", type=int, default=42, help="seed of the SGLD noise (jax.random.key)")
    p.add_argument("--json", metavar="PATH", help="write the timings and the band here")
    return p.parse_args()


# --- crux's initial weights --------------------------------------------------
# crux draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with a counter-based
# Philox-4x32-10 (ir/src/rng.rs): draw i of leaf l (weight 2l, bias 2l+1) is
# bound * (2 u - 1), u = 53 bits of words 0-1 of
# philox(counter = [i lo, i hi, stream lo, stream hi], key = [seed lo, seed hi]),
# stream = (3 << 56) | leaf (purpose NetInit). Vectorised over i in numpy.

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c, key):
    """Philox-4x32 with 10 rounds on uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(w, dtype=np.uint64) for w in c)
    k0, k1 = key
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        p0, p1 = _M0 * c0, _M1 * c2  # 32 x 32 -> 64 bits: no overflow in uint64
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return c0, c1, c2, c3


# Random123's known answers, as crux's own test (ir/src/rng.rs) checks them.
assert [int(w[0]) for w in philox4x32_10([[0]] * 4, (0, 0))] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
assert [int(w[0]) for w in philox4x32_10(
    [[0x243F6A88], [0x85A308D3], [0x13198A2E], [0x03707344]], (0xA4093822, 0x299F31D0)
)] == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def crux_uniform(seed, stream, n):
    """crux_ir::rng::uniform(seed, stream, i) for i in 0..n, in [0, 1)."""
    i = np.arange(n, dtype=np.uint64)
    w = philox4x32_10(
        [i & _MASK32, i >> np.uint64(32), np.full(n, stream & 0xFFFFFFFF), np.full(n, stream >> 32)],
        (seed & 0xFFFFFFFF, seed >> 32),
    )
    bits = ((w[0] << np.uint64(32)) | w[1]) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / (1 << 53))


def crux_mlp_init(seed):
    """The weights of crux's Net::mlp(1, 1, 32, 3, Tanh, seed): [(W (out, in), b (out,)), ...]."""
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        bound = 1.0 / np.sqrt(fan_in)

        def draw(leaf, n):
            return bound * (2.0 * crux_uniform(seed, (3 << 56) | leaf, n) - 1.0)

        w = draw(2 * layer, fan_out * fan_in).reshape(fan_out, fan_in)
        b = draw(2 * layer + 1, fan_out)
        params.append((jnp.asarray(w), jnp.asarray(b)))
    return params


# --- the problem ---------------------------------------------------------------


def grid():
    """crux's Domain::line(0, 1, 0.01): x0 + i * step, the last node exactly 1."""
    x = 0.0 + (1.0 / 100) * np.arange(101)
    x[-1] = 1.0
    return jnp.asarray(x), jnp.asarray([x[0], x[-1]])


def u_scalar(params, s):
    """The network at one point s (a scalar): tanh hidden layers, linear output."""
    h = jnp.reshape(s, (1,))
    for w, b in params[:-1]:
        h = jnp.tanh(w @ h + b)
    w, b = params[-1]
    return (w @ h + b)[0]


def u_xx_scalar(params, s):
    """u''(s) by forward over forward mode: the jvp of (the jvp of u along ds = 1)."""
    du = lambda t: jax.jvp(lambda r: u_scalar(params, r), (t,), (1.0,))[1]
    return jax.jvp(du, (s,), (1.0,))[1]


def make_problem(likelihood_scale):
    x, xb = grid()
    source = jnp.pi**2 * jnp.sin(jnp.pi * x)

    def loss(params):
        pde = jax.vmap(u_xx_scalar, in_axes=(None, 0))(params, x) + source
        bc = jax.vmap(u_scalar, in_axes=(None, 0))(params, xb)
        return 0.5 * (jnp.mean(pde**2) + jnp.mean(bc**2))

    def logdensity(params):
        sq = sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
        return -likelihood_scale * loss(params) - sq / (2.0 * PRIOR_SD**2)

    def u_on_grid(params):
        return jax.vmap(u_scalar, in_axes=(None, 0))(params, x)

    return x, loss, logdensity, u_on_grid


def main():
    args = parse_args()
    x, loss, logdensity, u_on_grid = make_problem(args.likelihood_scale)
    params0 = crux_mlp_init(args.init_seed)
    n_params = sum(int(p.size) for p in jax.tree.leaves(params0))

    # 1. Adam on the loss: one scan of `pretrain` steps. The loss comes with
    #    the gradient (value_and_grad): losses[t] is the loss after t updates.
    opt = optax.adam(args.lr)

    @jax.jit
    def pretrain(params):
        def step(carry, _):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=args.pretrain)
        return params, jnp.append(losses, loss(params))

    # 2. SGLD (blackjax) with the full-batch gradient of log p: the gradient
    #    estimator ignores its minibatch argument (there is no data set to
    #    subsample; crux's SGLD also uses the exact gradient).
    sgld = blackjax.sgld(lambda position, _minibatch: jax.grad(logdensity)(position))

    @jax.jit
    def sample(key, params):
        def step(position, k):
            return sgld.step(k, position, None, args.step_size), None

        def keep(position, k):
            position = sgld.step(k, position, None, args.step_size)
            return position, position

        k_warm, k_keep = jax.random.split(key)
        position, _ = jax.lax.scan(step, sgld.init(params), jax.random.split(k_warm, args.warmup))
        _, draws = jax.lax.scan(keep, position, jax.random.split(k_keep, args.keep))
        return draws  # pytree with a leading axis of `keep` draws

    # 3. The pushforward of u through every kept draw: (keep, 101).
    pushforward = jax.jit(jax.vmap(u_on_grid))

    def timed(f, *a):
        t = time.perf_counter()
        out = jax.block_until_ready(f(*a))
        return time.perf_counter() - t, out

    key = jax.random.key(args.seed)
    k_sample, k_steady = jax.random.split(key)

    # First calls: tracing and XLA compilation included.
    pretrain_seconds, (trained, losses) = timed(pretrain, params0)
    sgld_seconds, draws = timed(sample, k_sample, trained)
    pushforward_seconds, u_draws = timed(pushforward, draws)

    u_np = np.asarray(u_draws)
    x_np = np.asarray(x)
    losses = np.asarray(losses)
    band = []
    for xv in REPORT_X:
        i = int(np.argmin(np.abs(x_np - xv)))
        col = u_np[:, i]
        band.append({
            "x": float(x_np[i]),
            "mean": float(col.mean()),
            "q05": float(np.quantile(col, 0.05)),
            "q95": float(np.quantile(col, 0.95)),
            "exact": float(np.sin(np.pi * x_np[i])),
        })
    # The loss after the steps crux prints (its chunk ends).
    marks = sorted({s for s in [30, 360, 960, 1560, 2160, 2760, args.pretrain] if s <= args.pretrain})
    curve = ", ".join(f"{s}: {losses[s]:.3e}" for s in marks)

    print(f"mixed BPINN with jax {jax.__version__} / optax {optax.__version__} / blackjax {blackjax.__version__}: "
          f"u'' = -pi^2 sin(pi x), u(0) = u(1) = 0; {n_params} weights, float64")
    print(f"pretrain: optax.adam (lr {args.lr}) for {args.pretrain} steps in {pretrain_seconds:.2f} s; "
          f"loss 0: {losses[0]:.3e}, {curve}")
    print(f"SGLD (blackjax, step {args.step_size}, likelihood_scale {args.likelihood_scale}): "
          f"{args.warmup} warmup + {args.keep} kept steps in {sgld_seconds:.2f} s")
    print("   x      mean u    90% band              exact sin(pi x)")
    for r in band:
        print(f"  {r['x']:.2f}  {r['mean']:>9.4f}  [{r['q05']:>8.4f}, {r['q95']:>8.4f}]  {r['exact']:>9.4f}")
    sys.stdout.flush()
    total_seconds = time.perf_counter() - _T0
    t_summary_epoch = time.time()
    print(f"  imports {IMPORT_SECONDS:.2f} s, pretrain {pretrain_seconds:.2f} s, SGLD {sgld_seconds:.2f} s, "
          f"pushforward of {args.keep} draws {pushforward_seconds:.2f} s (first calls, compilation included); "
          f"total {total_seconds:.2f} s")

    # Steady state (after the summary, not in total_seconds): the compiled
    # functions again; SGLD with another key.
    pretrain_steady, _ = timed(pretrain, params0)
    sgld_steady, draws2 = timed(sample, k_steady, trained)
    pushforward_steady, _ = timed(pushforward, draws2)
    n_sgld = args.warmup + args.keep
    rates = {
        # one gradient evaluation per Adam step and per SGLD step
        "pretrain_grad_evals_per_second_steady": args.pretrain / pretrain_steady,
        "sgld_grad_evals_per_second_steady": n_sgld / sgld_steady,
        "pretrain_grad_evals_per_second_first_call": args.pretrain / pretrain_seconds,
        "sgld_grad_evals_per_second_first_call": n_sgld / sgld_seconds,
    }
    print(f"steady state (second calls): pretrain {pretrain_steady:.3f} s "
          f"({rates['pretrain_grad_evals_per_second_steady']:.0f} gradient evaluations/s), "
          f"SGLD {sgld_steady:.3f} s ({rates['sgld_grad_evals_per_second_steady']:.0f} gradient evaluations/s), "
          f"pushforward {pushforward_steady:.3f} s")

    if args.json:
        out = {
            "tool": "jax+optax+blackjax",
            "num_params": n_params,
            "pretrain_steps": args.pretrain,
            "lr": args.lr,
            "likelihood_scale": args.likelihood_scale,
            "step_size": args.step_size,
            "warmup": args.warmup,
            "keep": args.keep,
            "total_seconds": total_seconds,
            "import_seconds": IMPORT_SECONDS,
            "pretrain_seconds": pretrain_seconds,
            "sgld_seconds": sgld_seconds,
            "pushforward_seconds": pushforward_seconds,
            "pretrain_seconds_steady": pretrain_steady,
            "sgld_seconds_steady": sgld_steady,
            "pushforward_seconds_steady": pushforward_steady,
            **rates,
            "loss_history": {str(s): float(losses[s]) for s in [0] + marks},
            "band": band,
            "jax_version": jax.__version__,
            "optax_version": optax.__version__,
            "blackjax_version": blackjax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
        launch = os.environ.get("MIXED_BENCH_LAUNCH_EPOCH")
        if launch:
            out["launch_to_summary_seconds"] = t_summary_epoch - float(launch)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
