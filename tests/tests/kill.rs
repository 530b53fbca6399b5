//! Kill test: a child process runs a solve with a checkpoint at every
//! chunk and is killed with SIGKILL once its checkpoint reaches a chosen
//! sweep (read from the checkpoint's header: by chunk count, not by sleep);
//! resuming from what it left gives the uninterrupted run's draws bit for
//! bit, and the checkpoint file is never truncated.

use std::io::BufRead;
use std::process::Command;
use std::time::{Duration, Instant};

use crux_tests::kill::{options, problem, SWEEPS};

/// The sweep recorded in the checkpoint's header, if it is readable.
/// `a`'s draws of the run resumed from `path` in a fresh problem, as a new
/// process would.
fn resumed(path: &std::path::Path) -> Vec<crux::LeafSamples> {
    let q = problem().unwrap();
    q.problem
        .solve_with(usize::MAX, &options().resume(path))
        .unwrap();
    q.a.posterior().unwrap().leaves.clone()
}

fn sweep_of(path: &std::path::Path) -> Option<usize> {
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v["sweep"].as_u64().map(|s| s as usize)
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_draws() {
    let q = problem().unwrap();
    q.problem.solve_with(usize::MAX, &options()).unwrap();
    let full = (q.a.posterior().unwrap(), q.b.posterior().unwrap());
    let dir = std::env::temp_dir().join(format!("crux-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut killed = 0;
    for target in [250, 5_000, 17_250] {
        let path = dir.join(format!("at{target}.ckpt"));
        let _ = std::fs::remove_file(&path);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ckpt_child"))
            .arg(&path)
            .spawn()
            .unwrap();
        let t = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the child failed: {status}");
                break true;
            }
            if sweep_of(&path).is_some_and(|s| s >= target) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break false;
            }
            assert!(t.elapsed() < Duration::from_secs(300), "the child hung");
            std::thread::sleep(Duration::from_micros(200));
        };
        let at = sweep_of(&path).expect("a whole checkpoint header");
        if !finished {
            killed += 1;
            assert!(at < SWEEPS, "killed before the end");
        }
        assert_eq!(resumed(&path), full.0.leaves, "killed at sweep {at}");
        assert_eq!(q.b.posterior().unwrap().leaves, full.1.leaves);
        assert_eq!(q.a.posterior().unwrap().diagnostics, full.0.diagnostics);
    }
    assert!(
        killed >= 2,
        "the child outran the test: only {killed} kill(s)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGINT (Ctrl-C) asks the child's solve to stop at the next chunk
/// boundary: it writes its checkpoint there, exits with status 130, and
/// resuming gives the uninterrupted draws.
#[test]
fn interrupted_runs_checkpoint_and_resume() {
    let q = problem().unwrap();
    q.problem.solve_with(usize::MAX, &options()).unwrap();
    let full = q.a.posterior().unwrap();
    let dir = std::env::temp_dir().join(format!("crux-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("int.ckpt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckpt_child"))
        .arg(&path)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while sweep_of(&path).is_none_or(|s| s < 2_000) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before the signal"
        );
        assert!(t.elapsed() < Duration::from_secs(300), "the child hung");
        std::thread::sleep(Duration::from_micros(200));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("skipped: no `kill` command to send SIGINT");
        return;
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    let at = sweep_of(&path).unwrap();
    assert!((2_000..SWEEPS).contains(&at));
    assert_eq!(resumed(&path), full.leaves, "interrupted at sweep {at}");
    let _ = std::fs::remove_dir_all(&dir);
}
