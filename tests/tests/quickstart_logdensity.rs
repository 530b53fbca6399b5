//! The quick example's log-density and gradient against a hand-written
//! formula, at every stage of the pipeline; and the `--inspect` criteria.

use crux_samples::problems::{Quickstart, QUICKSTART_TRUTH};

/// `log p(a, b) = −s · mean_i (a sᵢ + b cᵢ − tᵢ)² − (a² + b²) / (2·10²)`
/// and its gradient, written out by hand from the problem's own target.
fn hand_written(q: &Quickstart, scale: f64, a: f64, b: f64) -> (f64, [f64; 2]) {
    let xs = q.problem.eval(&q.x).unwrap();
    let t = q.problem.eval(&q.target).unwrap();
    let n = xs.len() as f64;
    let (mut sse, mut ga, mut gb) = (0.0, 0.0, 0.0);
    for (x, t) in xs.iter().zip(t.iter()) {
        let (s, c) = (
            (std::f64::consts::PI * x).sin(),
            (std::f64::consts::PI * x).cos(),
        );
        let r = a * s + b * c - t;
        sse += r * r;
        ga += r * s;
        gb += r * c;
    }
    let lp = -scale * sse / n - (a * a + b * b) / 200.0;
    (
        lp,
        [
            -2.0 * scale * ga / n - a / 100.0,
            -2.0 * scale * gb / n - b / 100.0,
        ],
    )
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn interpreter_matches_hand_written_formula() {
    let q = Quickstart::new(42).unwrap();
    for scale in [1.0, 10100.0] {
        let ld = q.log_density(scale).unwrap();
        for (a, b) in [(0.0, 0.0), QUICKSTART_TRUTH, (-1.5, 7.25), (100.0, -0.001)] {
            let (lp, g) = hand_written(&q, scale, a, b);
            for stage in ["differentiated", "staged", "optimised"] {
                let (lp2, g2) = ld.logp_and_grad_at_stage(stage, &[a, b]).unwrap();
                assert!(
                    rel(lp, lp2) <= 1e-12,
                    "{stage} logp {lp2} vs {lp} at ({a}, {b}), scale {scale}"
                );
                for k in 0..2 {
                    assert!(
                        rel(g[k], g2[k]) <= 1e-12 || (g[k] - g2[k]).abs() <= 1e-12 * lp.abs(),
                        "{stage} grad[{k}] {} vs {} at ({a}, {b}), scale {scale}",
                        g2[k],
                        g[k]
                    );
                }
            }
        }
    }
}

/// The target is the true signal plus noise drawn once: fixed per seed,
/// different across seeds, with the requested standard deviation.
#[test]
fn noise_is_fixed_per_seed() {
    let q1 = Quickstart::new(42).unwrap();
    let q2 = Quickstart::new(42).unwrap();
    let q3 = Quickstart::new(7).unwrap();
    let t1 = q1.problem.eval(&q1.target).unwrap();
    assert_eq!(t1, q2.problem.eval(&q2.target).unwrap());
    assert_eq!(t1, q1.problem.eval(&q1.target).unwrap());
    assert_ne!(t1, q3.problem.eval(&q3.target).unwrap());
    let xs = q1.problem.eval(&q1.x).unwrap();
    let resid: Vec<f64> = xs
        .iter()
        .zip(t1.iter())
        .map(|(x, t)| {
            let (a, b) = QUICKSTART_TRUTH;
            t - (a * (std::f64::consts::PI * x).sin() + b * (std::f64::consts::PI * x).cos())
        })
        .collect();
    let sd = (resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64).sqrt();
    // 101 draws of N(0, 0.1²): the sample sd is within 30% of 0.1 with overwhelming probability.
    assert!((0.07..0.13).contains(&sd), "noise sd {sd}");
}

/// After staging the log-density+gradient holds no transcendental, and the
/// optimised graph costs at most 15 flops per point.
#[test]
fn inspect_criteria() {
    let q = Quickstart::new(42).unwrap();
    let ld = q.log_density(1.0).unwrap();
    let stages = ld.stages();
    let names: Vec<&str> = stages.iter().map(|s| s.stage).collect();
    assert_eq!(names, ["traced", "differentiated", "staged", "optimised"]);
    assert!(
        stages[0].transcendentals > 0,
        "the traced graph computes sin and cos"
    );
    for s in &stages[2..] {
        assert_eq!(s.transcendentals, 0, "{} holds transcendentals", s.stage);
    }
    let per_point = stages[3].flops as f64 / ld.num_points() as f64;
    assert!(per_point <= 15.0, "{per_point} flops per point");
    assert_eq!(ld.num_points(), 101);
    assert_eq!(ld.dim(), 2);
}

/// Every stage's IR prints, parses back to an identical graph, and verifies.
#[test]
fn stage_ir_round_trips() {
    let q = Quickstart::new(42).unwrap();
    let ld = q.log_density(1.0).unwrap();
    for s in ld.stages() {
        let text = ld.stage_ir(s.stage).unwrap();
        let g = crux_ir::graph::text::parse(&text).unwrap();
        crux_ir::graph::verify(&g).unwrap();
        assert!(
            g == *ld.stage_graph(s.stage).unwrap(),
            "{} does not round-trip",
            s.stage
        );
    }
    assert!(matches!(
        ld.stage_ir("lowered"),
        Err(crux::Error::UnknownStage { .. })
    ));
}
