//! A prior evaluated on its own: the same expression the log-density
//! uses, traced and run by the reference interpreter on given values.

use crux_ir::graph::eval;
use ndarray::ArrayViewD;

use crate::compile::trace::{NoiseTable, Tracer};
use crate::error::{Error, Result};
use crate::model::{Param, Prior};

impl Prior {
    /// The log-prior of a model whose leaves have the values `leaves` (in
    /// the model's leaf order; each array's shape is the leaf's, so fan-in
    /// aware priors see the right fan-in). Unnormalised, as in the
    /// log-density: `Prior::gaussian(σ)` gives `−Σθ²/(2σ²)`.
    ///
    /// ```
    /// use crux::Prior;
    /// use ndarray::arr1;
    ///
    /// let lp = Prior::gaussian(2.0).log_density(&[arr1(&[1.0, 2.0]).into_dyn().view()])?;
    /// assert_eq!(lp, -(1.0 + 4.0) / 8.0);
    /// # Ok::<(), crux::Error>(())
    /// ```
    pub fn log_density(&self, leaves: &[ArrayViewD<'_, f64>]) -> Result<f64> {
        let params: Vec<Param> = leaves
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = Param::new(format!("leaf{i}"), v.shape());
                p.set_values(&v.iter().copied().collect::<Vec<f64>>())?;
                Ok(p)
            })
            .collect::<Result<_>>()?;
        let e = self.log_prior(&params)?;
        let mut t = Tracer::new(0, NoiseTable::default());
        let out = t.trace(&e)?;
        t.graph.set_output("value", out);
        let v = eval(&t.graph, &[])?;
        v.first()
            .and_then(|t| t.data.first().copied())
            .ok_or_else(|| Error::InvalidArgument {
                what: "prior".into(),
                reason: "its log-density has no value (a custom prior must return one number)"
                    .into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{arr1, arr2};

    use super::*;
    use crate::compile::problem::Problem as Crux;
    use crate::{Domain, Net};

    /// Each factory's log-density on a small network equals its formula.
    #[test]
    fn log_priors_match_their_formulas() {
        let d = Domain::line(0.0, 1.0, 0.5).unwrap();
        let x = d.variable("interior").unwrap();
        let net = Net::mlp(1, 1, 3, 1, crate::Activation::Tanh, 5).unwrap();
        let p = Crux::new([net.call(&[&x]).mse()]).unwrap();
        let leaves = crate::Model::leaves(&net);
        let eval = |prior: &Prior| p.eval(&prior.log_prior(&leaves).unwrap()).unwrap()[[]];
        let fold = |f: &dyn Fn(&Param, f64) -> f64| -> f64 {
            leaves
                .iter()
                .map(|l| l.values().iter().map(|v| f(l, *v)).sum::<f64>())
                .sum()
        };
        let close =
            |a: f64, b: f64| assert!((a - b).abs() <= 1e-13 * b.abs().max(1.0), "{a} vs {b}");

        close(eval(&Prior::default()), fold(&|_, v| -0.5 * v * v / 100.0));
        close(
            eval(&Prior::gaussian(2.0).fan_in_aware()),
            fold(&|l, v| {
                let k = if l.shape().len() >= 2 {
                    l.fan_in() as f64
                } else {
                    1.0
                };
                -0.5 * v * v * k / 4.0
            }),
        );
        close(eval(&Prior::laplace(0.5)), fold(&|_, v| -v.abs() / 0.5));
        close(
            eval(&Prior::student_t(4.0, 2.0)),
            fold(&|_, v| -2.5 * (v * v / 16.0).ln_1p()),
        );
        close(
            eval(
                &Prior::layerwise_gaussian()
                    .base_sigma(1.5)
                    .default_sigma(0.7),
            ),
            fold(&|l, v| {
                let inv = if l.shape().len() >= 2 {
                    l.fan_in() as f64 / 2.25
                } else {
                    1.0 / 0.49
                };
                -0.5 * v * v * inv
            }),
        );
        // A custom prior: the L½ prior of the spec.
        let l_half = Prior::custom("l_half", |leaves| {
            let mut t = crate::Expr::scalar(0.0);
            for l in leaves {
                t = t + l.abs().sqrt().sum();
            }
            -t
        });
        close(eval(&l_half), fold(&|_, v| -v.abs().sqrt()));
        // A custom prior must return a scalar.
        let bad = Prior::custom("vector", |leaves| leaves[0].clone());
        assert!(bad.log_prior(&leaves).is_err());
    }

    #[test]
    fn priors_evaluate_on_their_own() {
        let w = arr2(&[[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]]).into_dyn();
        let b = arr1(&[0.25, -1.0, 2.0]).into_dyn();
        let leaves = [w.view(), b.view()];
        let sq = |a: &ndarray::ArrayD<f64>| a.iter().map(|x| x * x).sum::<f64>();
        let lp = |p: Prior| p.log_density(&leaves).unwrap();
        assert_eq!(lp(Prior::flat()), 0.0);
        let want = -0.5 * (sq(&w) + sq(&b)) / 100.0;
        assert!((lp(Prior::default()) - want).abs() <= 1e-15 * want.abs());
        // Layer-wise defaults: base 1 (fan-in 2 for the weight), default 1.
        let want = -0.5 * (2.0 * sq(&w) + sq(&b));
        assert!((lp(Prior::layerwise_gaussian()) - want).abs() <= 1e-15 * want.abs());
        let want = -0.5 * 2.0 * (sq(&w) + sq(&b)) / 4.0;
        let got = Prior::gaussian(2.0)
            .fan_in_aware()
            .log_density(&[w.view()])
            .unwrap();
        assert!((got - -0.5 * 2.0 * sq(&w) / 4.0).abs() <= 1e-15 * want.abs());
        // Invalid parameters are errors, not NaN.
        assert!(Prior::laplace(0.0).log_density(&leaves).is_err());
    }
}
