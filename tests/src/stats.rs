//! Monte-Carlo-error tolerances for the statistical tests.

use crux::diagnostics::mcse_mean;
use ndarray::Array2;

/// Asserts that the mean of the `(K, N)` draws `q` equals `exact` within
/// 4 Monte Carlo standard errors (arviz's `mcse_mean`, ESS-based).
///
/// # Panics
///
/// When it does not (the assertion), or when `q` is empty.
pub fn within_4_mcse(q: &Array2<f64>, exact: f64, what: &str) {
    let m = q
        .mean()
        .expect("the draws of a statistical test are not empty");
    let se = mcse_mean(q.view());
    assert!(
        (m - exact).abs() <= 4.0 * se,
        "{what}: {m} vs exact {exact} (mcse {se}, {:.1} se)",
        (m - exact) / se
    );
}
