//! Convergence diagnostics on whole posterior arrays shaped
//! `(K, N, *param)` (chains, draws, then the parameter's own axes), as
//! [`Posterior`](super::Posterior) hands them out.
//!
//! Each function applies the matching scalar diagnostic of
//! [`crate::analysis::diagnostics`] (arviz-exact) to every component of the parameter
//! and returns an array shaped `*param`: a 0-d array for a scalar
//! parameter, `[3]` for `(K, N, 3)`, `[2, 2]` for `(K, N, 2, 2)`.
//!
//! Arrays with fewer than 2 axes, no chains or no draws are rejected with
//! [`Error::Diagnostics`]; degenerate but well-shaped inputs (too few
//! draws, NaN draws, constant draws) give NaN components as documented in
//! [`crate::analysis::diagnostics`].
//!
//! ```
//! use crux::analysis::{ess_bulk, rhat, RhatStrategy};
//! use ndarray::{ArrayD, IxDyn};
//!
//! # fn main() -> crux::Result<()> {
//! // 4 chains, 100 draws, a parameter of shape (3,).
//! let chain = ArrayD::from_shape_fn(IxDyn(&[4, 100, 3]), |i| {
//!     ((i[0] * 131 + i[1] * 17 + i[2] * 7) % 23) as f64
//! });
//! let r = rhat(chain.view(), RhatStrategy::Auto)?;
//! assert_eq!(r.shape(), &[3]);
//! assert_eq!(ess_bulk(chain.view())?.shape(), &[3]);
//! # Ok(())
//! # }
//! ```

use ndarray::{s, ArrayD, ArrayView2, ArrayViewD, IxDyn};

use crate::analysis::diagnostics;
use crate::error::{Error, Result};

/// How [`rhat`] forms the chains it compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RhatStrategy {
    /// [`Multichain`](Self::Multichain) when there are at least 2 chains;
    /// with a single chain, [`Split`](Self::Split): its two halves taken
    /// as two chains, so one run still gets a stationarity check.
    #[default]
    Auto,
    /// The rank-normalised split R-hat of the `K` chains as given
    /// (`az.rhat(x, method="rank")`); an error when `K < 2`.
    Multichain,
    /// Every chain is first cut into its first `⌊N/2⌋` and last `⌊N/2⌋`
    /// draws (the middle draw of an odd `N` dropped), and the R-hat is that
    /// of these `2K` chains (first halves of all chains, then last halves).
    Split,
}

/// Rank-normalised split R-hat ([`diagnostics::rhat`]) of every component
/// of `chain`, shaped `(K, N, *param)`; the result is shaped `*param`.
/// `strategy` says which chains are compared (see [`RhatStrategy`]).
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws, or when `strategy` is [`RhatStrategy::Multichain`] and
/// `K < 2`.
pub fn rhat(chain: ArrayViewD<'_, f64>, strategy: RhatStrategy) -> Result<ArrayD<f64>> {
    let (k, _) = check("rhat", &chain)?;
    let split = match strategy {
        RhatStrategy::Multichain if k < 2 => {
            return Err(Error::Diagnostics {
                function: "rhat",
                shape: chain.shape().to_vec(),
                reason: format!(
                    "rhat(strategy=Multichain) requires K>=2; got K={k}. Use the default strategy Auto or Split for single-chain input."
                ),
            });
        }
        RhatStrategy::Multichain => false,
        RhatStrategy::Auto => k < 2,
        RhatStrategy::Split => true,
    };
    if split {
        per_component(&chain, |draws| {
            diagnostics::rhat(diagnostics::split_halves(draws).view())
        })
    } else {
        per_component(&chain, diagnostics::rhat)
    }
}

/// Bulk effective sample size ([`diagnostics::ess_bulk`]) of every
/// component of `chain`, shaped `(K, N, *param)`; the result is shaped
/// `*param`.
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws.
pub fn ess_bulk(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check("ess_bulk", &chain)?;
    per_component(&chain, diagnostics::ess_bulk)
}

