//! The `crux` command end to end: compile → inspect → sample, its JSON
//! output, and its errors (exit status 1 and a message, no panic).

use std::path::PathBuf;
use std::process::Command;

fn crux() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crux"))
}

/// Runs `cmd`, asserting it succeeded (showing its stderr otherwise).
fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crux-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn compile_inspect_sample() {
    let dir = scratch("qs");
    let out = succeed(
        crux()
            .args([
                "compile",
                "quickstart",
                "--chains",
                "2",
                "--draws",
                "200",
                "--warmup",
                "200",
                "-o",
            ])
            .arg(&dir),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 model(s), 400 sweeps, 200 draws per chain, 2 chain(s)"),
        "{text}"
    );

    let out = succeed(crux().arg("inspect").arg(&dir));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "model a: nuts",
        "chunk.kir",
        "every hash checked",
        "graph 0",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }

    let json = dir.join("out.json");
    succeed(
        crux()
            .arg("sample")
            .arg(&dir)
            .args(["--draws", "100", "--seed", "3", "--quiet", "--json"])
            .arg(&json),
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        (v["chains"].as_u64(), v["draws"].as_u64()),
        (Some(2), Some(100))
    );
    let rows = v["models"][0]["summary"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "a[0]");
    // The interpreter gives the same summary (the same draws).
    let json2 = dir.join("out2.json");
    succeed(
        crux()
            .arg("sample")
            .arg(&dir)
            .args([
                "--draws",
                "100",
                "--seed",
                "3",
                "--quiet",
                "--backend",
                "interp",
                "--json",
            ])
            .arg(&json2),
    );
    let v2: serde_json::Value = serde_json::from_slice(&std::fs::read(&json2).unwrap()).unwrap();
    assert_eq!(v["models"], v2["models"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_are_messages() {
    let out = crux()
        .args(["sample", "/nonexistent/model.crux"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an artifact directory"), "{err}");
    let dir = scratch("bad");
    succeed(crux().args(["compile", "quickstart", "-o"]).arg(&dir));
    let out = crux()
        .arg("sample")
        .arg(&dir)
        .args(["--draws", "5000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("draws must be in 1..=1000"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `crux compile FILE`: a log-density in graph IR text (here the quick
/// example's, traced), then sampled.
#[test]
fn compile_a_problem_file() {
    use crux::Prior;
    let q = crux_samples::problems::Quickstart::new(3).unwrap();
    let ld = q
        .problem
        .log_density()
        .sample(&q.a, Prior::default())
        .sample(&q.b, Prior::default())
        .build()
        .unwrap();
    let dir = scratch("file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quick.graph");
    std::fs::write(
        &file,
        crux_ir::graph::text::print(ld.stage_graph("traced").unwrap()),
    )
    .unwrap();
    let art = dir.join("quick.crux");
    let out = succeed(
        crux()
            .arg("compile")
            .arg(&file)
            .args(["--chains", "2", "--init-jitter", "0.1", "-o"])
            .arg(&art),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("quick: NUTS over 2 leaves"));
    let json = dir.join("s.json");
    succeed(
        crux()
            .arg("sample")
            .arg(&art)
            .args(["--quiet", "--json"])
            .arg(&json),
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> = v["models"][0]["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a[0]", "b[0]"]);
    // An unreadable problem is a message, not a panic.
    let out = crux()
        .args(["compile", "/nonexistent.graph", "-o"])
        .arg(dir.join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nor a readable problem file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `crux sample --checkpoint P --stop-after-chunks 1` stops with status
/// 130, the summary of the draws so far and the resume command; `--resume
/// P` then prints the uninterrupted run's summary.
#[test]
fn sample_checkpoint_and_resume() {
    let dir = scratch("ckpt");
    succeed(
        crux()
            .args(["compile", "quickstart", "--chains", "2", "-o"])
            .arg(&dir),
    );
    let summary = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("a[0]") || l.starts_with("b[0]"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let full = succeed(crux().arg("sample").arg(&dir).arg("--quiet"));
    let ckpt = dir.join("run.ckpt");
    let out = crux()
        .arg("sample")
        .arg(&dir)
        .args([
            "--quiet",
            "--checkpoint-every",
            "0",
            "--stop-after-chunks",
            "1",
            "--checkpoint",
        ])
        .arg(&ckpt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stopped after"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = succeed(
        crux()
            .arg("sample")
            .arg(&dir)
            .args(["--quiet", "--resume"])
            .arg(&ckpt),
    );
    assert_eq!(summary(&resumed), summary(&full));
    assert_eq!(summary(&full).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
