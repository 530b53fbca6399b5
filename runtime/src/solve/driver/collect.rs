//! Step 5 of a solve: the draws and diagnostics read out of the chains'
//! buffers into each model's posterior, chain 0's last position written
//! back to the models, and the per-model report.

use std::sync::Arc;

use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::kernels::{ELBO_FIELD, VI_PARAMS_SLOT};
use crux_compiler::sampler::{DiagKind, DiagName, ModelSlots};
use crux_ir::rng::{normal, stream, Purpose};
use ndarray::{Array2, ArrayD, IxDyn};

use super::super::resolve::Resolved;
use super::init::{merge, ThetaLayout};
use super::plan::{Member, Plan};
use crate::error::Result;
use crate::model::{
    Diagnostics, LeafSamples, ModelId, ModelResults, Param, Posterior, Variational,
};
use crate::solve::options::ModelReport;

/// Reads every sampled model's posterior out of `bufs` (one tree per
/// model, its masked groups together; a VI group's leaves drawn from its
/// fitted `q` with draws of the sampler `seed`), stores it on the model
/// (with chain 0's last position as its value), clears an optimised
/// model's, and reports on every sampled member.
/// `done`: the sweeps run (all of them, or fewer when the run stopped
/// early: each model's draws so far).
pub(crate) fn collect(
    plan: &Plan,
    bufs: &[ChainBuffers],
    seed: u64,
    done: usize,
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
        // The model's draws follow its MCMC groups, else its VI groups.
        let i0 = sampled.iter().position(|(_, r, _)| !r.is_vi()).unwrap_or(0);
        let Some(&(first, r0, s0)) = sampled.get(i0) else {
            // An optimised model: a point estimate, no posterior.
            m.leaves[0]
                .cell()
                .set_results(ModelResults { posterior: None });
            continue;
        };
        // Each group's diagnostics and step sizes, read once: its report,
        // its fitted q (VI), and the model's posterior.
        let mut per_group: Vec<(Option<Diagnostics>, Vec<f64>)> = sampled
            .iter()
            .map(|&(_, r, slots)| {
                let steps = if r.is_vi() {
                    Vec::new()
                } else {
                    step_sizes(slots, bufs)
                };
                let fields: Vec<_> = slots.fields.iter().map(|f| (f.name, f.kind)).collect();
                let d = read_diagnostics(r.kept_after(done), slots.diag, &fields, bufs);
                (d, steps)
            })
            .collect();
        let fits: Vec<Fit> = sampled
            .iter()
            .zip(&per_group)
            .filter(|((_, r, _), _)| r.is_vi())
            .map(|(&(g, _, _), (d, _))| Fit::read(plan, g, d.as_ref(), bufs))
            .collect();
        for (&(g, r, _), (d, steps)) in sampled.iter().zip(&per_group) {
            reports.push(report(&g.name, r, done, d.as_ref(), steps.clone()));
        }
        let (first_diagnostics, first_steps) = per_group.swap_remove(i0);
        let n = r0.vi_draws.unwrap_or(r0.kept_after(done));
        let vi_only = r0.is_vi();
        let kernels: Vec<&str> = sampled.iter().map(|(_, r, _)| r.kernel.name()).collect();
        let post = Arc::new(Posterior {
            model: first.model.clone(),
            model_id: first.id,
            kernel: kernels.join("+"),
            leaves: first
                .model_leaves
                .iter()
                .map(|p| leaf_samples(p, &of_model, n, bufs, (&fits, seed)))
                .collect(),
            diagnostics: first_diagnostics.filter(|_| !vi_only),
            step_size: first_steps,
            inverse_mass: if vi_only {
                Vec::new()
            } else {
                bufs.iter()
                    .map(|b| {
                        let len = s0.metric.inverse_mass_len(first.len);
                        b.state()[s0.inverse_mass..s0.inverse_mass + len].to_vec()
                    })
                    .collect()
            },
            variational: fits.iter().map(|f| f.q.clone()).collect(),
        });
        first.leaves[0].cell().set_results(ModelResults {
            posterior: Some(post.clone()),
        });
        posteriors.push(post);
    }
    Ok((posteriors, reports))
}

