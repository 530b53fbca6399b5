//! The three benchmark log-densities and their gradients written by hand in
//! plain Rust: the baseline crux's compiled code is measured against. Each
//! takes the same staged data crux uses (so both sides do the same work),
//! and a test checks each against crux's gradient.

use std::f64::consts::PI;

/// The quick example with `s = sin(πx)`, `c = cos(πx)`, `t` the noisy target.
pub struct Quickstart {
    /// `sin(πxᵢ)`
    pub s: Vec<f64>,
    /// `cos(πxᵢ)`
    pub c: Vec<f64>,
    /// Observations.
    pub t: Vec<f64>,
    /// Likelihood scale.
    pub scale: f64,
}

impl Quickstart {
    /// `log p` and its gradient at `(a, b)`.
    pub fn logp_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (a, b) = (theta[0], theta[1]);
        let (mut sse, mut ga, mut gb) = (0.0, 0.0, 0.0);
        for i in 0..self.s.len() {
            let r = a * self.s[i] + b * self.c[i] - self.t[i];
            sse += r * r;
            ga += r * self.s[i];
            gb += r * self.c[i];
        }
        let k = self.scale / self.s.len() as f64;
        grad[0] = -2.0 * k * ga - a / 100.0;
        grad[1] = -2.0 * k * gb - b / 100.0;
        -k * sse - (a * a + b * b) / 200.0
    }
}

/// The 100-d Gaussian: `log p = −½ θᵀLᵀLθ − θᵀθ/200`.
pub struct Gauss {
    /// `L`, row-major `n × n`.
    pub l: Vec<f64>,
    /// Dimension.
    pub n: usize,
}

impl Gauss {
    /// `log p` and its gradient at `θ`.
    pub fn logp_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.n;
        let mut r = vec![0.0; n];
        let mut sse = 0.0;
        for (j, rj) in r.iter_mut().enumerate() {
            let row = &self.l[j * n..(j + 1) * n];
            *rj = row.iter().zip(theta).map(|(a, b)| a * b).sum();
            sse += *rj * *rj;
        }
        grad.iter_mut()
            .zip(theta)
            .for_each(|(g, t)| *g = -t / 100.0);
        for (j, rj) in r.iter().enumerate() {
            let row = &self.l[j * n..(j + 1) * n];
            for (g, a) in grad.iter_mut().zip(row) {
                *g -= rj * a;
            }
        }
        -0.5 * sse - theta.iter().map(|t| t * t).sum::<f64>() / 200.0
    }
}

/// The Bayesian PINN: MLP 1→32→32→32→1 (tanh); `log p = −½(mean(pde²) +
/// mean(u_b²)) − θᵀθ/200` with `pde = u'' + π² sin(πx)`. The forward pass
/// carries (value, d/dx, d²/dx²) through each layer; the backward pass is the
/// hand-derived adjoint of that recurrence.
pub struct Bpinn {
    /// Interior points.
    pub x: Vec<f64>,
    /// Boundary points.
    pub xb: Vec<f64>,
    /// Layer widths (input first).
    pub widths: Vec<usize>,
}

struct Layer<'a> {
    w: &'a [f64],
    b: &'a [f64],
}

