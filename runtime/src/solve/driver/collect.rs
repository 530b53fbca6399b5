//! Step 5 of a solve: the draws and diagnostics read out of the chains'
//! buffers into each model's posterior, chain 0's last position written
//! back to the models, and the per-model report.

use std::sync::Arc;

use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::{DiagKind, DiagName, ModelSlots};
use ndarray::{Array2, ArrayD, IxDyn};

use super::super::resolve::Resolved;
use super::init::{merge, ThetaLayout};
use super::plan::{Member, Plan};
use crate::error::Result;
use crate::model::{Diagnostics, LeafSamples, ModelId, ModelResults, Param, Posterior};
use crate::solve::options::ModelReport;

/// Reads every sampled model's posterior out of `bufs` (one tree per
/// model, its masked groups together), stores it on the model (with chain
/// 0's last position as its value), clears an optimised model's, and
/// reports on every sampled member.
pub(crate) fn collect(
    plan: &Plan,
    bufs: &[ChainBuffers],
) -> Result<(Vec<Arc<Posterior>>, Vec<ModelReport>)> {
    let mut posteriors = Vec::new();
    let mut reports = Vec::new();
    ThetaLayout::new(&plan.chunk, &plan.members).write_back(bufs[0].state())?;
    let mut seen: Vec<ModelId> = Vec::new();
    for m in &plan.members {
        if seen.contains(&m.id) {
            continue;
        }
        seen.push(m.id);
        let of_model: Vec<(&Member, &ModelSlots)> =
            plan.recorded().filter(|(o, _)| o.id == m.id).collect();
        let sampled: Vec<(&Member, &Resolved, &ModelSlots)> = of_model
            .iter()
            .filter_map(|(o, s)| o.sampled().map(|r| (*o, r, *s)))
            .collect();
        let Some(&(first, r0, s0)) = sampled.first() else {
            // An optimised model: a point estimate, no posterior.
            m.leaves[0]
                .cell()
                .set_results(ModelResults { posterior: None });
            continue;
        };
        // Each group's diagnostics and step sizes, read once: its report,
        // and (the first group's) the model's posterior.
        let mut per_group: Vec<(Option<Diagnostics>, Vec<f64>)> = sampled
            .iter()
            .map(|&(_, r, slots)| (diagnostics(r, slots, bufs), step_sizes(slots, bufs)))
            .collect();
        for (&(g, r, _), (d, steps)) in sampled.iter().zip(&per_group) {
            reports.push(report(&g.name, r, d.as_ref(), steps.clone()));
        }
        let (first_diagnostics, first_steps) = per_group.swap_remove(0);
        let kernels: Vec<&str> = sampled.iter().map(|(_, r, _)| r.kernel.name()).collect();
        let post = Arc::new(Posterior {
            model: first.model.clone(),
            model_id: first.id,
            kernel: kernels.join("+"),
            leaves: first
                .model_leaves
                .iter()
                .map(|p| leaf_samples(p, &of_model, r0.keep, bufs))
                .collect(),
            diagnostics: first_diagnostics,
            step_size: first_steps,
            inverse_mass: bufs
                .iter()
                .map(|b| {
                    let len = s0.metric.inverse_mass_len(first.len);
                    b.state()[s0.inverse_mass..s0.inverse_mass + len].to_vec()
                })
                .collect(),
        });
        first.leaves[0].cell().set_results(ModelResults {
            posterior: Some(post.clone()),
        });
        posteriors.push(post);
    }
    Ok((posteriors, reports))
}

/// The `(K, N, *shape)` draws of leaf `p`: from the member that moves it
/// (sampled, or optimised and recorded), else its value at every draw.
fn leaf_samples(
    p: &Param,
    of_model: &[(&Member, &ModelSlots)],
    n: usize,
    bufs: &[ChainBuffers],
) -> LeafSamples {
    let k = bufs.len();
    let mut shape = vec![k, n];
    shape.extend(p.shape());
    let mut data = Vec::with_capacity(k * n * p.len());
    let owner = of_model.iter().find_map(|(o, slots)| {
        let at = o.leaves.iter().position(|l| l.leaf_id() == p.leaf_id())?;
        let recorded = o.sampled().is_some() || o.record.is_some();
        recorded.then(|| {
            let within: usize = o.leaves[..at].iter().map(Param::len).sum();
            let mask = o.masks.get(at).and_then(|m| m.as_deref());
            (o.len, slots.draws + within, mask)
        })
    });
    match owner {
        Some((row_len, base, mask)) => {
            // An entry-masked leaf's other entries: its (fixed) value.
            let value = p.values();
            for b in bufs {
                for d in 0..n {
                    let row = base + d * row_len;
                    let theta = &b.draws()[row..row + p.len()];
                    match mask {
                        None => data.extend_from_slice(theta),
                        Some(m) => data.extend(merge(theta, &value, m)),
                    }
                }
            }
        }
        None => {
            let v = p.values();
            for _ in 0..k * n {
                data.extend_from_slice(&v);
            }
        }
    }
    LeafSamples {
        name: p.name().to_string(),
        samples: ArrayD::from_shape_vec(IxDyn(&shape), data)
            .expect("k chains x n draws x the leaf's entries were copied"),
    }
}

/// A sampled member's per-draw diagnostics, `(K, N)` per field.
fn diagnostics(r: &Resolved, slots: &ModelSlots, bufs: &[ChainBuffers]) -> Option<Diagnostics> {
    let (k, n, nf) = (bufs.len(), r.keep, slots.fields.len());
    (nf > 0).then(|| {
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
    })
}

fn step_sizes(slots: &ModelSlots, bufs: &[ChainBuffers]) -> Vec<f64> {
    bufs.iter().map(|b| b.state()[slots.step_size]).collect()
}

fn report(name: &str, r: &Resolved, d: Option<&Diagnostics>, step_size: Vec<f64>) -> ModelReport {
    let mean = |a: ndarray::ArrayView2<'_, f64>| {
        let v: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    ModelReport {
        name: name.to_string(),
        kernel: r.kernel.name().to_string(),
        num_draws: r.keep,
        divergences: d
            .and_then(|d| d.get(DiagName::IsDivergent.name()))
            .map(|a| a.iter().filter(|x| **x != 0.0).count()),
        mean_acceptance: d.and_then(|d| d.acceptance_rate()).map(mean),
        mean_energy: d.and_then(|d| d.energy()).map(mean),
        step_size,
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
