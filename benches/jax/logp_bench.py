"""JAX baseline for crux's logp-bench: evaluations per second of
jit(value_and_grad(logp)) for the three benchmark problems, each evaluated
N times inside one jitted lax.fori_loop (so Python dispatch is not timed).

    python3 -m venv .venv && .venv/bin/pip install "jax[cpu]"
    .venv/bin/python benches/jax/logp_bench.py --json jax.json

The problems mirror samples/src/problems.rs (float64): the quick example
(101 points, 2 parameters), a 100-d Gaussian with a dense precision of
condition number 1e3 written as a residual L·θ, and the Bayesian PINN
(MLP 1→32→32→32→1, tanh, u'' by nested jvp, 101 + 2 points).
"""

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def quickstart():
    x = jnp.linspace(0.0, 1.0, 101)[:, None]
    rng = np.random.default_rng(42)
    t = 3.14 * jnp.sin(jnp.pi * x) - 2.71 * jnp.cos(jnp.pi * x) + 0.1 * rng.standard_normal((101, 1))

    def logp(th):
        r = th[0] * jnp.sin(jnp.pi * x) + th[1] * jnp.cos(jnp.pi * x) - t
        return -jnp.mean(r * r) - jnp.sum(th * th) / 200.0

    return logp, jnp.array([1.0, -1.0])


def gauss100():
    n = 100
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = 10.0 ** (3.0 * np.arange(n) / (n - 1))
    L = jnp.asarray(np.sqrt(lam)[:, None] * q.T)

    def logp(th):
        r = L @ th
        return -50.0 * jnp.mean(r * r) - jnp.sum(th * th) / 200.0

    return logp, jnp.asarray(rng.standard_normal(n))


def bpinn():
    widths = [1, 32, 32, 32, 1]
    rng = np.random.default_rng(0)
    shapes = []
    for i, o in zip(widths[:-1], widths[1:]):
        shapes += [(o, i), (o,)]
    sizes = [int(np.prod(s)) for s in shapes]
    theta0 = jnp.asarray(rng.uniform(-0.2, 0.2, sum(sizes)))
    x = jnp.linspace(0.0, 1.0, 101)
    xb = jnp.array([0.0, 1.0])

    def unpack(th):
        out, off = [], 0
        for s, k in zip(shapes, sizes):
            out.append(th[off:off + k].reshape(s))
            off += k
        return out

    def net(params, xs):
        h = xs[None]
        for li in range(0, len(params), 2):
            w, b = params[li], params[li + 1]
            h = w @ h + b[:, None]
            if li + 2 < len(params):
                h = jnp.tanh(h)
        return h[0]

    def logp(th):
        p = unpack(th)
        u = lambda s: net(p, jnp.array([s]))[0]
        uxx = jax.vmap(jax.grad(jax.grad(u)))(x)
        pde = uxx + jnp.pi ** 2 * jnp.sin(jnp.pi * x)
        bc = jax.vmap(u)(xb)
        return -0.5 * (jnp.mean(pde ** 2) + jnp.mean(bc ** 2)) - jnp.sum(th * th) / 200.0

    return logp, theta0


def bench(logp, theta, n, repeats=5):
    vg = jax.value_and_grad(logp)

    @jax.jit
    def loop(th):
        def body(i, acc):
            v, g = vg(th + 1e-9 * i)
            return acc + v + g[0]
        return jax.lax.fori_loop(0, n, body, 0.0)

    loop(theta).block_until_ready()  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop(theta).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {"jax": jax.__version__, "problems": {}}
    for name, make, n in [("quickstart", quickstart, 20000), ("gauss100", gauss100, 20000), ("bpinn", bpinn, 200)]:
        logp, th = make()
        eps = bench(logp, th, n)
        out["problems"][name] = {"jax_evals_per_s": eps}
        print(f"{name}: {eps:.0f} evals/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
