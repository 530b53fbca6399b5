//! Step 1½ of a solve: the log-density-aware initializers
//! (`model.initialize(Init::..)`), run on each sampled member's own
//! log-density (its prior and likelihood scale; the other models at their
//! values), compiled with Cranelift (Laplace's Hessian too, as compiled
//! Hessian-vector products). They give every chain its start and,
//! pathfinder and Laplace, the inverse mass matrix. The algorithms are host
//! loops around the compiled log-density and gradient (the evaluations
//! dominate their cost); draws come from the counter-based generator
//! (`Purpose::Initializer`, one stream per member), so a seed gives the
//! same starts on every run.

mod laplace;
mod lbfgs;
mod linalg;
mod pathfinder;
mod svgd;

use crux_ir::rng::{normal, normal_pair, stream, Purpose};

use super::driver::plan::{Member, Plan};
use crate::compile::hessian::Hvp;
use crate::compile::problem::Problem;
use crate::compile::Backend;
use crate::error::{Error, Result};
use crate::model::Init;

/// What an initializer leaves for one member.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Start {
    /// One start per chain (the member's block of θ).
    pub positions: Vec<Vec<f64>>,
    /// The diagonal inverse mass matrix, for kernels that take one.
    pub inverse_mass: Option<Vec<f64>>,
}

/// Runs the initializer of every sampled member whose model has one;
/// `substeps` says whether the solve has substeps (refused with one).
pub(crate) fn run(
    problem: &Problem,
    plan: &Plan,
    seed: u64,
    substeps: bool,
    log: &dyn Fn(String),
) -> Result<Vec<Option<Start>>> {
    let mut out = Vec::with_capacity(plan.members.len());
    for (mi, m) in plan.members.iter().enumerate() {
        let Some(init) = m.leaves[0].cell().settings().initializer else {
            out.push(None);
            continue;
        };
        let bad = |reason: String| Error::Bayesian {
            model: m.name.clone(),
            reason,
        };
        let Some(r) = m.sampled() else {
            // The optimised leaves of a model with sampled groups keep
            // their value; a model that is only optimised has no posterior
            // to initialize for.
            if plan
                .members
                .iter()
                .any(|o| o.id == m.id && o.sampled().is_some())
            {
                out.push(None);
                continue;
            }
            return Err(bad(format!(
                "has an initializer ({}) but is not sampled: initializers prepare .bayesian(..) models (drop .initialize(..) or sample the model)",
                init.name()
            )));
        };
        if r.is_vi() {
            return Err(bad(format!(
                "has .vi(..) and an initializer ({}): VI starts its q from the model's value; drop .initialize(..)",
                init.name()
            )));
        }
        if substeps {
            return Err(bad(format!(
                "an initializer ({}) with substeps is not supported: it runs on the full log-density while substep kernels see only their substep's constraints; drop .initialize(..) or the substeps",
                init.name()
            )));
        }
        let t0 = std::time::Instant::now();
        let ld = problem
            .log_density()
            .likelihood_scale(r.likelihood_scale)
            .slot(&m.name, m.id, &m.leaves, &m.masks, Some(r.prior.clone()))
            .build()?;
        let compiled = ld.compile(Backend::Cranelift)?;
        let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = std::time::Instant::now();
        let mut ws = compiled.workspace();
        let mut f = |x: &[f64], g: &mut [f64]| compiled.logp_and_grad(&mut ws, x, g);
        let x0 = ld.initial_position().to_vec();
        let st = stream(Purpose::Initializer, mi as u64);
        let z = |k: u64| normal(seed, st, k);
        let zz = |k: u64| normal_pair(seed, st, k);
        let k = plan.k;
        let start = match &init {
            Init::Pathfinder(p) => {
                let opts = pathfinder::Options {
                    lbfgs: lbfgs::Options {
                        maxiter: p.maxiter,
                        maxcor: p.maxcor,
                        gtol: 1e-10,
                    },
                    elbo_draws: p.num_samples,
                    draws: p.num_draws.max(k),
                };
                let fit = pathfinder::pathfinder(&mut f, &x0, opts, &zz)?;
                log(format!(
                    "Model '{}': pathfinder: best normal approximation at L-BFGS iterate {} (ELBO {:.4e}); inverse mass matrix from {} draws",
                    m.name, fit.best, fit.elbo, opts.draws
                ));
                let positions = if k == 1 {
                    vec![fit.map]
                } else {
                    fit.draws[..k].to_vec()
                };
                Start {
                    positions,
                    inverse_mass: Some(fit.variance),
                }
            }
            Init::Laplace(l) => {
                let mut hvp = Hvp::compile(&ld)?;
                let mut hv = |x: &[f64], v: &[f64], out: &mut [f64]| hvp.eval(x, v, out);
                let fit = laplace::laplace(&mut f, &mut hv, &x0, l.maxiter, l.full)?;
                log(format!(
                    "Model '{}': laplace: MAP after {} L-BFGS iterates, {} Hessian",
                    m.name,
                    fit.iterations,
                    if l.full { "full" } else { "diagonal" }
                ));
                let positions = if k == 1 {
                    vec![fit.map.clone()]
                } else {
                    (0..k)
                        .map(|c| {
                            let d = fit.map.len();
                            (0..d)
                                .map(|j| {
                                    fit.map[j] + fit.variance[j].sqrt() * z((c * d + j) as u64)
                                })
                                .collect()
                        })
                        .collect()
                };
                Start {
                    positions,
                    inverse_mass: Some(fit.variance),
                }
            }
            Init::Svgd(s) => {
                let d = x0.len();
                let particles = (0..k)
                    .map(|c| {
                        (0..d)
                            .map(|j| x0[j] + s.init_scale * z((c * d + j) as u64))
                            .collect()
                    })
                    .collect();
                let positions = svgd::svgd(&mut f, particles, s.steps, &s.optimizer)?;
                log(format!(
                    "Model '{}': svgd: {k} particle(s) after {} steps are the chains' starts",
                    m.name, s.steps
                ));
                Start {
                    positions,
                    inverse_mass: None,
                }
            }
        };
        log(format!(
            "Model '{}': {} took {compile_ms:.1} ms to compile its log-density and {:.1} ms to run",
            m.name,
            init.name(),
            t1.elapsed().as_secs_f64() * 1e3
        ));
        if let Some((c, _)) = start
            .positions
            .iter()
            .enumerate()
            .find(|(_, p)| p.iter().any(|v| !v.is_finite()))
        {
            return Err(bad(format!(
                "{} gave a non-finite start for chain {c}: check the log-density is finite near the model's value",
                init.name()
            )));
        }
        out.push(Some(Start {
            inverse_mass: start.inverse_mass.filter(|_| takes_mass(m, log)),
            ..start
        }));
    }
    Ok(out)
}

/// Whether the member's kernel takes an inverse mass matrix (logging that
/// the initializer's is dropped otherwise).
fn takes_mass(m: &Member, log: &dyn Fn(String)) -> bool {
    let hmc = m.sampled().is_some_and(|r| r.kernel.hmc_family());
    if !hmc {
        log(format!(
            "Model '{}': its kernel has no mass matrix: the initializer's start is used, its inverse mass matrix dropped",
            m.name
        ));
    }
    hmc
}
