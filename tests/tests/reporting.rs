//! What a solve reports: the tracker's JSONL stream, the arviz-layout
//! `.npz`, the CSV and the summary table, each read back and compared with
//! the posterior it came from.

use crux::diagnostics::{mcse_mean, quantile, summarize};
use crux::export::{read_npz, write_arviz_npz, write_csv, NpyArray};
use crux::{Bayesian, SolveOptions};
use crux::{JsonlTracker, Posterior};
use crux_samples::problems::Quickstart;

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("crux-reporting-{}-{name}", std::process::id()))
}

/// A short two-chain NUTS solve of the quick example.
fn solved(opts: SolveOptions) -> (Quickstart, crux::Solution) {
    let q = Quickstart::new(5).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .warmup(40)
                .keep(30)
                .thin(2)
                .num_chains(2)
                .init_jitter(0.3),
        )
        .unwrap();
    }
    let sol = q
        .problem
        .solve_with(1000, &opts.quiet().chunk_sweeps(17))
        .unwrap();
    (q, sol)
}

#[test]
fn jsonl_tracker_streams_the_spec_metrics() {
    let path = temp("track.jsonl");
    let (q, sol) = solved(SolveOptions::default().tracker(JsonlTracker::create(&path).unwrap()));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6, "{} lines", lines.len());
    let sweeps: Vec<u64> = lines.iter().map(|l| l["sweep"].as_u64().unwrap()).collect();
    assert!(sweeps.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*sweeps.last().unwrap() as usize, sol.sweeps);
    let last = lines.last().unwrap();
    let a = q.a.posterior_samples().unwrap();
    assert_eq!(last["posterior/a/n_samples"], 30.0);
    assert_eq!(last["posterior/a/n_chains"], 2.0);
    let mean = a.mean().unwrap();
    let got = last["posterior/a/mean"].as_f64().unwrap();
    assert!((got - mean).abs() <= 1e-12 * mean.abs(), "{got} vs {mean}");
    let d = q.a.posterior_diagnostics().unwrap();
    let div = d.get("is_divergent").unwrap().sum();
    assert_eq!(last["posterior/a/n_is_divergent"].as_f64().unwrap(), div);
    let acc = d.acceptance_rate().unwrap().mean().unwrap();
    let got = last["posterior/b/mean_acceptance_rate"].as_f64().unwrap();
    assert!(got > 0.0 && got <= 1.0);
    let got_a = last["posterior/a/mean_acceptance_rate"].as_f64().unwrap();
    assert!((got_a - acc).abs() <= 1e-12, "{got_a} vs {acc}");
    assert!(last["posterior/a/mean_energy"]
        .as_f64()
        .unwrap()
        .is_finite());
    // Before warmup ends no draw is kept and no mean is reported.
    assert_eq!(lines[0]["posterior/a/n_samples"], 0.0);
    assert!(lines[0].get("posterior/a/mean").is_none());
    // The loss at chain 0's position: after the solve the models hold it.
    let loss = q.problem.loss_value().unwrap();
    let got = last["loss"].as_f64().unwrap();
    assert!((got - loss).abs() <= 1e-12 * loss.abs(), "{got} vs {loss}");
    assert_eq!(last["loss/c0"], last["loss"]);
}

fn stats(p: &Posterior, field: &str) -> Vec<f64> {
    p.diagnostics
        .as_ref()
        .unwrap()
        .get(field)
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn arviz_npz_reads_back() {
    let (q, sol) = solved(SolveOptions::default());
    let path = temp("chains.npz");
    let posts = sol.posterior_refs();
    let obs = NpyArray {
        name: "target".into(),
        shape: vec![3],
        data: vec![1.0, 2.0, 3.0],
    };
    write_arviz_npz(&path, &posts, std::slice::from_ref(&obs)).unwrap();
    let back = read_npz(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let get = |n: &str| {
        back.iter()
            .find(|a| a.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let a = q.a.posterior_samples().unwrap();
    let pa = get("posterior/a");
    assert_eq!(pa.shape, vec![2, 30, 1]);
    assert_eq!(pa.data, a.iter().copied().collect::<Vec<_>>());
    // Two models record diagnostics: suffixed fields and a combined `diverging`.
    assert_eq!(
        get("sample_stats/n_steps_a").data,
        stats(posts[0], "num_integration_steps")
    );
    assert_eq!(get("sample_stats/energy_b").data, stats(posts[1], "energy"));
    let any: Vec<f64> = stats(posts[0], "is_divergent")
        .iter()
        .zip(stats(posts[1], "is_divergent"))
        .map(|(x, y)| x.max(y))
        .collect();
    assert_eq!(get("sample_stats/diverging").data, any);
    assert_eq!(get("sample_stats/diverging").shape, vec![2, 30]);
    assert_eq!(get("target"), &obs);
    // One model: unsuffixed arviz names.
    let one = crux::export::arviz_arrays(&posts[..1], &[]).unwrap();
    let names: Vec<&str> = one.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "posterior/a",
            "sample_stats/diverging",
            "sample_stats/acceptance_rate",
            "sample_stats/energy",
            "sample_stats/tree_depth",
            "sample_stats/n_steps"
        ]
    );
}

#[test]
fn csv_has_one_row_per_chain_and_draw() {
    let (q, sol) = solved(SolveOptions::default());
    let path = temp("draws.csv");
    let posts = sol.posterior_refs();
    write_csv(&path, &posts).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("chain,draw,a[0],b[0]"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 60);
    let (a, b) = (
        q.a.posterior_samples().unwrap(),
        q.b.posterior_samples().unwrap(),
    );
    for r in &rows {
        let (c, d) = (r[0] as usize, r[1] as usize);
        assert_eq!(r[2], a[[c, d, 0]]);
        assert_eq!(r[3], b[[c, d, 0]]);
    }
}

#[test]
fn summary_table_matches_the_diagnostics() {
    let (q, sol) = solved(SolveOptions::default());
    let table = sol.summary();
    assert_eq!(table.rows.len(), 2);
    let a = q.a.posterior().unwrap().entry(0, 0).unwrap();
    let s = summarize(a.view());
    let row = table.row("a[0]").unwrap();
    assert_eq!(row.mean, s.mean);
    assert_eq!(row.r_hat, s.rhat);
    assert_eq!(row.ess_tail, s.ess_tail);
    assert_eq!(row.mcse_mean, mcse_mean(a.view()));
    let flat: Vec<f64> = a.iter().copied().collect();
    assert_eq!(row.q50, quantile(&flat, 0.5));
    let text = table.to_string();
    assert!(text.lines().next().unwrap().contains("mcse_mean"));
    assert!(text.lines().nth(2).unwrap().starts_with("b[0]"));
}
