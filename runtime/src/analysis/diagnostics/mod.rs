//! Convergence diagnostics of MCMC chains: rank-normalised split R-hat,
//! bulk and tail effective sample sizes, Monte Carlo standard error and
//! quantiles.
//!
//! Every function takes the draws of **one scalar quantity** shaped
//! `(chains, draws)` and reproduces ArviZ (checked against arviz 0.23.4
//! with numpy 2.4.6 and scipy 1.17.1 to 1e-9 relative; see
//! `runtime/tests/data/make_arviz_reference.py`):
//!
//! | here | arviz |
//! |---|---|
//! | [`rhat`] | `az.rhat(x, method="rank")` |
//! | [`ess_bulk`] | `az.ess(x, method="bulk")` |
//! | [`ess_tail`] | `az.ess(x, method="tail")` |
//! | [`ess_mean`] | `az.ess(x, method="mean")` |
//! | [`ess_sd`] | `az.ess(x, method="sd")` |
//! | [`mcse_mean`] | `az.mcse(x, method="mean")` |
//! | [`mcse_sd`] | `az.mcse(x, method="sd")` |
//! | [`quantile`] | `np.quantile(x, q)` (linear, "type 7") |
//!
//! The estimators are those of Vehtari, Gelman, Simpson, Carpenter and
//! Bürkner (2021), "Rank-normalization, folding, and localization: an
//! improved R-hat for assessing convergence of MCMC", *Bayesian Analysis*
//! 16(2). Chains are split in halves; with an odd number of draws the
//! middle draw is dropped (arviz keeps the first `n / 2` and the last
//! `n / 2` draws).
//!
//! # Degenerate inputs
//!
//! Nothing panics. Like arviz, every diagnostic returns NaN when the input
//! holds a NaN, has fewer than 4 draws per chain, or (for [`rhat`] only)
//! fewer than 2 chains. Where arviz defines a value, so do these functions:
//!
//! * constant draws: [`rhat`] is NaN (0/0), the ESS functions return
//!   `chains · 2⌊draws/2⌋` (the draw count after splitting) and
//!   [`mcse_mean`] is 0 and [`mcse_sd`] is NaN (0/0, as in arviz);
//! * chains each constant but at different values: [`rhat`] is `+∞`
//!   (arviz gives `+∞` or, depending on how a chain's mean rounds, a
//!   finite ~1e15);
//! * a few infinite draws: rank-based [`rhat`], [`ess_bulk`] and [`ess_tail`]
//!   stay finite, while [`ess_mean`], [`ess_sd`], [`mcse_mean`] and
//!   [`mcse_sd`] are NaN.

use ndarray::ArrayView2;

#[cfg(test)]
mod tests;

/// Posterior summary of one scalar quantity: what is needed to judge a run
/// (like `az.summary`, with 5%/95% quantiles in place of its HDI).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Mean over all draws of all chains.
    pub mean: f64,
    /// Standard deviation over all draws pooled (`ddof = 1`).
    pub sd: f64,
    /// 5% quantile of the pooled draws (see [`quantile`]).
    pub q05: f64,
    /// 95% quantile of the pooled draws (see [`quantile`]).
    pub q95: f64,
    /// Rank-normalised split R-hat (see [`rhat`]).
    pub rhat: f64,
    /// Bulk effective sample size (see [`ess_bulk`]).
    pub ess_bulk: f64,
    /// Tail effective sample size (see [`ess_tail`]).
    pub ess_tail: f64,
    /// Monte Carlo standard error of the mean (see [`mcse_mean`]).
    pub mcse_mean: f64,
}

