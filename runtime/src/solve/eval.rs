//! Chain-aware evaluation: an expression that depends on a sampled model
//! is pushed forward through every draw, `(K, N, *point_shape)`, by a
//! compiled kernel (the expression lowered once, called per draw).

use std::collections::HashSet;

use ndarray::{ArrayD, IxDyn};

use crate::compile::pushforward::Pushforward;
use crate::error::{Error, Result, SamplesError};
use crate::model::expr::IntoExpr;
use crate::model::expr::{Expr, Kind};
use crate::model::param::Param;
use crate::solve::problem::Crux;

/// Which values [`Crux::eval_samples`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Samples {
    /// Per expression: the chain if it depends on a sampled model, else
    /// the point value.
    #[default]
    Auto,
    /// Every expression over the chain; an error if none depends on a
    /// sampled model.
    Chain,
    /// The current values (after a solve: chain 0's last draw).
    Point,
}

/// Sampled leaves an expression reads, in leaf order.
fn sampled_leaves(e: &Expr) -> Vec<Param> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for n in Expr::post_order(&[e]) {
        if let Kind::Leaf(p) = n.kind() {
            if p.cell().results().posterior.is_some() && seen.insert(p.leaf_id()) {
                out.push(p.clone());
            }
        }
    }
    out.sort_by_key(Param::leaf_id);
    out
}

/// Evaluates expressions chain-aware (see [`Samples`]); the body of
/// [`Crux::eval_samples`].
pub(crate) fn eval_samples<E: IntoExpr>(
    crux: &Crux,
    exprs: impl IntoIterator<Item = E>,
    samples: Samples,
) -> Result<Vec<ArrayD<f64>>> {
    let exprs: Vec<Expr> = exprs.into_iter().map(IntoExpr::into_expr).collect();
    let deps: Vec<Vec<Param>> = exprs.iter().map(sampled_leaves).collect();
    if samples == Samples::Chain && deps.iter().all(Vec::is_empty) {
        return Err(Error::Samples {
            reason: SamplesError::NothingSampled,
        });
    }
    exprs
        .iter()
        .zip(&deps)
        .map(|(e, d)| match samples {
            Samples::Point => crux.problem().eval(e),
            Samples::Auto if d.is_empty() => crux.problem().eval(e),
            _ => eval_chain(crux, e, d),
        })
        .collect()
}

/// `e` pushed through every draw of `leaves` (sampled in one solve).
fn eval_chain(crux: &Crux, e: &Expr, leaves: &[Param]) -> Result<ArrayD<f64>> {
    e.check()?;
    // Every leaf's draws, (K, N, len) flattened.
    let mut chains = Vec::new();
    let mut kn: Option<(usize, usize)> = None;
    for p in leaves {
        let post = p
            .cell()
            .results()
            .posterior
            .expect("sampled_leaves selects leaves whose model has a posterior");
        let l = post
            .leaf(p.name())
            .expect("a posterior holds every leaf of its model");
        let s = l.shape();
        if kn.is_some_and(|x| x != (s[0], s[1])) {
            return Err(Error::Samples {
                reason: SamplesError::ChainShapes {
                    expr: e.to_string(),
                    first: kn.unwrap_or_default(),
                    second: (s[0], s[1]),
                },
            });
        }
        kn = Some((s[0], s[1]));
        chains.push(l.as_standard_layout().iter().copied().collect::<Vec<f64>>());
    }
    let (k, n) = kn.unwrap_or((0, 0));
    let mut pf = Pushforward::compile(crux.problem(), e, leaves)?;
    let mut values = Vec::with_capacity(k * n * pf.len());
    for draw in 0..k * n {
        let at: Vec<&[f64]> = leaves
            .iter()
            .zip(&chains)
            .map(|(p, c)| &c[draw * p.len()..(draw + 1) * p.len()])
            .collect();
        values.extend_from_slice(pf.eval(&at)?);
    }
    let point_shape = pf.shape.clone();
    let mut shape = vec![k, n];
    shape.extend(point_shape);
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), values)
        .expect("one point value of pf.len() entries per draw of k chains x n draws"))
}
