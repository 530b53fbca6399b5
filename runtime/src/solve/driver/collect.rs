//! Step 5 of a solve: the draws and diagnostics read out of the chains'
//! buffers into each model's posterior, chain 0's last position written
//! back to the models, and the per-model report.

use std::sync::Arc;

use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::{DiagKind, DiagName, ModelSlots};
use ndarray::{Array2, ArrayD, IxDyn};

use super::super::resolve::Resolved;
use super::init::ThetaLayout;
use super::plan::{Member, Plan};
use crate::error::Result;
use crate::model::{Diagnostics, LeafSamples, ModelResults, Posterior};
use crate::solve::options::ModelReport;

/// Reads every model's posterior out of `bufs`, stores it on the model
/// (with chain 0's last position as its value) and reports on it.
pub(crate) fn collect(
    plan: &Plan,
    bufs: &[ChainBuffers],
) -> Result<(Vec<Arc<Posterior>>, Vec<ModelReport>)> {
    let mut posteriors = Vec::new();
    let mut reports = Vec::new();
    ThetaLayout::new(&plan.chunk, &plan.members).write_back(bufs[0].state())?;
    for m in plan.members.iter().filter(|m| m.sampled().is_none()) {
        // An optimised model: a point estimate, no posterior.
        m.leaves[0]
            .cell()
            .set_results(ModelResults { posterior: None });
    }
    for (s, r, slots) in plan.sampled() {
        let post = Arc::new(posterior(s, r, slots, bufs));
        reports.push(report(&post, r));
        s.leaves[0].cell().set_results(ModelResults {
            posterior: Some(post.clone()),
        });
        posteriors.push(post);
    }
    Ok((posteriors, reports))
}

fn posterior(s: &Member, r: &Resolved, slots: &ModelSlots, bufs: &[ChainBuffers]) -> Posterior {
    let k = bufs.len();
    let n = r.keep;
    let mut leaves = Vec::new();
    let mut at = 0;
    for p in &s.leaves {
        let mut shape = vec![k, n];
        shape.extend(p.shape());
        let mut data = Vec::with_capacity(k * n * p.len());
        for b in bufs {
            for d in 0..n {
                let row = slots.draws + d * s.len + at;
                data.extend_from_slice(&b.draws()[row..row + p.len()]);
            }
        }
        leaves.push(LeafSamples {
            name: p.name().to_string(),
            samples: ArrayD::from_shape_vec(IxDyn(&shape), data)
                .expect("k chains x n draws x the leaf's entries were copied"),
        });
        at += p.len();
    }
    let nf = slots.fields.len();
    let diagnostics = (nf > 0).then(|| {
        Diagnostics::new(
            slots
                .fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let a = Array2::from_shape_fn((k, n), |(c, d)| {
                        let v = bufs[c].diag()[slots.diag + d * nf + j];
                        match f.kind {
                            DiagKind::Bool => (v != 0.0) as u8 as f64,
                            DiagKind::Float | DiagKind::Int => v,
                        }
                    });
                    (f.name.to_string(), a)
                })
                .collect(),
        )
    });
    let inverse_mass = slots.inverse_mass..slots.inverse_mass + s.len;
    Posterior {
        model: s.name.clone(),
        model_id: s.id,
        kernel: r.kernel.name().to_string(),
        leaves,
        diagnostics,
        step_size: bufs.iter().map(|b| b.state()[slots.step_size]).collect(),
        inverse_mass: bufs
            .iter()
            .map(|b| b.state()[inverse_mass.clone()].to_vec())
            .collect(),
    }
}

fn report(p: &Posterior, r: &Resolved) -> ModelReport {
    let d = p.diagnostics.as_ref();
    let mean = |a: ndarray::ArrayView2<'_, f64>| {
        let v: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    ModelReport {
        name: p.model.clone(),
        kernel: p.kernel.clone(),
        num_draws: r.keep,
        divergences: d
            .and_then(|d| d.get(DiagName::IsDivergent.name()))
            .map(|a| a.iter().filter(|x| **x != 0.0).count()),
        mean_acceptance: d.and_then(|d| d.acceptance_rate()).map(mean),
        mean_energy: d.and_then(|d| d.energy()).map(mean),
        step_size: p.step_size.clone(),
    }
}

/// The closing line of each model: divergences, acceptance, energy.
pub(crate) fn log_reports(reports: &[ModelReport], k: usize, log: &dyn Fn(String)) {
    for r in reports {
        let mut parts = Vec::new();
        if let Some(d) = r.divergences {
            let total = r.num_draws * k;
            parts.push(format!(
                "{d}/{total} divergent ({:.2}%)",
                100.0 * d as f64 / total as f64
            ));
        }
        if let Some(a) = r.mean_acceptance {
            parts.push(format!("mean_accept={a:.3}"));
        }
        if let Some(e) = r.mean_energy {
            parts.push(format!("mean_energy={e:.3}"));
        }
        if parts.is_empty() {
            parts.push(format!("{} draws", r.num_draws));
        }
        log(format!("Model '{}': {}", r.name, parts.join(", ")));
    }
}
