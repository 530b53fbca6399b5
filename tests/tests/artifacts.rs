//! Ahead-of-time artifacts: compile → write → read → sample gives the
//! in-process solve's draws bit for bit (all draws or the first N, on
//! Cranelift and the interpreter), and every way an artifact can be
//! broken is a typed error, never a panic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crux::{
    Artifact, ArtifactError, ArtifactRun, Backend, Bayesian, Error, Init, SolveOptions, Vi,
};
use crux_samples::problems::Quickstart;

/// A fresh directory under the system's temporary directory.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "crux-artifact-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn configure(q: &Quickstart) {
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .warmup(200)
                .keep(300)
                .num_chains(2)
                .init_jitter(0.1)
                .likelihood_scale(100.0),
        )
        .unwrap();
    }
}

/// `problem`'s artifact named `name`, written to a fresh directory.
fn write_artifact(problem: &crux::Crux, name: &str, tag: &str) -> (Artifact, PathBuf) {
    let art = problem
        .compile_artifact(name, usize::MAX, &SolveOptions::default())
        .unwrap();
    let dir = scratch(tag);
    art.write(&dir).unwrap();
    (art, dir)
}

/// The quick example's artifact, written to a fresh directory.
fn written(tag: &str) -> PathBuf {
    let q = Quickstart::new(7).unwrap();
    configure(&q);
    write_artifact(&q.problem, "quickstart", tag).1
}