/// Summarises the draws `(chains, draws)` of one scalar quantity: pooled
/// mean, sd, 5%/95% quantiles and the convergence diagnostics, so a run
/// can be judged at a glance. Degenerate inputs give NaN fields as
/// documented on each function; an empty input gives NaN everywhere.
///
/// With one chain, `rhat` is that of the chain's two halves taken as two
/// chains (the reference library's `"auto"` strategy for K = 1), so a
/// single run still gets a stationarity check; arviz itself returns NaN.
pub fn summarize(draws: ArrayView2<f64>) -> Summary {
    let flat = Chains::from_view(draws).data;
    let (k, n) = draws.dim();
    let r = if k == 1 && n >= 8 {
        rhat(split_halves(draws).view())
    } else {
        rhat(draws)
    };
    Summary {
        mean: mean(&flat),
        sd: variance(&flat, 1).sqrt(),
        q05: quantile(&flat, 0.05),
        q95: quantile(&flat, 0.95),
        rhat: r,
        ess_bulk: ess_bulk(draws),
        ess_tail: ess_tail(draws),
        mcse_mean: mcse_mean(draws),
    }
}

/// The `2K` half-chains of `draws` shaped `(K, N)`: the first `⌊N/2⌋`
/// draws of every chain, then the last `⌊N/2⌋` draws of every chain (an
/// odd middle draw dropped, as arviz splits).
pub fn split_halves(draws: ArrayView2<f64>) -> ndarray::Array2<f64> {
    let (k, n) = draws.dim();
    let h = n / 2;
    ndarray::Array2::from_shape_fn((2 * k, h), |(c, i)| {
        if c < k {
            draws[[c, i]]
        } else {
            draws[[c - k, n - h + i]]
        }
    })
}

/// Rank-normalised split R-hat (Vehtari et al. 2021) of draws shaped
/// `(chains, draws)`: the larger of the bulk R-hat of the rank-normalised
/// split chains and the tail R-hat of the rank-normalised folded split
/// chains (`|x − median|`). Values near 1 (below 1.01) indicate the chains
/// agree; it is `az.rhat(x, method="rank")`.
///
/// Returns NaN for fewer than 2 chains, fewer than 4 draws per chain, any
/// NaN draw, or constant draws; `+∞` when every chain is constant but the
/// chains differ (where arviz may round to a finite ~1e15). If only the tail R-hat is NaN (folded draws all equal)
/// the bulk value is returned, as arviz's Python `max` does.
pub fn rhat(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 2) else {
        return f64::NAN;
    };
    let split = chains.split();
    let bulk = rhat_plain(&split.map_all(z_scale));
    let med = median(&split.data);
    let folded = split.map(|x| (x - med).abs());
    let tail = rhat_plain(&folded.map_all(z_scale));
    py_max(bulk, tail)
}

/// Bulk effective sample size: the ESS of the rank-normalised split
/// chains, which measures how well the centre of the distribution is
/// explored even for heavy tails. It is `az.ess(x, method="bulk")`.
///
/// NaN for fewer than 4 draws per chain or any NaN draw; for constant draws
/// it is the number of draws after splitting.
pub fn ess_bulk(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    ess_plain(&chains.split().map_all(z_scale))
}

/// Tail effective sample size: the smaller of the ESS of the indicators
/// `x ≤ q₀.₀₅` and `x ≤ q₀.₉₅` on split chains, which measures how well
/// the 90% interval ends are estimated. It is `az.ess(x, method="tail")`
/// (quantiles as arviz takes them, scipy's `mquantiles` type 7).
///
/// NaN for fewer than 4 draws per chain or any NaN draw.
pub fn ess_tail(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    let mut sorted = chains.data.clone();
    sorted.sort_by(f64::total_cmp);
    let ess_at = |prob: f64| {
        let q = mquantile(&sorted, prob);
        let indicator = chains.map(|x| if x <= q { 1.0 } else { 0.0 });
        ess_plain(&indicator.split())
    };
    py_min(ess_at(0.05), ess_at(0.95))
}

/// Effective sample size of the mean: the ESS of the split chains without
/// rank normalisation, which is what the Monte Carlo error of the mean
/// depends on. It is `az.ess(x, method="mean")`.
///
/// NaN for fewer than 4 draws per chain, any NaN draw or any infinite draw.
pub fn ess_mean(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    ess_plain(&chains.split())
}