impl Bpinn {
    fn layers<'a>(&self, theta: &'a [f64]) -> Vec<Layer<'a>> {
        let mut off = 0;
        let mut out = Vec::new();
        for win in self.widths.windows(2) {
            let (i, o) = (win[0], win[1]);
            let w = &theta[off..off + o * i];
            off += o * i;
            let b = &theta[off..off + o];
            off += o;
            out.push(Layer { w, b });
        }
        out
    }

    /// Forward (value, first, second derivative) and backward for one point,
    /// given the adjoints of the network output's (u, u', u''); adds the
    /// weight gradient to `grad`; returns (u, u'').
    fn point(
        &self,
        theta: &[f64],
        x: f64,
        adjoint: impl Fn(f64, f64) -> (f64, f64),
        grad: &mut [f64],
    ) -> (f64, f64) {
        let layers = self.layers(theta);
        let nl = layers.len();
        // Per layer: inputs (a, da, dda) and pre-activations (z, dz, ddz), outputs h.
        let mut acts: Vec<[Vec<f64>; 3]> = vec![[vec![x], vec![1.0], vec![0.0]]];
        let mut pre: Vec<[Vec<f64>; 3]> = Vec::with_capacity(nl);
        for (l, layer) in layers.iter().enumerate() {
            let (i, o) = (self.widths[l], self.widths[l + 1]);
            let [a, da, dda] = &acts[l];
            let mut z = layer.b.to_vec();
            let mut dz = vec![0.0; o];
            let mut ddz = vec![0.0; o];
            for r in 0..o {
                for k in 0..i {
                    let w = layer.w[r * i + k];
                    z[r] += w * a[k];
                    dz[r] += w * da[k];
                    ddz[r] += w * dda[k];
                }
            }
            if l + 1 < nl {
                let mut h = vec![0.0; o];
                let mut dh = vec![0.0; o];
                let mut ddh = vec![0.0; o];
                for r in 0..o {
                    let t = z[r].tanh();
                    let s = 1.0 - t * t;
                    h[r] = t;
                    dh[r] = s * dz[r];
                    ddh[r] = s * ddz[r] - 2.0 * t * s * dz[r] * dz[r];
                }
                acts.push([h, dh, ddh]);
            }
            pre.push([z, dz, ddz]);
        }
        let u = pre[nl - 1][0][0];
        let uxx = pre[nl - 1][2][0];
        let (gu, guxx) = adjoint(u, uxx);
        // Backward: adjoints of (z, dz, ddz) of the output layer.
        let mut gz = vec![gu];
        let mut gdz = vec![0.0];
        let mut gddz = vec![guxx];
        let mut offs = Vec::new();
        let mut off = 0;
        for win in self.widths.windows(2) {
            offs.push(off);
            off += win[0] * win[1] + win[1];
        }
        for l in (0..nl).rev() {
            let (i, o) = (self.widths[l], self.widths[l + 1]);
            let [a, da, dda] = &acts[l];
            let (wo, bo) = (offs[l], offs[l] + o * i);
            let mut ga = vec![0.0; i];
            let mut gda = vec![0.0; i];
            let mut gdda = vec![0.0; i];
            for r in 0..o {
                grad[bo + r] += gz[r];
                for k in 0..i {
                    let w = layers[l].w[r * i + k];
                    grad[wo + r * i + k] += gz[r] * a[k] + gdz[r] * da[k] + gddz[r] * dda[k];
                    ga[k] += w * gz[r];
                    gda[k] += w * gdz[r];
                    gdda[k] += w * gddz[r];
                }
            }
            if l == 0 {
                break;
            }
            // Through the tanh of layer l-1: inputs of layer l are its outputs.
            let [z, dz, ddz] = &pre[l - 1];
            let (gh, gdh, gddh) = (ga, gda, gdda);
            gz = vec![0.0; i];
            gdz = vec![0.0; i];
            gddz = vec![0.0; i];
            for r in 0..i {
                let t = z[r].tanh();
                let s = 1.0 - t * t;
                gz[r] = gh[r] * s
                    + gdh[r] * dz[r] * (-2.0 * t * s)
                    + gddh[r]
                        * (ddz[r] * (-2.0 * t * s) - 2.0 * dz[r] * dz[r] * s * (s - 2.0 * t * t));
                gdz[r] = gdh[r] * s + gddh[r] * (-4.0 * t * s * dz[r]);
                gddz[r] = gddh[r] * s;
            }
        }
        (u, uxx)
    }

    /// `log p` and its gradient at `θ`.
    pub fn logp_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        grad.iter_mut()
            .zip(theta)
            .for_each(|(g, t)| *g = -t / 100.0);
        let (n, nb) = (self.x.len() as f64, self.xb.len() as f64);
        let mut pde_sq = 0.0;
        for &x in &self.x {
            let f = PI * PI * (PI * x).sin();
            let (_, uxx) = self.point(theta, x, |_, uxx| (0.0, -(uxx + f) / n), grad);
            pde_sq += (uxx + f) * (uxx + f);
        }
        let mut bc_sq = 0.0;
        for &x in &self.xb {
            let (u, _) = self.point(theta, x, |u, _| (-u / nb, 0.0), grad);
            bc_sq += u * u;
        }
        -0.5 * (pde_sq / n + bc_sq / nb) - theta.iter().map(|t| t * t).sum::<f64>() / 200.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crux_samples::problems::{Bpinn as BpinnProblem, Gauss100, Quickstart as Q};

    fn close(a: &[f64], b: &[f64], tol: f64) {
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale.max(1e-300),
                "component {k}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn handwritten_quickstart_matches_crux() {
        let q = Q::new(42).unwrap();
        let xs = q.problem.eval(&q.x).unwrap();
        let hw = Quickstart {
            s: xs.iter().map(|x| (PI * x).sin()).collect(),
            c: xs.iter().map(|x| (PI * x).cos()).collect(),
            t: q.problem.eval(&q.target).unwrap().iter().copied().collect(),
            scale: 1.0,
        };
        let ld = q.log_density(1.0).unwrap();
        let theta = [1.3, -0.4];
        let (lp, g) = ld.logp_and_grad(&theta).unwrap();
        let mut hg = [0.0; 2];
        let hlp = hw.logp_grad(&theta, &mut hg);
        assert!((lp - hlp).abs() <= 1e-12 * lp.abs());
        close(&g, &hg, 1e-12);
    }

    #[test]
    fn handwritten_gauss_matches_crux() {
        let g = Gauss100::new(1).unwrap();
        let hw = Gauss {
            l: g.factor.clone(),
            n: 100,
        };
        let ld = g.log_density().unwrap();
        let theta: Vec<f64> = (0..100).map(|i| (i as f64).cos()).collect();
        let (lp, gr) = ld.logp_and_grad(&theta).unwrap();
        let mut hg = vec![0.0; 100];
        let hlp = hw.logp_grad(&theta, &mut hg);
        assert!((lp - hlp).abs() <= 1e-10 * lp.abs());
        close(&gr, &hg, 1e-10);
    }

    #[test]
    fn handwritten_bpinn_matches_crux() {
        let bp = BpinnProblem::new(0).unwrap();
        let ld = bp.log_density().unwrap();
        let hw = Bpinn {
            x: (0..=100).map(|i| i as f64 / 100.0).collect(),
            xb: vec![0.0, 1.0],
            widths: vec![1, 32, 32, 32, 1],
        };
        let theta = ld.initial_position().to_vec();
        let (lp, g) = ld.logp_and_grad(&theta).unwrap();
        let mut hg = vec![0.0; theta.len()];
        let hlp = hw.logp_grad(&theta, &mut hg);
        assert!((lp - hlp).abs() <= 1e-10 * lp.abs(), "{lp} vs {hlp}");
        close(&g, &hg, 1e-9);
    }
}