/// Tail effective sample size ([`diagnostics::ess_tail`]) of every
/// component of `chain`, shaped `(K, N, *param)`; the result is shaped
/// `*param`.
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws.
pub fn ess_tail(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check("ess_tail", &chain)?;
    per_component(&chain, diagnostics::ess_tail)
}

/// Effective sample size of every component of `chain`, shaped
/// `(K, N, *param)`: the bulk ESS (as arviz's default), so it is
/// [`ess_bulk`]. The result is shaped `*param`.
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws.
pub fn ess(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check("ess", &chain)?;
    per_component(&chain, diagnostics::ess_bulk)
}

/// Monte Carlo standard error of the mean ([`diagnostics::mcse_mean`]) of
/// every component of `chain`, shaped `(K, N, *param)`; the result is
/// shaped `*param`.
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws.
pub fn mcse_mean(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check("mcse_mean", &chain)?;
    per_component(&chain, diagnostics::mcse_mean)
}

/// Monte Carlo standard error of the standard deviation
/// ([`diagnostics::mcse_sd`]) of every component of `chain`, shaped
/// `(K, N, *param)`; the result is shaped `*param`.
///
/// # Errors
///
/// [`Error::Diagnostics`] when `chain` has fewer than 2 axes, no chains or
/// no draws.
pub fn mcse_sd(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
    check("mcse_sd", &chain)?;
    per_component(&chain, diagnostics::mcse_sd)
}

/// Checks that `chain` is a non-empty `(K, N, *param)` array and returns
/// `(K, N)`.
fn check(name: &'static str, chain: &ArrayViewD<'_, f64>) -> Result<(usize, usize)> {
    let shape = chain.shape();
    if shape.len() < 2 {
        return Err(Error::Diagnostics {
            function: name,
            shape: shape.to_vec(),
            reason: format!("{name} expects a (K, N, *param) array; got shape {shape:?}"),
        });
    }
    let (k, n) = (shape[0], shape[1]);
    if k == 0 {
        return Err(Error::Diagnostics {
            function: name,
            shape: shape.to_vec(),
            reason: format!("{name} needs at least one chain; got shape {shape:?} (K=0)"),
        });
    }
    if n == 0 {
        return Err(Error::Diagnostics {
            function: name,
            shape: shape.to_vec(),
            reason: format!("{name} needs at least one draw per chain; got shape {shape:?} (N=0)"),
        });
    }
    Ok((k, n))
}

