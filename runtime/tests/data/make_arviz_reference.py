"""Generate arviz reference values for `crux::diagnostics` tests.

Run from the repository root with the project's virtualenv:

    .venv/bin/python runtime/tests/data/make_arviz_reference.py

It writes `runtime/tests/data/arviz_reference.json` next to this script:
every input array (shape (chains, draws)) and the values arviz computes
for it. Every float is written as a JSON *string* holding its Python
`repr` (shortest round-trip form, at most 17 significant digits; "nan",
"inf", "-inf" for non-finite values, which JSON numbers cannot express).
Strings keep the inputs bit-exact: JSON number parsers are not all
correctly rounded (serde_json's default one can be 1 ulp off), and a
1-ulp change can break a tie in the folded ranks of R-hat.
"""

import json
import math
import os
import warnings

warnings.filterwarnings("ignore")

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402


def ar1(rng, chains, draws, phi):
    out = np.empty((chains, draws))
    for c in range(chains):
        x = rng.normal() / math.sqrt(1.0 - phi * phi)
        for t in range(draws):
            x = phi * x + rng.normal()
            out[c, t] = x
    return out


def cases():
    """Deterministic named inputs, each of shape (chains, draws)."""
    out = []
    out.append(("iid_normal_4x500", np.random.default_rng(1).normal(size=(4, 500))))
    out.append(("ar1_phi09_4x1000", ar1(np.random.default_rng(2), 4, 1000, 0.9)))
    out.append(("single_chain_1x1000", np.random.default_rng(3).normal(size=(1, 1000))))
    shifted = np.random.default_rng(4).normal(size=(2, 300))
    shifted[1] += 3.0
    out.append(("shifted_means_2x300", shifted))
    out.append(("odd_draws_3x101", np.random.default_rng(5).normal(size=(3, 101))))
    out.append(("student_t3_4x400", np.random.default_rng(6).standard_t(3, size=(4, 400))))
    # Ties: values rounded to one decimal, so ranks are averaged.
    out.append(("ties_rounded_4x200", np.round(np.random.default_rng(7).normal(size=(4, 200)), 1)))
    # Folded values all equal (|x - median| = 1): tail R-hat is NaN, bulk is not.
    out.append(("plus_minus_one_4x50", np.where(np.random.default_rng(8).random((4, 50)) < 0.5, -1.0, 1.0)))
    out.append(("ar1_phi099_2x500", ar1(np.random.default_rng(9), 2, 500, 0.99)))
    # A stuck chain: one chain constant while the others move.
    stuck = np.random.default_rng(16).normal(size=(4, 200))
    stuck[2] = 0.25
    out.append(("stuck_chain_4x200", stuck))
    out.append(("minimal_2x4", np.random.default_rng(10).normal(size=(2, 4))))
    out.append(("minimal_odd_2x5", np.random.default_rng(11).normal(size=(2, 5))))
    # Degenerate inputs.
    out.append(("constant_4x100", np.full((4, 100), 2.5)))
    out.append(("constant_chains_differ_3x50", np.repeat(np.array([[0.0], [1.0], [2.0]]), 50, axis=1)))
    out.append(("too_few_draws_4x3", np.random.default_rng(12).normal(size=(4, 3))))
    with_nan = np.random.default_rng(13).normal(size=(4, 50))
    with_nan[2, 17] = np.nan
    out.append(("with_nan_4x50", with_nan))
    with_inf = np.random.default_rng(14).normal(size=(4, 50))
    with_inf[1, 3] = np.inf
    out.append(("with_inf_4x50", with_inf))
    with_ninf = np.random.default_rng(15).normal(size=(2, 40))
    with_ninf[0, 0] = -np.inf
    with_ninf[1, 39] = np.inf
    out.append(("with_both_infs_2x40", with_ninf))
    return out


def enc(x):
    return repr(float(x))


def reference(ary):
    with np.errstate(all="ignore"):
        flat = ary.ravel()
        return {
            "rhat": enc(az.rhat(ary, method="rank")),
            "ess_bulk": enc(az.ess(ary, method="bulk")),
            "ess_tail": enc(az.ess(ary, method="tail")),
            "ess_mean": enc(az.ess(ary, method="mean")),
            "ess_sd": enc(az.ess(ary, method="sd")),
            "mcse_mean": enc(az.mcse(ary, method="mean")),
            "mcse_sd": enc(az.mcse(ary, method="sd")),
            "mean": enc(np.mean(flat)),
            "sd": enc(np.std(flat, ddof=1)),
            "q05": enc(np.quantile(flat, 0.05)),
            "q95": enc(np.quantile(flat, 0.95)),
        }


def main():
    data = {
        "arviz_version": az.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "cases": [],
    }
    for name, ary in cases():
        ary = np.asarray(ary, dtype=float)
        data["cases"].append(
            {
                "name": name,
                "chains": ary.shape[0],
                "draws": ary.shape[1],
                "values": [enc(v) for v in ary.ravel()],
                "expected": reference(ary),
            }
        )
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arviz_reference.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