/// A VI member's fitted `q`, with what drawing from it needs.
struct Fit {
    /// The member's index in the plan (its draws' counter block).
    member: usize,
    /// The member's block length.
    len: usize,
    q: Variational,
}

impl Fit {
    fn read(
        plan: &Plan,
        g: &Member,
        diagnostics: Option<&Diagnostics>,
        bufs: &[ChainBuffers],
    ) -> Fit {
        let member = plan
            .members
            .iter()
            .position(|o| std::ptr::eq(o, g))
            .expect("the member is one of the plan's");
        let name = format!("m{}.k.{VI_PARAMS_SLOT}", plan.recorder[member]);
        let (off, len) = plan
            .chunk
            .state
            .find(&name)
            .expect("the mean-field kernel allocates its parameters");
        let d = len / 2;
        let k = bufs.len();
        let lambda = |c: usize, j: usize| bufs[c].state()[off + j];
        let elbo = diagnostics
            .and_then(|x| x.get(ELBO_FIELD.name).map(|a| a.to_owned()))
            .unwrap_or_else(|| Array2::zeros((k, 0)));
        Fit {
            member,
            len: d,
            q: Variational {
                group: g.name.clone(),
                leaves: g.leaves.iter().map(|p| p.name().to_string()).collect(),
                mean: Array2::from_shape_fn((k, d), |(c, j)| lambda(c, j)),
                std: Array2::from_shape_fn((k, d), |(c, j)| lambda(c, d + j).exp()),
                elbo,
            },
        }
    }

    /// Entry `j` of draw `t` of chain `c` from the fitted `q`.
    fn draw(&self, seed: u64, c: usize, t: usize, j: usize) -> f64 {
        let counter = ((self.member as u64) << 48) | (t * self.len + j) as u64;
        let z = normal(seed, stream(Purpose::Variational, c as u64), counter);
        self.q.mean[(c, j)] + self.q.std[(c, j)] * z
    }
}

/// The `(K, N, *shape)` draws of leaf `p`: from the member that moves it
/// (sampled, or optimised and recorded; a VI member's drawn from its
/// fitted `q`), else its value at every draw.
fn leaf_samples(
    p: &Param,
    of_model: &[(&Member, &ModelSlots)],
    n: usize,
    bufs: &[ChainBuffers],
    (fits, seed): (&[Fit], u64),
) -> LeafSamples {
    let k = bufs.len();
    let mut shape = vec![k, n];
    shape.extend(p.shape());
    let mut data = Vec::with_capacity(k * n * p.len());
    let owner = leaf_owner(p, of_model).map(|o| {
        let fit = fits.iter().find(|f| f.q.group == o.member.name);
        (o.row, o.offset, o.mask, fit.map(|f| (f, o.within)))
    });
    // An entry-masked leaf's other entries: its (fixed) value. A
    // constrained leaf's draws are `T(u)`.
    let value = p.values();
    let t = p.transform();
    let mut push = |theta: &[f64]| match owner.and_then(|o| o.2) {
        None if t.is_identity() => data.extend_from_slice(theta),
        None => data.extend(t.forward(theta)),
        Some(m) => data.extend(merge(theta, &value, m)),
    };
    match owner {
        Some((_, _, _, Some((fit, within)))) => {
            for c in 0..k {
                for t in 0..n {
                    let theta: Vec<f64> = (0..p.len())
                        .map(|j| fit.draw(seed, c, t, within + j))
                        .collect();
                    push(&theta);
                }
            }
        }
        Some((row_len, base, _, None)) => {
            for b in bufs {
                for d in 0..n {
                    let row = base + d * row_len;
                    push(&b.draws()[row..row + p.len()]);
                }
            }
        }
        None => {
            for _ in 0..k * n {
                data.extend_from_slice(&value);
            }
        }
    }
    LeafSamples {
        name: p.name().to_string(),
        samples: ArrayD::from_shape_vec(IxDyn(&shape), data)
            .expect("k chains x n draws x the leaf's entries were copied"),
    }
}

