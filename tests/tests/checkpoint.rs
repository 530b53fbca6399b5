//! Checkpoint and resume: a run stopped at any chunk and resumed from its
//! checkpoint gives the uninterrupted run's draws bit for bit (also on
//! another tier or thread count), and every damaged or mismatched
//! checkpoint is a typed error saying what differs.

use std::path::PathBuf;

use crux::{Bayesian, CheckpointError, Error, Posterior, SolveOptions, Tiering};
use crux_samples::problems::Quickstart;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crux-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(format!("{tag}.ckpt"))
}

fn problem(scale: f64, chains: usize) -> Quickstart {
    let q = Quickstart::new(5).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .warmup(200)
                .keep(300)
                .num_chains(chains)
                .init_jitter(0.2)
                .likelihood_scale(scale),
        )
        .unwrap();
    }
    q
}

fn opts() -> SolveOptions {
    SolveOptions::default().quiet().chunk_sweeps(40).threads(2)
}

fn posteriors(q: &Quickstart) -> (Posterior, Posterior) {
    (
        (*q.a.posterior().unwrap()).clone(),
        (*q.b.posterior().unwrap()).clone(),
    )
}

fn same(x: &(Posterior, Posterior), y: &(Posterior, Posterior)) -> bool {
    x.0.leaves == y.0.leaves
        && x.1.leaves == y.1.leaves
        && x.0.diagnostics == y.0.diagnostics
        && x.0.step_size == y.0.step_size
        && x.0.inverse_mass == y.0.inverse_mass
}

/// `part` holds the first `n` draws (and their diagnostics) of `whole`.
fn prefix(part: &Posterior, whole: &Posterior, n: usize) -> bool {
    use ndarray::{s, Axis};
    let leaves = part.leaves.iter().zip(&whole.leaves).all(|(p, w)| {
        p.samples.len_of(Axis(1)) == n && p.samples == w.samples.slice_axis(Axis(1), (..n).into())
    });
    let diag = match (&part.diagnostics, &whole.diagnostics) {
        (Some(p), Some(w)) => w
            .names()
            .into_iter()
            .all(|f| p.get(f).unwrap() == w.get(f).unwrap().slice(s![.., ..n])),
        (None, None) => true,
        _ => false,
    };
    leaves && diag
}

/// Stops after 1, 3, 6 (the warmup's end is at sweep 200) and 10 chunks,
/// then resumes on the same or another tier and thread count.
#[test]
fn resumed_runs_give_the_uninterrupted_draws() {
    let q = problem(50.0, 2);
    let whole = q.problem.solve_with(usize::MAX, &opts()).unwrap();
    let full = posteriors(&q);
    for (n, resume) in [
        (1, opts()),
        (3, opts().threads(1)),
        (6, opts().tiering(Tiering::Baseline)),
        (10, opts().tiering(Tiering::Optimised).chunk_sweeps(7)),
    ] {
        let path = scratch(&format!("stop{n}"));
        let q = problem(50.0, 2);
        let e = q
            .problem
            .solve_with(
                usize::MAX,
                &opts()
                    .checkpoint(&path)
                    .checkpoint_every(0.0)
                    .stop_after_chunks(n),
            )
            .unwrap_err();
        match &e {
            Error::Interrupted {
                checkpoint,
                sweeps,
                partial,
                ..
            } => {
                assert_eq!(checkpoint.as_deref(), Some(path.as_path()));
                assert!(*sweeps > 0 && *sweeps < 500, "{e}");
                // The draws so far: the uninterrupted run's first ones,
                // on the error and on the models.
                let kept = sweeps.saturating_sub(200);
                assert_eq!(partial.models[0].num_draws, kept);
                assert!(prefix(&partial.posteriors[0], &full.0, kept), "{n}");
                assert!(prefix(&q.b.posterior().unwrap(), &full.1, kept), "{n}");
            }
            other => panic!("not an interruption: {other}"),
        }
        assert!(e.to_string().contains("resume it with"), "{e}");
        // A fresh process: the same problem and settings, resumed.
        let q = problem(50.0, 2);
        let sol = q
            .problem
            .solve_with(usize::MAX, &resume.resume(&path))
            .unwrap();
        assert!(same(&posteriors(&q), &full), "stopped after {n} chunks");
        // The whole run's gradient counts, wherever it stopped (the
        // checkpoint keeps the warmup's).
        assert_eq!(
            (sol.grad_evals_warmup, sol.grad_evals),
            (whole.grad_evals_warmup, whole.grad_evals),
            "stopped after {n} chunks"
        );
        let _ = std::fs::remove_file(&path);
    }
}

