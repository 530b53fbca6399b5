//! A catalogue of bad inputs across the public API and the command line:
//! each must give a typed error whose message names the offending item
//! (a keyword of it), with no panic, no abort and no partial output file.
//! Cases run one by one under `catch_unwind`; the test lists every case
//! that panicked, succeeded or said too little.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crux::{
    noise, Activation, Artifact, ArtifactRun, Bayesian, Crux, Domain, Error, Expr, Init,
    InverseMass, Mask, Metric, Net, Optimizer, Param, Prior, SolveOptions, Substep, Vi,
};
use crux_samples::problems::Quickstart;

type Case = (
    &'static str,
    &'static str,
    Box<dyn Fn() -> crux::Result<()>>,
);

fn q() -> Quickstart {
    Quickstart::new(1).unwrap()
}

fn quiet() -> SolveOptions {
    SolveOptions::default().quiet()
}

fn solve_a(b: Bayesian) -> crux::Result<()> {
    let q = q();
    q.a.bayesian(b)?;
    q.problem.solve_with(2000, &quiet()).map(|_| ())
}

fn line() -> (Domain, Expr) {
    let d = Domain::line(0.0, 1.0, 0.1).unwrap();
    let x = d.variable("interior").unwrap();
    (d, x)
}

fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent-crux-dir/sub/out")
}

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    macro_rules! case {
        ($name:expr, $key:expr, $body:expr) => {
            v.push(($name, $key, Box::new(move || $body)));
        };
    }
    // Domains and expressions.
    case!(
        "domain with NaN mesh size",
        "mesh",
        Domain::line(0.0, 1.0, f64::NAN).map(|_| ())
    );
    case!(
        "domain with zero mesh size",
        "mesh",
        Domain::line(0.0, 1.0, 0.0).map(|_| ())
    );
    case!(
        "domain with NaN bound",
        "finite",
        Domain::line(f64::NAN, 1.0, 0.1).map(|_| ())
    );
    case!("unknown domain tag", "nope", {
        let d = Domain::line(0.0, 1.0, 0.1)?;
        d.variable("nope").map(|_| ())
    });
    case!("shapes that do not broadcast", "shape", {
        let (_, x) = line();
        (Param::new("v", [2, 3]) * &x).check().map(|_| ())
    });
    case!("expressions on two domains", "domain", {
        let (_, x) = line();
        let (_, y) = line();
        (&x + &y).check().map(|_| ())
    });
    case!("NaN constant", "finite", {
        let (_, x) = line();
        (&x * f64::NAN).check().map(|_| ())
    });
    case!("NaN noise scale", "noise", {
        let (_, x) = line();
        (&x + noise::gaussian(f64::NAN)).check().map(|_| ())
    });
    case!("negative noise scale", "noise", {
        let (_, x) = line();
        (&x + noise::gaussian(-1.0)).check().map(|_| ())
    });
    case!("NaN observations", "finite", {
        let (_, x) = line();
        let obs = ndarray::Array2::from_elem((11, 1), f64::NAN);
        (&x - Expr::array(&obs)).check().map(|_| ())
    });
    case!(
        "no constraint",
        "constraint",
        Crux::new(Vec::<crux::Constraint>::new()).map(|_| ())
    );
    case!("parameter of absurd size", "entries", {
        let (_, x) = line();
        Crux::new([(Param::new("huge", [1 << 20, 1 << 20]).at(0) * &x).mse()]).map(|_| ())
    });
    case!(
        "parameter value of wrong length",
        "3",
        Param::new("a", [3]).set_values(&[1.0])
    );
    case!(
        "NaN parameter value",
        "finite",
        Param::new("a", [1]).set_values(&[f64::NAN])
    );
    case!(
        "network with zero width",
        "width",
        Net::mlp(1, 1, 0, 2, Activation::Tanh, 0).map(|_| ())
    );
    case!(
        "network with too many layers",
        "layers",
        Net::mlp(1, 1, 4, crux::MAX_LAYERS + 1, Activation::Tanh, 0).map(|_| ())
    );
    case!("network input of wrong width", "input", {
        let (_, x) = line();
        let net = Net::mlp(2, 1, 4, 1, Activation::Tanh, 0)?;
        net.call(&[&x]).check().map(|_| ())
    });
    // Priors.
    case!(
        "gaussian prior sigma 0",
        "sigma",
        solve_a(Bayesian::nuts().prior(Prior::gaussian(0.0)))
    );
    case!(
        "laplace prior negative scale",
        "scale",
        solve_a(Bayesian::nuts().prior(Prior::laplace(-1.0)))
    );
    // Sampling configurations.
    case!("keep 0", "keep", solve_a(Bayesian::nuts().keep(0)));
    case!("thin 0", "thin", solve_a(Bayesian::nuts().thin(0)));
    case!(
        "zero chains",
        "num_chains",
        solve_a(Bayesian::nuts().num_chains(0))
    );
    case!(
        "zero likelihood scale",
        "likelihood_scale",
        solve_a(Bayesian::nuts().likelihood_scale(0.0))
    );
    case!(
        "NaN likelihood scale",
        "likelihood_scale",
        solve_a(Bayesian::nuts().likelihood_scale(f64::NAN))
    );
    case!(
        "negative step size",
        "step_size",
        solve_a(Bayesian::mala().step_size(-0.1))
    );
    case!(
        "MALA without step size",
        "step_size",
        solve_a(Bayesian::mala())
    );
    case!(
        "negative init jitter",
        "init_jitter",
        solve_a(Bayesian::nuts().init_jitter(-1.0))
    );
    case!(
        "target acceptance 1.5",
        "target_acceptance",
        solve_a(Bayesian::nuts().target_acceptance(1.5))
    );
    case!(
        "NaN inverse mass",
        "inverse_mass",
        solve_a(Bayesian::nuts().inverse_mass_matrix(InverseMass::diagonal(vec![f64::NAN])))
    );
    case!(
        "inverse mass of wrong length",
        "entries",
        solve_a(Bayesian::nuts().inverse_mass_matrix(InverseMass::diagonal(vec![1.0, 2.0])))
    );
    case!(
        "integration steps on NUTS",
        "num_integration_steps",
        solve_a(Bayesian::nuts().num_integration_steps(5))
    );
    case!(
        "alpha on NUTS",
        "alpha",
        solve_a(Bayesian::nuts().alpha(0.1))
    );
    case!(
        "batch size on NUTS",
        "batch_size",
        solve_a(Bayesian::nuts().batch_size(10))
    );
    case!(
        "batch size 0 on SGLD",
        "batch_size",
        solve_a(Bayesian::sgld().step_size(1e-3).batch_size(0))
    );
    case!(
        "dense metric on MALA",
        "mass matrix",
        solve_a(Bayesian::mala().step_size(0.1).metric(Metric::Dense))
    );
    case!(
        "low-rank metric of rank 0",
        "rank",
        solve_a(Bayesian::nuts().metric(Metric::LowRank { rank: 0 }))
    );
    case!(
        "low-rank metric of rank 5 on 1 entry",
        "rank",
        solve_a(Bayesian::nuts().metric(Metric::LowRank { rank: 5 }))
    );
    case!("too few epochs for warmup", "epochs", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(500))?;
        q.problem.solve_with(100, &quiet()).map(|_| ())
    });
    case!("models with different chain counts", "num_chains", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().num_chains(2))?;
        q.b.bayesian(Bayesian::nuts().num_chains(3))?;
        q.problem.solve_with(2000, &quiet()).map(|_| ())
    });
    case!(
        "nothing to sample",
        "model",
        q().problem.solve_with(10, &quiet()).map(|_| ())
    );
    // Optimisers, VI, initializers.
    case!(
        "learning rate 0",
        "learning rate",
        q().a.optimizer(Optimizer::adam(0.0)).map(|_| ())
    );
    case!(
        "adam b1 = 1",
        "b1",
        q().a
            .optimizer(Optimizer::adam(0.1).betas(1.0, 0.999))
            .map(|_| ())
    );
    case!(
        "clip norm 0",
        "clip",
        q().a
            .optimizer(Optimizer::sgd(0.1).clip_by_global_norm(0.0))
            .map(|_| ())
    );
    case!(
        "VI with 0 samples",
        "num_samples",
        q().a.vi(Vi::meanfield().num_samples(0)).map(|_| ())
    );
    case!("VI after .bayesian", ".bayesian", {
        let q = q();
        q.a.bayesian(Bayesian::nuts())?;
        q.a.vi(Vi::meanfield()).map(|_| ())
    });
    case!(
        "pathfinder with 1 draw",
        "num_draws",
        q().a
            .initialize(Init::pathfinder().num_draws(1))
            .map(|_| ())
    );
    case!(
        "SVGD with init scale 0",
        "init_scale",
        q().a.initialize(Init::svgd().init_scale(0.0)).map(|_| ())
    );
    case!("initializer with substeps", "substeps", {
        let q = q();
        q.a.bayesian(
            Bayesian::nuts()
                .adapt(false)
                .step_size(0.1)
                .warmup(0)
                .keep(5),
        )?;
        q.a.initialize(Init::pathfinder())?;
        q.problem
            .solve_with(10, &quiet().substeps([Substep::new([0])]))
            .map(|_| ())
    });
    // Masks and substeps.
    case!("mask naming an unknown leaf", "nope", {
        let net = Net::mlp(1, 1, 3, 1, Activation::Tanh, 0)?;
        net.mask(Mask::leaves(["nope"])).bayesian(Bayesian::nuts())
    });
    case!("overlapping masks", "overlap", {
        let net = Net::mlp(1, 1, 3, 1, Activation::Tanh, 0)?;
        net.mask(Mask::layers([1])).bayesian(Bayesian::nuts())?;
        net.mask(Mask::layers([1])).bayesian(Bayesian::nuts())
    });
    case!("entry mask of wrong length", "entries", {
        let net = Net::mlp(1, 1, 3, 1, Activation::Tanh, 0)?;
        let name = crux::Model::leaves(&net)[0].name().to_string();
        net.mask(Mask::entries(name, [true]))
            .bayesian(Bayesian::nuts())
    });
    case!("empty substeps", "substep", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().adapt(false).step_size(0.1))?;
        q.problem
            .solve_with(2000, &quiet().substeps(Vec::<Substep>::new()))
            .map(|_| ())
    });
    case!("substep over an unknown constraint", "constraint", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().adapt(false).step_size(0.1))?;
        q.problem
            .solve_with(2000, &quiet().substeps([Substep::new([7])]))
            .map(|_| ())
    });
    // Log-densities.
    case!("log-density of a model not in the problem", "not", {
        let q = q();
        q.problem
            .log_density()
            .sample(&Param::new("c", [1]), Prior::default())
            .build()
            .map(|_| ())
    });
    case!("log-density of the same model twice", "a", {
        let q = q();
        q.problem
            .log_density()
            .sample(&q.a, Prior::default())
            .sample(&q.a, Prior::default())
            .build()
            .map(|_| ())
    });
    case!(
        "log-density at a position of wrong length",
        "takes 1 values",
        {
            let q = q();
            let ld = q
                .problem
                .log_density()
                .sample(&q.a, Prior::default())
                .build()?;
            ld.logp_and_grad(&[1.0, 2.0, 3.0]).map(|_| ())
        }
    );
    // Files: text IR, artifacts, checkpoints, outputs.
    case!(
        "artifact that does not exist",
        "artifact",
        Artifact::read(&nowhere()).map(|_| ())
    );
    case!("graph IR text that does not parse", "graph", {
        Artifact::from_graph_text("not a graph", "x", &Default::default()).map(|_| ())
    });
    case!("artifact run with 0 chains", "chains", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(10).keep(5))?;
        let art = q.problem.compile_artifact("q", 100, &quiet())?;
        art.sample(&ArtifactRun {
            chains: Some(0),
            ..Default::default()
        })
        .map(|_| ())
    });
    case!("checkpoint that does not exist", "checkpoint", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(10).keep(5))?;
        q.problem
            .solve_with(100, &quiet().resume(nowhere()))
            .map(|_| ())
    });
    case!("checkpoint into an unwritable directory", "nonexistent", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(10).keep(50))?;
        q.problem
            .solve_with(
                100,
                &quiet()
                    .chunk_sweeps(5)
                    .checkpoint(nowhere())
                    .checkpoint_every(0.0),
            )
            .map(|_| ())
    });
    case!("npz into an unwritable directory", "nonexistent", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(10).keep(5))?;
        q.problem.solve_with(100, &quiet())?;
        let post = q.a.posterior().unwrap();
        crux::export::write_arviz_npz(&nowhere(), &[&post], &[])
    });
    case!("CSV into an unwritable directory", "nonexistent", {
        let q = q();
        q.a.bayesian(Bayesian::nuts().warmup(10).keep(5))?;
        q.problem.solve_with(100, &quiet())?;
        let post = q.a.posterior().unwrap();
        crux::export::write_csv(&nowhere(), &[&post])
    });
    case!(
        "tracker into an unwritable directory",
        "tracker",
        crux::JsonlTracker::create(nowhere()).map(|_| ())
    );
    // Constrained parameters and likelihood terms.
    case!(
        "an initial value outside a parameter's support",
        "tau",
        Param::new("tau", [1]).positive().set_values(&[-1.0])
    );
    case!(
        "bounds with lo >= hi",
        "rho",
        Param::new("rho", [1]).bounded(1.0, -1.0).map(|_| ())
    );
    case!(
        "an infinite lower bound",
        "lower bound",
        Param::new("s", [1]).lower(f64::NEG_INFINITY).map(|_| ())
    );
    case!("a non-positive constant sigma", "sigma", {
        let (_, x) = line();
        Crux::new([(&x * 1.0).gaussian(-1.0)]).map(|_| ())
    });
    case!("a zero Laplace scale", "b must be positive", {
        let (_, x) = line();
        Crux::new([(&x * 1.0).laplace(0.0)]).map(|_| ())
    });
    case!("a Student-t with df 0", "df", {
        let (_, x) = line();
        Crux::new([(&x * 1.0).student_t(0.0, 1.0)]).map(|_| ())
    });
    case!(
        "a log-density term that is not scalar",
        "log-density term",
        {
            let (_, x) = line();
            Crux::new([crux::Constraint::log_density(&x * 1.0)]).map(|_| ())
        }
    );
    case!("two parameters of one name in a group", "`mu`", {
        let g = crux::Group::new("g");
        let (a, b) = (g.param("mu", [1]), g.param("mu", [2]));
        Crux::new([(&a + b.at(0)).gaussian(1.0)]).map(|_| ())
    });
    case!(
        "an ordered parameter too long",
        "at most",
        Param::new("cuts", [100_000]).ordered().map(|_| ())
    );
    case!("a Student-t with an absurd df", "df", {
        let (_, x) = line();
        Crux::new([(&x * 1.0).student_t(1e300, 1.0)]).map(|_| ())
    });
    case!("an entry mask on a constrained parameter", "constrained", {
        let (_, x) = line();
        let w = Param::new("w", [2]).positive();
        let p = Crux::new([(&x * w.at(0) + w.at(1)).mse()])?;
        w.mask(Mask::entries("w", [true, false]))
            .bayesian(Bayesian::nuts().warmup(10).keep(5))?;
        p.solve_with(20, &quiet()).map(|_| ())
    });
    v
}

#[test]
fn every_bad_input_is_a_typed_error() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut problems = Vec::new();
    for (name, key, f) in &cases {
        match catch_unwind(AssertUnwindSafe(f)) {
            Err(_) => problems.push(format!("{name}: PANICKED")),
            Ok(Ok(())) => problems.push(format!("{name}: accepted")),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if !msg.to_lowercase().contains(&key.to_lowercase()) {
                    problems.push(format!("{name}: the message does not name `{key}`: {msg}"));
                }
                if matches!(e, Error::Run { .. }) {
                    problems.push(format!("{name}: a run failure, not an input error: {msg}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} cases:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    // No partial output under the final names.
    assert!(!nowhere().exists());
}