#[test]
fn round_trip_gives_the_in_process_draws_bit_for_bit() {
    let q = Quickstart::new(7).unwrap();
    configure(&q);
    let (art, dir) = write_artifact(&q.problem, "quickstart", "roundtrip");
    // In process, after compiling (the solve moves the models' values).
    q.problem
        .solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let loaded = Artifact::read(&dir).unwrap();
    assert_eq!(loaded.manifest().name, "quickstart");
    assert_eq!(loaded.function().unwrap(), art.function().unwrap());
    for backend in [Backend::Cranelift, Backend::Interpreter] {
        let run = ArtifactRun {
            backend,
            ..Default::default()
        };
        let out = loaded.sample(&run).unwrap();
        // Cranelift runs the artifact's shared library when it has one
        // (the system's `cc` linked it), compiling nothing.
        assert_eq!(
            out.from_library,
            backend == Backend::Cranelift && loaded.has_shared_library()
        );
        assert_eq!(out.posteriors.len(), 2);
        for (p, post) in [&q.a, &q.b].into_iter().zip(&out.posteriors) {
            let inproc = p.posterior().unwrap();
            assert_eq!(post.model, inproc.model);
            assert_eq!(post.leaves, inproc.leaves, "{backend:?} {}", p.name());
            assert_eq!(post.diagnostics, inproc.diagnostics);
            assert_eq!(post.step_size, inproc.step_size);
            assert_eq!(post.inverse_mass, inproc.inverse_mass);
        }
    }
    // Compiled from the kernel IR (the baseline tier never loads the
    // library): the same draws.
    let run = ArtifactRun {
        tiering: crux::Tiering::Baseline,
        ..Default::default()
    };
    let out = loaded.sample(&run).unwrap();
    assert!(!out.from_library);
    assert_eq!(out.posteriors[0].leaves, q.a.posterior().unwrap().leaves);
    // The first 50 draws only: the same 50 draws.
    let run = ArtifactRun {
        draws: Some(50),
        ..Default::default()
    };
    let out = loaded.sample(&run).unwrap();
    let full = q.a.posterior_samples().unwrap();
    let part = out.posteriors[0].leaf("a").unwrap();
    assert_eq!(part.shape(), [2, 50, 1]);
    assert_eq!(
        part,
        &full.slice(ndarray::s![.., ..50, ..]).to_owned().into_dyn()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_err(dir: &Path) -> ArtifactError {
    match Artifact::read(dir) {
        Err(Error::Artifact(e)) => e,
        Err(other) => panic!("not an artifact error: {other}"),
        Ok(_) => panic!("a broken artifact was read"),
    }
}

/// Rewrites `manifest.json` through `f` (as JSON).
fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Writes `bytes` as `file` and its hash into the manifest (a consistent
/// but wrong artifact).
fn replace_with_hash(dir: &Path, file: &str, bytes: &[u8]) {
    use sha2::Digest;
    std::fs::write(dir.join(file), bytes).unwrap();
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    edit_manifest(dir, |m| {
        for f in m["files"].as_array_mut().unwrap() {
            if f["name"] == file {
                f["sha256"] = serde_json::json!(hex);
                f["bytes"] = serde_json::json!(bytes.len());
            }
        }
    });
}

#[test]
fn broken_artifacts_are_typed_errors() {
    // 1. Not a directory.
    let e = read_err(Path::new("/nonexistent/crux-model"));
    assert!(matches!(e, ArtifactError::NotAnArtifact(_)), "{e}");
    // 2. No manifest.
    let d = written("nomanifest");
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    assert_eq!(
        read_err(&d),
        ArtifactError::MissingFile("manifest.json".into())
    );
    // 3. A manifest that is not JSON.
    let d = written("badjson");
    std::fs::write(d.join("manifest.json"), b"{ not json").unwrap();
    assert!(matches!(read_err(&d), ArtifactError::Manifest(_)));
    // 4. Another format version.
    let d = written("format");
    edit_manifest(&d, |m| m["format_version"] = serde_json::json!(99));
    assert!(matches!(
        read_err(&d),
        ArtifactError::FormatVersion { found: 99, .. }
    ));
    // 5. Another crux version (stale).
    let d = written("stale");
    edit_manifest(&d, |m| m["crux_version"] = serde_json::json!("0.0.1"));
    assert!(matches!(read_err(&d), ArtifactError::CruxVersion { .. }));
    // 6. A big-endian target.
    let d = written("target");
    edit_manifest(&d, |m| {
        m["target"] = serde_json::json!("powerpc64-linux-be")
    });
    let e = read_err(&d);
    assert!(matches!(e, ArtifactError::Target { .. }), "{e}");
    assert!(e.to_string().contains("compile it on this host"));
    // 7. The kernel edited after writing.
    let d = written("tampered");
    let mut k = std::fs::read(d.join("chunk.kir")).unwrap();
    k.extend_from_slice(b"\n");
    std::fs::write(d.join("chunk.kir"), k).unwrap();
    assert!(
        matches!(read_err(&d), ArtifactError::HashMismatch { file, .. } if file == "chunk.kir")
    );
    // 8. The kernel missing.
    let d = written("nokernel");
    std::fs::remove_file(d.join("chunk.kir")).unwrap();
    assert_eq!(read_err(&d), ArtifactError::MissingFile("chunk.kir".into()));
    // 9. Truncated data.
    let d = written("truncated");
    let b = std::fs::read(d.join("data.bin")).unwrap();
    std::fs::write(d.join("data.bin"), &b[..b.len() / 2]).unwrap();
    assert!(matches!(read_err(&d), ArtifactError::HashMismatch { file, .. } if file == "data.bin"));
    // 10. A kernel that does not parse (hash updated).
    let d = written("garbage");
    replace_with_hash(&d, "chunk.kir", b"this is not kernel IR");
    assert!(matches!(read_err(&d), ArtifactError::Kernel(_)));
    // ... which `open` defers to the first use that needs the kernel.
    let opened = Artifact::open(&d).unwrap();
    let run = ArtifactRun {
        backend: Backend::Interpreter,
        ..Default::default()
    };
    assert!(matches!(
        opened.sample(&run),
        Err(Error::Artifact(ArtifactError::Kernel(_)))
    ));
    // 11. A state of the wrong length (hash updated).
    let d = written("state");
    replace_with_hash(&d, "state.bin", &[0u8; 16]);
    assert!(matches!(read_err(&d), ArtifactError::Layout(_)));
    // 12. A state that is not whole f64s (hash updated).
    let d = written("ragged");
    replace_with_hash(&d, "state.bin", &[0u8; 13]);
    assert!(matches!(read_err(&d), ArtifactError::Layout(_)));
    // 13. A manifest that lists no kernel.
    let d = written("unlisted");
    edit_manifest(&d, |m| {
        m["files"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "chunk.kir");
    });
    assert!(matches!(read_err(&d), ArtifactError::Manifest(_)));
    // 14. A draws layout past its buffer.
    let d = written("layout");
    edit_manifest(&d, |m| {
        m["models"][0]["leaves"][0]["source"]["Draws"]["offset"] = serde_json::json!(1u64 << 40)
    });
    assert!(matches!(read_err(&d), ArtifactError::Layout(_)));
    // 15. A tampered shared library.
    let d = written("so");
    if d.join("chunk.so").exists() {
        let mut so = std::fs::read(d.join("chunk.so")).unwrap();
        so[0] ^= 1;
        std::fs::write(d.join("chunk.so"), so).unwrap();
        assert!(
            matches!(read_err(&d), ArtifactError::HashMismatch { file, .. } if file == "chunk.so")
        );
    }
    // 16. Runs asking for more than the artifact holds.
    let art = Artifact::read(&written("run")).unwrap();
    for run in [
        ArtifactRun {
            draws: Some(301),
            ..Default::default()
        },
        ArtifactRun {
            chains: Some(0),
            ..Default::default()
        },
        ArtifactRun {
            backend: Backend::Cuda,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            art.sample(&run),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

/// Problems an artifact cannot carry yet are refused when compiling.
#[test]
fn unsupported_problems_are_refused() {
    let q = Quickstart::new(1).unwrap();
    q.a.vi(Vi::meanfield()).unwrap();
    let e = q
        .problem
        .compile_artifact("vi", 100, &SolveOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::Artifact(ArtifactError::Unsupported(_))),
        "{e}"
    );
    let q = Quickstart::new(1).unwrap();
    q.a.bayesian(Bayesian::nuts()).unwrap();
    q.a.initialize(Init::pathfinder()).unwrap();
    let e = q
        .problem
        .compile_artifact("init", 2000, &SolveOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("initializer"), "{e}");
}

/// A problem file: the quick example's traced log-density as graph IR
/// text, compiled into a NUTS artifact over (a, b) jointly; its draws match
/// the exact posterior within 4 MCSE, and the same artifact read back
/// gives the same draws.
#[test]
fn graph_ir_problem_files_sample_the_exact_posterior() {
    use crux::{GraphSampling, Prior};
    use crux_tests::stats::within_4_mcse;
    let q = Quickstart::new(7).unwrap();
    let (mu, cov) = q.exact_posterior(100.0).unwrap();
    let ld = q
        .problem
        .log_density()
        .sample(&q.a, Prior::default())
        .sample(&q.b, Prior::default())
        .likelihood_scale(100.0)
        .build()
        .unwrap();
    let text = crux_ir::graph::text::print(ld.stage_graph("traced").unwrap());
    let sampling = GraphSampling {
        warmup: 500,
        keep: 2000,
        chains: 2,
        init_jitter: 0.1,
        ..Default::default()
    };
    let art = Artifact::from_graph_text(&text, "quick", &sampling).unwrap();
    let dir = scratch("graph");
    art.write(&dir).unwrap();
    let back = Artifact::read(&dir).unwrap();
    let out = back.sample(&ArtifactRun::default()).unwrap();
    let again = art.sample(&ArtifactRun::default()).unwrap();
    assert_eq!(out.posteriors[0].leaves, again.posteriors[0].leaves);
    let post = &out.posteriors[0];
    assert_eq!(post.leaf_names(), ["a", "b"]);
    for (j, name) in ["a", "b"].into_iter().enumerate() {
        let x = post.entry(j, 0).unwrap();
        within_4_mcse(&x, mu[j], &format!("graph file: mean {name}"));
        within_4_mcse(
            &x.mapv(|v| (v - mu[j]).powi(2)),
            cov[j][j],
            &format!("graph file: var {name}"),
        );
    }
    let e = Artifact::from_graph_text("not a graph", "x", &sampling).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An artifact run stopped after 1, 2 or 4 chunks and resumed from its
/// checkpoint (on the same or the other backend, other threads) gives the
/// uninterrupted run's draws bit for bit; the stopped run holds the draws
/// so far; a checkpoint of another seed or draw count is a typed error.
#[test]
fn artifact_runs_checkpoint_and_resume_bit_for_bit() {
    let dir = written("ckpt");
    let art = Artifact::read(&dir).unwrap();
    let full = art.sample(&ArtifactRun::default()).unwrap();
    assert_eq!(full.stopped_at, None);
    let ckpt = dir.join("run.ckpt");
    for (n, backend, threads) in [
        (1, Backend::Cranelift, 1),
        (2, Backend::Interpreter, 2),
        (4, Backend::Cranelift, 2),
    ] {
        let stopped = art
            .sample(&ArtifactRun {
                checkpoint: Some(ckpt.clone()),
                checkpoint_every: 0.0,
                stop_after_chunks: Some(n),
                chunk_sweeps: Some(60),
                ..Default::default()
            })
            .unwrap();
        let at = stopped.stopped_at.expect("stopped early");
        assert!(at > 0 && at < full.sweeps, "{n}: {at}");
        let kept = at.saturating_sub(200);
        let part = stopped.posteriors[0].leaf("a").unwrap();
        let whole = full.posteriors[0].leaf("a").unwrap();
        assert_eq!(
            part,
            &whole
                .slice(ndarray::s![.., ..kept, ..])
                .to_owned()
                .into_dyn()
        );
        let resumed = art
            .sample(&ArtifactRun {
                resume: Some(ckpt.clone()),
                backend,
                threads: Some(threads),
                ..Default::default()
            })
            .unwrap();
        for (r, f) in resumed.posteriors.iter().zip(&full.posteriors) {
            assert_eq!(r.leaves, f.leaves, "stopped after {n}");
            assert_eq!(r.diagnostics, f.diagnostics, "stopped after {n}");
            assert_eq!(r.step_size, f.step_size, "stopped after {n}");
            assert_eq!(r.inverse_mass, f.inverse_mass, "stopped after {n}");
        }
    }
    for (run, what) in [
        (
            ArtifactRun {
                resume: Some(ckpt.clone()),
                seed: Some(99),
                ..Default::default()
            },
            "seed",
        ),
        (
            ArtifactRun {
                resume: Some(ckpt.clone()),
                draws: Some(10),
                ..Default::default()
            },
            "sweeps",
        ),
    ] {
        match art.sample(&run) {
            Err(Error::Checkpoint(crux::CheckpointError::Config { what: w, .. })) => {
                assert_eq!(w, what)
            }
            other => panic!("{what}: {:?}", other.map(|o| o.sweeps)),
        }
    }
    let bad = ArtifactRun {
        checkpoint_every: f64::NAN,
        ..Default::default()
    };
    assert!(matches!(
        art.sample(&bad),
        Err(Error::InvalidArgument { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A constrained parameter's draws come out of an artifact on the
/// constrained scale, equal to the in-process solve's (eight schools: τ >
/// 0 through `.positive()`).
#[test]
fn constrained_parameters_round_trip_through_artifacts() {
    let s = crux_samples::problems::EightSchools::new().unwrap();
    s.group
        .bayesian(
            Bayesian::nuts()
                .warmup(200)
                .keep(200)
                .num_chains(2)
                .prior(crux::Prior::flat()),
        )
        .unwrap();
    let dir = write_artifact(&s.problem, "schools", "schools").1;
    s.problem
        .solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let out = Artifact::read(&dir)
        .unwrap()
        .sample(&ArtifactRun::default())
        .unwrap();
    let inproc = s.group.posterior().unwrap();
    assert_eq!(out.posteriors[0].leaves, inproc.leaves);
    assert!(out.posteriors[0]
        .leaf("tau")
        .unwrap()
        .iter()
        .all(|t| *t > 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}