fn checkpoint_of(tag: &str) -> (PathBuf, Vec<u8>) {
    let path = scratch(tag);
    let q = problem(50.0, 2);
    let _ = q.problem.solve_with(
        usize::MAX,
        &opts()
            .checkpoint(&path)
            .checkpoint_every(0.0)
            .stop_after_chunks(2),
    );
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn resume_err(path: &PathBuf, q: &Quickstart, o: SolveOptions) -> CheckpointError {
    match q.problem.solve_with(usize::MAX, &o.resume(path)) {
        Err(Error::Checkpoint(e)) => e,
        Err(other) => panic!("not a checkpoint error: {other}"),
        Ok(_) => panic!("a bad checkpoint was resumed"),
    }
}

/// Rewrites the header line's `key` to `value` (JSON).
fn edit_header(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut h: serde_json::Value = serde_json::from_slice(&bytes[..nl]).unwrap();
    h[key] = serde_json::from_str(value).unwrap();
    let mut out = serde_json::to_vec(&h).unwrap();
    out.extend_from_slice(&bytes[nl..]);
    out
}

#[test]
fn damaged_or_mismatched_checkpoints_are_typed_errors() {
    let (path, good) = checkpoint_of("good");
    let q = || problem(50.0, 2);
    // 1. Missing.
    let missing = scratch("missing");
    let _ = std::fs::remove_file(&missing);
    assert!(matches!(
        resume_err(&missing, &q(), opts()),
        CheckpointError::Io { .. }
    ));
    // 2. Not a checkpoint.
    std::fs::write(&path, b"hello\nworld").unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::NotACheckpoint(_)
    ));
    // 3. Truncated payload.
    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::Length { .. }
    ));
    // 4. Padded payload.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 8]);
    std::fs::write(&path, &padded).unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::Length { .. }
    ));
    // 5. A flipped payload byte.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    assert_eq!(resume_err(&path, &q(), opts()), CheckpointError::Checksum);
    // 6. A newer format.
    std::fs::write(&path, edit_header(&good, "format", "2")).unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::Format { found: 2, .. }
    ));
    // 7. Another crux version.
    std::fs::write(&path, edit_header(&good, "crux", "\"0.0.1\"")).unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::CruxVersion { .. }
    ));
    // 8. Another problem (a different likelihood scale compiles another
    // sampler).
    std::fs::write(&path, &good).unwrap();
    assert_eq!(
        resume_err(&path, &problem(60.0, 2), opts()),
        CheckpointError::Problem
    );
    // 9. Another seed.
    let e = resume_err(&path, &q(), opts().seed(99));
    assert!(
        matches!(e, CheckpointError::Config { what: "seed", .. }),
        "{e}"
    );
    // 10. Another chain count.
    let e = resume_err(&path, &problem(50.0, 3), opts());
    assert!(
        matches!(e, CheckpointError::Config { what: "chains", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("had chains 2, this one 3"), "{e}");
    // 11. A header that is not crux's.
    std::fs::write(&path, edit_header(&good, "magic", "\"other\"")).unwrap();
    assert!(matches!(
        resume_err(&path, &q(), opts()),
        CheckpointError::NotACheckpoint(_)
    ));
    // The good one still resumes.
    std::fs::write(&path, &good).unwrap();
    q().problem
        .solve_with(usize::MAX, &opts().resume(&path))
        .unwrap();
    let _ = std::fs::remove_file(&path);
}