/// Where the draws of a leaf are: the member that records it (sampled, or
/// optimised and recorded), draw 0's offset in the draws buffer, the
/// entries per draw of that member, the leaf's offset within them, and its
/// entry mask.
pub(crate) struct LeafOwner<'a> {
    pub member: &'a Member,
    pub offset: usize,
    pub row: usize,
    pub within: usize,
    pub mask: Option<&'a [bool]>,
}

/// The recording member of leaf `p` among a model's members, if any (else
/// the leaf keeps its value at every draw).
pub(crate) fn leaf_owner<'a>(
    p: &Param,
    of_model: &[(&'a Member, &ModelSlots)],
) -> Option<LeafOwner<'a>> {
    of_model.iter().find_map(|&(o, slots)| {
        let at = o.leaves.iter().position(|l| l.leaf_id() == p.leaf_id())?;
        let recorded = o.sampled().is_some() || o.record.is_some();
        recorded.then(|| {
            let within: usize = o.leaves[..at].iter().map(Param::len).sum();
            LeafOwner {
                member: o,
                offset: slots.draws + within,
                row: o.len,
                within,
                mask: o.masks.get(at).and_then(|m| m.as_deref()),
            }
        })
    })
}

/// The per-draw diagnostics of a model's first `n` draws, `(K, N)` per
/// field: `fields` (name, kind) recorded per draw from `offset` of each
/// chain's diagnostics buffer (`None` without fields). The solve's
/// collection and artifact runs both read them here.
pub(crate) fn read_diagnostics(
    n: usize,
    offset: usize,
    fields: &[(&str, DiagKind)],
    bufs: &[ChainBuffers],
) -> Option<Diagnostics> {
    let (k, nf) = (bufs.len(), fields.len());
    (nf > 0).then(|| {
        Diagnostics::new(
            fields
                .iter()
                .enumerate()
                .map(|(j, &(name, kind))| {
                    let a = Array2::from_shape_fn((k, n), |(c, d)| {
                        let v = bufs[c].diag()[offset + d * nf + j];
                        match kind {
                            DiagKind::Bool => (v != 0.0) as u8 as f64,
                            DiagKind::Float | DiagKind::Int => v,
                        }
                    });
                    (name.to_string(), a)
                })
                .collect(),
        )
    })
}

fn step_sizes(slots: &ModelSlots, bufs: &[ChainBuffers]) -> Vec<f64> {
    bufs.iter().map(|b| b.state()[slots.step_size]).collect()
}

fn report(
    name: &str,
    r: &Resolved,
    done: usize,
    d: Option<&Diagnostics>,
    step_size: Vec<f64>,
) -> ModelReport {
    let mean = |a: ndarray::ArrayView2<'_, f64>| {
        let v: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let final_elbo = d
        .and_then(|d| d.get(ELBO_FIELD.name))
        .filter(|_| r.is_vi())
        .map(|a| {
            let steps = a.ncols();
            mean(a.slice(ndarray::s![.., steps - steps.div_ceil(10)..]))
        });
    ModelReport {
        name: name.to_string(),
        kernel: r.kernel.name().to_string(),
        num_draws: r.vi_draws.unwrap_or(r.kept_after(done)),
        final_elbo,
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
        if let Some(d) = r.divergences.filter(|_| r.num_draws > 0) {
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
        if let Some(e) = r.final_elbo {
            parts.push(format!(
                "ELBO {e:.4e} (mean of the last tenth of the steps)"
            ));
        }
        if parts.is_empty() {
            parts.push(format!("{} draws", r.num_draws));
        }
        log(format!("Model '{}': {}", r.name, parts.join(", ")));
    }
}
