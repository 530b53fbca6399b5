//! Bit-for-bit pins of the draws of the three reference problems (the
//! quick example with NUTS, the BPINN with SGLD, gauss100 with NUTS) for a
//! fixed seed, recorded in `tests/data/draws_fixture.txt`.
//!
//! A refactor must leave these unchanged. A change that alters rounding on
//! purpose regenerates the fixture (`CRUX_RECORD_FIXTURE=1 cargo test -p
//! crux-tests --test draws_fixture`) and says why in its commit message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crux::{Bayesian, Posterior, SolveOptions};
use crux_samples::problems::{Bpinn, Gauss100, Quickstart};

/// FNV-1a over the bit patterns of every draw, diagnostic and adapted
/// step size of a posterior, in a fixed order.
fn digest(p: &Posterior, h: &mut u64) {
    let mut eat = |x: f64| {
        for byte in x.to_bits().to_le_bytes() {
            *h ^= byte as u64;
            *h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for leaf in &p.leaves {
        leaf.samples.iter().for_each(|&x| eat(x));
    }
    if let Some(d) = &p.diagnostics {
        let mut names = d.names();
        names.sort();
        for n in names {
            d.get(n).into_iter().flatten().for_each(|&x| eat(x));
        }
    }
    p.step_size.iter().for_each(|&x| eat(x));
}

fn hash_all(posteriors: &[&Posterior]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for p in posteriors {
        digest(p, &mut h);
    }
    format!("{h:016x}")
}

fn quickstart() -> String {
    let q = Quickstart::new(42).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .step_size(1e-2)
                .warmup(300)
                .keep(200)
                .num_chains(2)
                .init_jitter(0.1),
        )
        .unwrap();
    }
    let sol = q
        .problem
        .solve_with(500, &SolveOptions::default().quiet())
        .unwrap();
    hash_all(&sol.posterior_refs())
}

fn bpinn() -> String {
    let b = Bpinn::new(0).unwrap();
    b.net
        .bayesian(
            Bayesian::sgld()
                .step_size(1e-5)
                .warmup(20)
                .keep(30)
                .num_chains(2),
        )
        .unwrap();
    let sol = b
        .problem
        .solve_with(50, &SolveOptions::default().quiet())
        .unwrap();
    hash_all(&sol.posterior_refs())
}

fn gauss100() -> String {
    let g = Gauss100::new(1).unwrap();
    g.theta
        .bayesian(Bayesian::nuts().warmup(100).keep(40).likelihood_scale(50.0))
        .unwrap();
    let sol = g
        .problem
        .solve_with(140, &SolveOptions::default().quiet())
        .unwrap();
    hash_all(&sol.posterior_refs())
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/draws_fixture.txt")
}

#[test]
fn draws_equal_the_recorded_fixture() {
    let got: BTreeMap<&str, String> = [
        ("quickstart", quickstart()),
        ("bpinn", bpinn()),
        ("gauss100", gauss100()),
    ]
    .into_iter()
    .collect();
    let path = fixture_path();
    if std::env::var_os("CRUX_RECORD_FIXTURE").is_some() {
        let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).expect("tests/data/draws_fixture.txt exists");
    let want: BTreeMap<&str, String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    assert_eq!(got, want, "draws differ from the recorded fixture");
}