/// Applies `f` to the `(K, N)` draws of every component of `chain` (shape
/// checked by [`check`]) and returns the values shaped `*param`, in
/// row-major order of the parameter's axes.
fn per_component(
    chain: &ArrayViewD<'_, f64>,
    f: impl Fn(ArrayView2<f64>) -> f64,
) -> Result<ArrayD<f64>> {
    let shape = chain.shape();
    let (k, n) = (shape[0], shape[1]);
    let param = &shape[2..];
    let size: usize = param.iter().product();
    let flat = chain
        .to_shape((k, n, size))
        .map_err(|e| Error::Diagnostics {
            function: "per_component",
            shape: shape.to_vec(),
            reason: format!("cannot view shape {shape:?} as (K, N, P): {e}"),
        })?;
    let values: Vec<f64> = (0..size).map(|j| f(flat.slice(s![.., .., j]))).collect();
    ArrayD::from_shape_vec(IxDyn(param), values).map_err(|e| Error::Diagnostics {
        function: "per_component",
        shape: shape.to_vec(),
        reason: format!("cannot shape the result as {param:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3, Axis};

    /// Deterministic pseudo-random draws in [-1, 1) (an LCG; enough for
    /// shape and equality checks).
    fn draws(shape: &[usize], seed: u64) -> ArrayD<f64> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let len: usize = shape.iter().product();
        let values = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
    }

    /// `a == b` or both NaN.
    fn same(a: f64, b: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan())
    }

    type ArrayFn = fn(ArrayViewD<'_, f64>) -> Result<ArrayD<f64>>;
    type ScalarFn = fn(ArrayView2<f64>) -> f64;

    fn auto_rhat(chain: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        rhat(chain, RhatStrategy::Auto)
    }

    fn pairs() -> [(&'static str, ArrayFn, ScalarFn); 6] {
        [
            ("rhat", auto_rhat, diagnostics::rhat),
            ("ess_bulk", ess_bulk, diagnostics::ess_bulk),
            ("ess_tail", ess_tail, diagnostics::ess_tail),
            ("ess", ess, diagnostics::ess_bulk),
            ("mcse_mean", mcse_mean, diagnostics::mcse_mean),
            ("mcse_sd", mcse_sd, diagnostics::mcse_sd),
        ]
    }

    #[test]
    fn results_are_shaped_like_the_parameter() {
        for (shape, want) in [
            (vec![4, 50], vec![]),
            (vec![4, 50, 3], vec![3]),
            (vec![2, 40, 2, 2], vec![2, 2]),
            (vec![1, 40, 5], vec![5]),
            (vec![3, 20, 0], vec![0]),
        ] {
            let x = draws(&shape, 1);
            for (name, f, _) in pairs() {
                let got = f(x.view()).unwrap();
                assert_eq!(got.shape(), &want[..], "{name} on {shape:?}");
            }
            for strategy in [RhatStrategy::Split, RhatStrategy::Auto] {
                assert_eq!(rhat(x.view(), strategy).unwrap().shape(), &want[..]);
            }
        }
        let scalar = mcse_sd(draws(&[4, 50], 2).view()).unwrap();
        assert_eq!(scalar.ndim(), 0);
        assert!(scalar[[]].is_finite());
    }

    #[test]
    fn every_component_equals_the_scalar_diagnostic() {
        let x = draws(&[3, 60, 2, 3], 3);
        for (name, f, scalar) in pairs() {
            let got = f(x.view()).unwrap();
            for i in 0..2 {
                for j in 0..3 {
                    let component = x.slice(s![.., .., i, j]);
                    let want = scalar(component);
                    assert!(
                        same(got[[i, j]], want),
                        "{name}[{i},{j}]: {} vs {want}",
                        got[[i, j]]
                    );
                    assert!(want.is_finite(), "{name}[{i},{j}]");
                }
            }
        }
        let multi = rhat(x.view(), RhatStrategy::Multichain).unwrap();
        let auto = rhat(x.view(), RhatStrategy::Auto).unwrap();
        assert_eq!(multi, auto, "Auto is Multichain for K >= 2");
    }

    #[test]
    fn non_contiguous_views_are_read_correctly() {
        // A transposed layout: (P, N, K) data viewed as (K, N, P).
        let stored = draws(&[3, 40, 4], 4);
        let mut axes = stored.view();
        axes.swap_axes(0, 2);
        let owned = axes.to_owned();
        for (name, f, _) in pairs() {
            assert_eq!(f(axes.clone()).unwrap(), f(owned.view()).unwrap(), "{name}");
        }
    }

    #[test]
    fn split_compares_the_half_chains() {
        let k = 3;
        let n = 81; // odd: the middle draw is dropped
        let x = draws(&[k, n, 2], 5);
        let got = rhat(x.view(), RhatStrategy::Split).unwrap();
        let h = n / 2;
        for p in 0..2 {
            let halves = Array2::from_shape_fn((2 * k, h), |(c, i)| {
                if c < k {
                    x[[c, i, p]]
                } else {
                    x[[c - k, n - h + i, p]]
                }
            });
            let want = diagnostics::rhat(halves.view());
            assert!(want.is_finite());
            assert_eq!(got[[p]], want, "component {p}");
        }
    }

    #[test]
    fn auto_splits_a_single_chain_and_multichain_refuses_it() {
        let x = draws(&[1, 101, 2], 6);
        let auto = rhat(x.view(), RhatStrategy::Auto).unwrap();
        let split = rhat(x.view(), RhatStrategy::Split).unwrap();
        assert_eq!(auto, split);
        for p in 0..2 {
            // First ⌊N/2⌋ and last ⌊N/2⌋ draws as two chains.
            let col = x.slice(s![0, .., p]);
            let halves = Array2::from_shape_fn((2, 50), |(c, i)| col[c * 51 + i]);
            let want = diagnostics::rhat(halves.view());
            assert!(want.is_finite() && (want - 1.0).abs() < 0.1, "{want}");
            assert_eq!(auto[[p]], want);
            // The scalar function itself gives NaN for one chain.
            assert!(diagnostics::rhat(x.slice(s![.., .., p])).is_nan());
        }
        let err = rhat(x.view(), RhatStrategy::Multichain).unwrap_err();
        assert!(matches!(err, Error::Diagnostics { .. }));
        assert_eq!(
            err.to_string(),
            "rhat(strategy=Multichain) requires K>=2; got K=1. Use the default strategy Auto or Split for single-chain input."
        );
        assert_eq!(RhatStrategy::default(), RhatStrategy::Auto);
    }

    #[test]
    fn badly_shaped_arrays_are_errors() {
        let one_axis = ArrayD::<f64>::zeros(IxDyn(&[10]));
        let zero_axes = ArrayD::<f64>::zeros(IxDyn(&[]));
        let no_chains = ArrayD::<f64>::zeros(IxDyn(&[0, 10, 2]));
        let no_draws = ArrayD::<f64>::zeros(IxDyn(&[3, 0]));
        let mut all: Vec<(&str, ArrayFn)> = pairs().iter().map(|(n, f, _)| (*n, *f)).collect();
        all.push(("rhat", |c| rhat(c, RhatStrategy::Split)));
        all.push(("rhat", |c| rhat(c, RhatStrategy::Multichain)));
        for (name, f) in all {
            let msg = |a: &ArrayD<f64>| match f(a.view()) {
                Err(Error::Diagnostics { reason, .. }) => reason,
                other => panic!("{name}: expected a diagnostics error, got {other:?}"),
            };
            assert_eq!(
                msg(&one_axis),
                format!("{name} expects a (K, N, *param) array; got shape [10]")
            );
            assert_eq!(
                msg(&zero_axes),
                format!("{name} expects a (K, N, *param) array; got shape []")
            );
            assert_eq!(
                msg(&no_chains),
                format!("{name} needs at least one chain; got shape [0, 10, 2] (K=0)")
            );
            assert_eq!(
                msg(&no_draws),
                format!("{name} needs at least one draw per chain; got shape [3, 0] (N=0)")
            );
        }
    }

    #[test]
    fn degenerate_components_are_nan_not_errors() {
        // 3 draws per chain: too few for any diagnostic.
        let x = draws(&[2, 3, 2], 7);
        for (name, f, _) in pairs() {
            let got = f(x.view()).unwrap();
            assert!(got.iter().all(|v| v.is_nan()), "{name}: {got}");
        }
    }

    /// One arviz reference case (`runtime/tests/data/arviz_reference.json`)
    /// through the array API, as a `(K, N, 1)` parameter and a scalar one.
    #[test]
    fn an_arviz_reference_case_through_the_array_api() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/arviz_reference.json"
        );
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let number = |v: &serde_json::Value| -> f64 { v.as_str().unwrap().parse().unwrap() };
        let case = data["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "ar1_phi09_4x1000")
            .expect("reference case present");
        let (k, n) = (
            case["chains"].as_u64().unwrap() as usize,
            case["draws"].as_u64().unwrap() as usize,
        );
        let values: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(number)
            .collect();
        let x = Array3::from_shape_vec((k, n, 1), values)
            .unwrap()
            .into_dyn();
        let scalar = x.index_axis(Axis(2), 0).to_owned();
        let checks: [(&str, ArrayFn); 6] = [
            ("rhat", |c| rhat(c, RhatStrategy::Multichain)),
            ("ess_bulk", ess_bulk),
            ("ess_tail", ess_tail),
            ("ess_bulk", ess),
            ("mcse_mean", mcse_mean),
            ("mcse_sd", mcse_sd),
        ];
        for (key, f) in checks {
            let want = number(&case["expected"][key]);
            for got in [f(x.view()).unwrap()[[0]], f(scalar.view()).unwrap()[[]]] {
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs(),
                    "{key}: got {got:e}, arviz {want:e}"
                );
            }
        }
    }
}