/// Monte Carlo standard error of the mean, `sd / √ess_mean` with `sd` the
/// pooled standard deviation (`ddof = 1`): how far the posterior mean
/// estimate may be from the true mean. It is `az.mcse(x, method="mean")`.
///
/// NaN whenever [`ess_mean`] is; 0 for constant draws.
pub fn mcse_mean(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    let sd = variance(&chains.data, 1).sqrt();
    sd / ess_plain(&chains.split()).sqrt()
}

/// Effective sample size of the standard deviation: the ESS of the split
/// chains of the squared deviations `(x − x̄)²` from the pooled mean, which
/// is what the Monte Carlo error of the sd depends on. It is
/// `az.ess(x, method="sd")`.
///
/// NaN for fewer than 4 draws per chain, any NaN draw or any infinite draw;
/// for constant draws it is the number of draws after splitting.
pub fn ess_sd(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    ess_plain(&squared_deviations(&chains).split())
}

/// Monte Carlo standard error of the standard deviation, by the delta
/// method on the variance: with `s = (x − x̄)²` (pooled mean `x̄`),
/// `E = mean(s)`, `Var(E) = (mean(s²) − E²) / ess_sd` and
/// `mcse_sd = √(Var(E) / E / 4)`. It is `az.mcse(x, method="sd")`
/// (arviz 0.23.4's `_mcse_sd`, same operations in the same order).
///
/// NaN for fewer than 4 draws per chain, any NaN draw, any infinite draw,
/// or constant draws (0/0).
pub fn mcse_sd(draws: ArrayView2<f64>) -> f64 {
    let Some(chains) = Chains::valid(draws, 1) else {
        return f64::NAN;
    };
    let sims_c2 = squared_deviations(&chains);
    let ess = ess_plain(&sims_c2.split());
    let evar = mean(&sims_c2.data);
    let fourth: Vec<f64> = sims_c2.data.iter().map(|&s| s * s).collect();
    let varvar = (mean(&fourth) - evar * evar) / ess;
    let varsd = varvar / evar / 4.0;
    varsd.sqrt()
}

/// The `q`-quantile of `values` by linear interpolation between order
/// statistics (numpy's default `np.quantile`, Hyndman–Fan type 7), so
/// summaries match numpy and arviz.
///
/// NaN when `values` is empty or holds a NaN, or `q` is outside `[0, 1]`
/// (numpy raises there). Infinite values take part as numpy's
/// interpolation makes them (which may give NaN next to an infinity).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || !(0.0..=1.0).contains(&q) || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let (lo, hi) = if virtual_index >= (n - 1) as f64 {
        (n - 1, n - 1)
    } else {
        (below as usize, below as usize + 1)
    };
    // numpy's `_lerp`: interpolate from the nearer end.
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Draws of one quantity, row-major `(chains, draws)`.
#[derive(Clone, Debug)]
struct Chains {
    data: Vec<f64>,
    chains: usize,
    draws: usize,
}

impl Chains {
    fn from_view(view: ArrayView2<f64>) -> Self {
        let (chains, draws) = view.dim();
        Chains {
            data: view.iter().copied().collect(),
            chains,
            draws,
        }
    }

    /// arviz's `not_valid`: at least `min_chains` chains, 4 draws, no NaN.
    fn valid(view: ArrayView2<f64>, min_chains: usize) -> Option<Self> {
        let (chains, draws) = view.dim();
        if chains < min_chains.max(1) || draws < 4 || view.iter().any(|v| v.is_nan()) {
            return None;
        }
        Some(Self::from_view(view))
    }

    fn row(&self, c: usize) -> &[f64] {
        &self.data[c * self.draws..(c + 1) * self.draws]
    }

