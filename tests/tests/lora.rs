//! Low-rank adapters (`Net::lora`): a fresh LoRA net is its base net bit
//! for bit, its leaves are exactly the adapters, and `.optimizer(..)` /
//! `.bayesian(..)` on it train or sample the adapters only, leaving the
//! base network's weights untouched.

use crux::{Bayesian, Crux, Error, Model, Net, Optimizer, SolveOptions, PI};
use crux_samples::problems::Bpinn;

/// The spec's PINN (`u'' + π² sin(πx) = 0`, `u(0) = u(1) = 0`) with `u`
/// the LoRA net of the Bpinn's network.
fn lora_pinn(b: &Bpinn, rank: usize, alpha: f64) -> (Net, Crux) {
    let lora = b.net.lora(rank, alpha).unwrap();
    let dom = crux::Domain::line(0.0, 1.0, 0.01).unwrap();
    let x = dom.variable("interior").unwrap();
    let xb = dom.variable("boundary").unwrap();
    let u = lora.call(&[&x]);
    let pde = u.dd(&x) + (PI * PI) * (PI * &x).sin();
    let bc = lora.call(&[&xb]);
    let problem = Crux::new([pde.mse(), bc.mse()]).unwrap();
    (lora, problem)
}

fn base_values(net: &Net) -> Vec<Vec<u64>> {
    net.leaves()
        .iter()
        .map(|p| p.values().iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn bits(a: &ndarray::ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// (1) B = 0: the LoRA net's field, its second derivative and the PDE
/// loss equal the base net's bit for bit.
#[test]
fn fresh_lora_net_evaluates_like_its_base() {
    let b = Bpinn::new(5).unwrap();
    let lora = b.net.lora(4, 8.0).unwrap();
    let u = lora.call(&[&b.x]);
    let ev = |e: &crux::Expr| b.problem.eval(e).unwrap();
    assert_eq!(ev(&u).shape(), &[101, 1]);
    assert_eq!(bits(&ev(&u)), bits(&ev(&b.u)));
    assert_eq!(bits(&ev(&u.dd(&b.x))), bits(&ev(&b.u.dd(&b.x))));
    let (_, problem) = lora_pinn(&b, 4, 8.0);
    assert_eq!(
        problem.loss_value().unwrap().to_bits(),
        b.problem.loss_value().unwrap().to_bits()
    );
    // Not trivially so: with B ≠ 0 the output moves.
    let b0 = lora
        .leaves()
        .into_iter()
        .find(|p| p.name() == "net.lora.layers.3.lora_b")
        .unwrap();
    b0.set_values(&[0.5; 4]).unwrap();
    assert_ne!(bits(&ev(&u)), bits(&ev(&b.u)));
}

/// (2) The leaves are `A_l (rank, in)`, `B_l (out, rank)` per layer, in
/// layer order; the base leaves are inputs of another model.
#[test]
fn lora_leaves_are_exactly_the_adapters() {
    let b = Bpinn::new(5).unwrap();
    let lora = b.net.lora(4, 8.0).unwrap();
    assert_eq!(lora.model_name(), "net.lora");
    assert_ne!(lora.model_id(), b.net.model_id());
    assert_eq!(lora.lora_config(), Some((4, 8.0)));
    assert_eq!(lora.lora_base().unwrap().model_id(), b.net.model_id());
    assert_eq!((lora.input_width(), lora.output_width()), (1, 1));
    let got: Vec<(String, Vec<usize>)> = lora
        .leaves()
        .iter()
        .map(|p| (p.name().to_string(), p.shape().to_vec()))
        .collect();
    let widths = [(1, 32), (32, 32), (32, 32), (32, 1)];
    let want: Vec<(String, Vec<usize>)> = widths
        .iter()
        .enumerate()
        .flat_map(|(l, &(i, o))| {
            [
                (format!("net.lora.layers.{l}.lora_a"), vec![4, i]),
                (format!("net.lora.layers.{l}.lora_b"), vec![o, 4]),
            ]
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(lora.num_params(), 4 * (33 + 64 + 64 + 33));
    let base_names: Vec<String> = b.net.leaves().iter().map(|p| p.name().into()).collect();
    for p in lora.leaves() {
        assert!(!base_names.contains(&p.name().to_string()));
        assert_eq!(p.owner(), lora.model_id());
    }
    // In a problem: two models, the base with its 8 leaves and no
    // settings, the LoRA net with its 8 adapters.
    let (lora, problem) = lora_pinn(&b, 4, 8.0);
    let models = problem.models();
    assert_eq!(models.len(), 2);
    let base = models.iter().find(|m| m.id == b.net.model_id()).unwrap();
    let adapters = models.iter().find(|m| m.id == lora.model_id()).unwrap();
    assert_eq!(base.leaves.len(), 8);
    assert_eq!(adapters.leaves.len(), 8);
    lora.optimizer(Optimizer::adam(1e-2)).unwrap();
    assert!(base.settings().optimizer.is_none() && base.settings().bayesian.is_none());
    assert!(adapters.settings().optimizer.is_some());
}

/// (3) Adam on the adapters: the loss goes down, the base is unchanged.
#[test]
fn optimising_a_lora_net_trains_only_the_adapters() {
    let b = Bpinn::new(5).unwrap();
    let (lora, problem) = lora_pinn(&b, 4, 8.0);
    let before = base_values(&b.net);
    let loss0 = problem.loss_value().unwrap();
    lora.optimizer(Optimizer::adam(1e-2)).unwrap();
    let sol = problem
        .solve_with(200, &SolveOptions::default().quiet())
        .unwrap();
    let loss1 = problem.loss_value().unwrap();
    assert!(loss1 < 0.1 * loss0, "loss {loss0} -> {loss1}");
    let h = &sol.loss_history;
    assert!(h.len() > 2 && h.last().unwrap().1 < h[0].1, "{h:?}");
    assert_eq!(base_values(&b.net), before, "the base weights moved");
    // The adapters did move (B left zero).
    assert!(lora
        .leaves()
        .iter()
        .filter(|p| p.name().ends_with("lora_b"))
        .any(|p| p.values().iter().any(|&v| v != 0.0)));
    assert!(b.net.posterior().is_none() && lora.posterior().is_none());
}

/// (4) SGLD on the adapters: one chain of 20 draws per adapter leaf; the
/// base is unchanged and has no posterior.
#[test]
fn sampling_a_lora_net_samples_only_the_adapters() {
    let b = Bpinn::new(5).unwrap();
    let (lora, problem) = lora_pinn(&b, 2, 2.0);
    let before = base_values(&b.net);
    lora.bayesian(Bayesian::sgld().step_size(1e-5).warmup(10).keep(20))
        .unwrap();
    let sol = problem
        .solve_with(30, &SolveOptions::default().quiet())
        .unwrap();
    let post = lora.posterior().expect("the LoRA net was sampled");
    assert_eq!(post.model, "net.lora");
    let names: Vec<String> = lora.leaves().iter().map(|p| p.name().into()).collect();
    assert_eq!(post.leaf_names(), names);
    let samples = lora.posterior_samples().unwrap();
    assert_eq!(samples.len(), 8);
    for (s, p) in samples.iter().zip(lora.leaves()) {
        assert_eq!(s.name, p.name());
        let mut shape = vec![1, 20];
        shape.extend_from_slice(p.shape());
        assert_eq!(s.samples.shape(), shape.as_slice(), "{}", s.name);
        assert!(s.samples.iter().all(|v| v.is_finite()));
    }
    // The draws of B move away from 0.
    let draws_b = post.leaf("net.lora.layers.3.lora_b").unwrap();
    assert!(draws_b.iter().any(|&v| v != 0.0));
    assert_eq!(base_values(&b.net), before, "the base weights moved");
    assert!(b.net.posterior().is_none());
    assert!(sol.posterior(&b.net).is_none());
    assert_eq!(sol.posteriors.len(), 1);
}

/// (5) Invalid rank or alpha: errors naming the network and the fix.
#[test]
fn invalid_rank_and_alpha_are_errors() {
    let b = Bpinn::new(5).unwrap();
    for (rank, alpha, what, fix) in [
        (0, 8.0, "rank", "at least 1"),
        (4, 0.0, "alpha", "> 0"),
        (4, -2.0, "alpha", "> 0"),
        (4, f64::NAN, "alpha", "finite"),
        (4, f64::INFINITY, "alpha", "finite"),
        (usize::MAX, 1.0, "rank", "at most"),
        (1 << 30, 1.0, "rank", "at most"),
    ] {
        let e = b.net.lora(rank, alpha).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::InvalidArgument { what: w, .. } if w.contains(what)),
            "{e:?}"
        );
        assert!(msg.contains("`net`") && msg.contains(fix), "{msg}");
    }
    // Ranks above a layer's min(in, out) are allowed (documented).
    assert!(b.net.lora(33, 1.0).is_ok());
}

/// Masks see the adapters by layer: sampling layer 3's adapters leaves
/// the other adapters and the base at their values.
#[test]
fn masks_select_adapters_by_layer() {
    let b = Bpinn::new(5).unwrap();
    let (lora, problem) = lora_pinn(&b, 2, 2.0);
    let before = base_values(&b.net);
    let others: Vec<_> = lora
        .leaves()
        .into_iter()
        .filter(|p| !p.name().contains(".layers.3."))
        .collect();
    let others_before: Vec<Vec<f64>> = others.iter().map(|p| p.values()).collect();
    lora.mask(crux::Mask::layers([3]))
        .bayesian(Bayesian::sgld().step_size(1e-5).warmup(10).keep(20))
        .unwrap();
    problem
        .solve_with(30, &SolveOptions::default().quiet())
        .unwrap();
    let post = lora.posterior().expect("layer 3's adapters were sampled");
    let draws = post.leaf("net.lora.layers.3.lora_b").unwrap();
    assert_eq!(draws.shape(), &[1, 20, 1, 2]);
    assert!(draws.iter().any(|&v| v != 0.0));
    let others_after: Vec<Vec<f64>> = others.iter().map(|p| p.values()).collect();
    assert_eq!(others_after, others_before);
    assert_eq!(base_values(&b.net), before);
}