    /// arviz's `_split_chains`: the first halves of all chains, then the
    /// last halves (the middle draw of an odd count dropped).
    fn split(&self) -> Self {
        let half = self.draws / 2;
        let mut data = Vec::with_capacity(2 * half * self.chains);
        for c in 0..self.chains {
            data.extend_from_slice(&self.row(c)[..half]);
        }
        for c in 0..self.chains {
            data.extend_from_slice(&self.row(c)[self.draws - half..]);
        }
        Chains {
            data,
            chains: 2 * self.chains,
            draws: half,
        }
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Chains {
            data: self.data.iter().map(|&x| f(x)).collect(),
            ..*self
        }
    }

    fn map_all(&self, f: impl Fn(&[f64]) -> Vec<f64>) -> Self {
        Chains {
            data: f(&self.data),
            ..*self
        }
    }
}

/// arviz's `(ary - ary.mean()) ** 2`: squared deviations from the pooled
/// mean (numpy's pairwise mean, so the values round as arviz's do).
fn squared_deviations(c: &Chains) -> Chains {
    let m = mean(&c.data);
    c.map(|x| (x - m) * (x - m))
}

/// Python's `max(a, b)`: `b` only if `b > a`, so a NaN `a` wins.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: `b` only if `b < a`, so a NaN `a` wins.
fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// numpy's pairwise summation (`pairwise_sum` in its reduction loops), so
/// sums, means and variances round as numpy's do; this matters in
/// degenerate cases such as constant chains, where numpy's variance is
/// exactly 0.
fn np_sum(x: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = x.len();
    if n < 8 {
        let mut s = -0.0;
        for &v in x {
            s += v;
        }
        s
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&x[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for (acc, &v) in r.iter_mut().zip(&x[i..i + 8]) {
                *acc += v;
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &x[i..] {
            s += v;
        }
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&x[..n2]) + np_sum(&x[n2..])
    }
}

/// numpy's `mean` (NaN when empty).
fn mean(x: &[f64]) -> f64 {
    np_sum(x) / x.len() as f64
}

/// numpy's `var(x, ddof)` (two-pass; NaN when `len ≤ ddof`), except that
/// equal finite values give exactly 0, where numpy's mean may round off
/// the common value and leave a variance of ~1e-32.
fn variance(x: &[f64], ddof: usize) -> f64 {
    if x.len() <= ddof {
        return f64::NAN;
    }
    if x[0].is_finite() && x.iter().all(|&v| v == x[0]) {
        return 0.0;
    }
    let m = mean(x);
    let sq: Vec<f64> = x.iter().map(|&v| (v - m) * (v - m)).collect();
    np_sum(&sq) / (x.len() - ddof) as f64
}

/// numpy's `median` of all values (no NaN among them).
fn median(x: &[f64]) -> f64 {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// scipy's `mquantiles(x, prob, alphap=1, betap=1)` on sorted values, the
/// quantile arviz uses for the tail ESS (same type 7 as [`quantile`] but
/// interpolated as `(1 − γ)·x[k−1] + γ·x[k]`, which rounds differently).
fn mquantile(sorted: &[f64], prob: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    // `m = alphap + p·(1 − alphap − betap)` with alphap = betap = 1 (exact).
    let m = 1.0 - prob;
    let aleph = n as f64 * prob + m;
    let k = aleph.clamp(1.0, (n - 1) as f64).floor() as usize;
    let gamma = (aleph - k as f64).clamp(0.0, 1.0);
    (1.0 - gamma) * sorted[k - 1] + gamma * sorted[k]
}

/// arviz's `_z_scale`: average ranks over all values (ties share their
/// mean rank), Blom's offset `(r − 3/8) / (n + 1/4)`, then the normal
/// quantile function. Any NaN makes every output NaN (arviz's result is
/// NaN downstream in that case too).
fn z_scale(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if x.iter().any(|v| v.is_nan()) {
        return vec![f64::NAN; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut z = vec![0.0; n];
    let denom = n as f64 - 2.0 * 0.375 + 1.0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // 1-based ranks start+1 ..= end share their average.
        let rank = 0.5 * ((start + 1 + end) as f64);
        let value = ndtri((rank - 0.375) / denom);
        for &i in &order[start..end] {
            z[i] = value;
        }
        start = end;
    }
    z
}

/// arviz's `_rhat`: classic (non-split) R-hat of the given chains.
fn rhat_plain(c: &Chains) -> f64 {
    if c.data.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let n = c.draws as f64;
    let chain_means: Vec<f64> = (0..c.chains).map(|i| mean(c.row(i))).collect();
    let chain_vars: Vec<f64> = (0..c.chains).map(|i| variance(c.row(i), 1)).collect();
    let between = n * variance(&chain_means, 1);
    let within = mean(&chain_vars);
    ((between / within + n - 1.0) / n).sqrt()
}

/// arviz's `_ess`: effective sample size of the given chains with Geyer's
/// initial positive and initial monotone sequences. Constant input (range
/// below 1e-15) returns the number of values.
fn ess_plain(c: &Chains) -> f64 {
    if c.data.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let max = c.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = c.data.iter().copied().fold(f64::INFINITY, f64::min);
    if max - min < 1e-15 {
        return c.data.len() as f64;
    }
    let (n_chain, n_draw) = (c.chains, c.draws);
    let nd = n_draw as f64;
    let acov = autocov(c);
    let lag_mean = |t: usize| mean(&acov[t * n_chain..(t + 1) * n_chain]);
    let chain_means: Vec<f64> = (0..n_chain).map(|i| mean(c.row(i))).collect();
    let mean_var = lag_mean(0) * nd / (nd - 1.0);
    let mut var_plus = mean_var * (nd - 1.0) / nd;
    if n_chain > 1 {
        var_plus += variance(&chain_means, 1);
    }
    let rho = |t: usize| 1.0 - (mean_var - lag_mean(t)) / var_plus;

    let mut rho_hat = vec![0.0; n_draw];
    let mut rho_even = 1.0;
    rho_hat[0] = rho_even;
    let mut rho_odd = rho(1);
    rho_hat[1] = rho_odd;

    // Geyer's initial positive sequence.
    let mut t = 1;
    while t + 3 < n_draw && rho_even + rho_odd > 0.0 {
        rho_even = rho(t + 1);
        rho_odd = rho(t + 2);
        if rho_even + rho_odd >= 0.0 {
            rho_hat[t + 1] = rho_even;
            rho_hat[t + 2] = rho_odd;
        }
        t += 2;
    }
    // `max_t = t - 2` is at least -1; keep it shifted by one to stay unsigned.
    let max_t1 = t - 1;
    if rho_even > 0.0 {
        rho_hat[max_t1] = rho_even;
    }
    // Geyer's initial monotone sequence.
    let mut t = 1;
    while t + 2 < max_t1 {
        if rho_hat[t + 1] + rho_hat[t + 2] > rho_hat[t - 1] + rho_hat[t] {
            rho_hat[t + 1] = (rho_hat[t - 1] + rho_hat[t]) / 2.0;
            rho_hat[t + 2] = rho_hat[t + 1];
        }
        t += 2;
    }
    let size = (n_chain * n_draw) as f64;
    let tau = -1.0 + 2.0 * np_sum(&rho_hat[..max_t1]) + rho_hat[max_t1];
    let tau = py_max(tau, 1.0 / size.log10());
    if rho_hat.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    size / tau
}

/// Autocovariances `acov[k] = Σ_t (x_t − x̄)(x_{t+k} − x̄) / n` of every
/// chain at every lag `k < n`, lag-major (`out[k · chains + chain]`), via
/// zero-padded FFTs (rustfft) as arviz's `autocov` (same values up to
/// rounding). Chains go two at a time through one complex transform,
/// `a + i·b`.
fn autocov(c: &Chains) -> Vec<f64> {
    use rustfft::num_complex::Complex;
    let (chains, n) = (c.chains, c.draws);
    let m = (2 * n).next_power_of_two();
    let mut planner = rustfft::FftPlanner::<f64>::new();
    let (forward, inverse) = (planner.plan_fft_forward(m), planner.plan_fft_inverse(m));
    let scale = 1.0 / (m as f64 * n as f64);
    let mut out = vec![0.0; n * chains];
    let zero = Complex::new(0.0, 0.0);
    let (mut z, mut p) = (vec![zero; m], vec![zero; m]);
    for first in (0..chains).step_by(2) {
        let second = (first + 1 < chains).then_some(first + 1);
        z.fill(zero);
        let a = c.row(first);
        let mu = mean(a);
        for (r, &v) in z.iter_mut().zip(a) {
            r.re = v - mu;
        }
        if let Some(second) = second {
            let b = c.row(second);
            let mu = mean(b);
            for (i, &v) in z.iter_mut().zip(b) {
                i.im = v - mu;
            }
        }
        forward.process(&mut z);
        // With Z = FFT(a + i·b): A_k = (Z_k + conj Z_{−k}) / 2 and
        // B_k = (Z_k − conj Z_{−k}) / 2i, so the power spectra are
        for k in 0..m {
            let (x, y) = (z[k], z[(m - k) % m]);
            let pa = 0.25 * ((x.re + y.re) * (x.re + y.re) + (x.im - y.im) * (x.im - y.im));
            let pb = 0.25 * ((x.re - y.re) * (x.re - y.re) + (x.im + y.im) * (x.im + y.im));
            p[k] = Complex::new(pa, pb);
        }
        // Both spectra are real and even, so one inverse transform of
        // |A|² + i·|B|² gives both autocovariances (real and imaginary parts).
        inverse.process(&mut p);
        for k in 0..n {
            out[k * chains + first] = p[k].re * scale;
            if let Some(second) = second {
                out[k * chains + second] = p[k].im * scale;
            }
        }
    }
    out
}

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `Φ(−x)` for `x ≥ 0`, the standard normal lower tail, to a few ulps:
/// the Taylor series `Φ(x) − ½ = φ(x) Σ x^(2k+1)/(2k+1)!!` below 2.5 and
/// Laplace's continued fraction `φ(x) / (x + 1/(x + 2/(x + 3/(x + …))))`
/// above.
fn normal_lower_tail(x: f64) -> f64 {
    let pdf = (-0.5 * x * x).exp() * INV_SQRT_2PI;
    if x < 2.5 {
        let x2 = x * x;
        let (mut term, mut sum) = (x, x);
        let mut k = 1.0;
        while term > 1e-17 * sum {
            term *= x2 / (2.0 * k + 1.0);
            sum += term;
            k += 1.0;
        }
        0.5 - pdf * sum
    } else {
        let mut t = x;
        for k in (1..=80).rev() {
            t = x + k as f64 / t;
        }
        pdf / t
    }
}

/// The standard normal quantile function (scipy's `ndtri`): a rational
/// start (Abramowitz & Stegun 26.2.23, error below 4.5e-4) polished by
/// two Halley steps on the lower tail (cubic convergence), so it is accurate to ~1e-14
/// absolute. `p = ½` gives exactly 0 (as for the tied ranks of constant
/// draws), `p ∈ {0, 1}` gives `∓∞` and `p` outside `[0, 1]` NaN.
fn ndtri(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // 1 − p is exact for p ≥ ½ (Sterbenz), so the tail is solved exactly.
    let q = p.min(1.0 - p);
    let t = (-2.0 * q.ln()).sqrt();
    let mut x = t
        - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
            / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t);
    for _ in 0..2 {
        let pdf = (-0.5 * x * x).exp() * INV_SQRT_2PI;
        let r = (normal_lower_tail(x) - q) / pdf;
        x += r / (1.0 - 0.5 * x * r);
    }
    if p < 0.5 {
        -x
    } else {
        x
    }
}
