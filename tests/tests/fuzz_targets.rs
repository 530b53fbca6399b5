//! The `fuzz/` targets' bodies ([`crux_tests::fuzz`]) on inputs CI can
//! afford: every file checked in under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` (inputs a fuzzing run found or kept), then
//! deterministic pseudo-random inputs of every mode. A long run is
//! `cargo +nightly fuzz run <target>` (see `fuzz/README.md`).

use std::path::PathBuf;

use crux_tests::fuzz::{graph_text, kernel_differential, kernel_text};

/// splitmix64: the inputs' bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// The checked-in inputs of `target`.
fn saved(target: &str) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            out.push(std::fs::read(e.path()).unwrap());
        }
    }
    out
}

fn run(target: &str, f: fn(&[u8]), n: u64) -> usize {
    let saved = saved(target);
    for input in &saved {
        f(input);
    }
    for i in 0..n {
        let mut input = bytes(i, (i as usize * 37) % 600);
        if let Some(m) = input.first_mut() {
            // Alternate the modes of the text targets.
            *m = (*m & !1) | (i % 2) as u8;
        }
        f(&input);
    }
    saved.len()
}

#[test]
fn kernel_text_target() {
    run("kernel_text", kernel_text, 2000);
}

#[test]
fn graph_text_target() {
    run("graph_text", graph_text, 2000);
}

#[test]
fn kernel_differential_target() {
    run("kernel_differential", kernel_differential, 500);
}

/// The modes reach what they should: raw text fails to parse, seeded
/// kernels are generated and their edits sometimes still parse.
#[test]
fn the_inputs_reach_the_parsers() {
    let seeded = (0..50u64)
        .filter_map(|i| crux_tests::fuzz::kernel_of(&bytes(i, 8)))
        .count();
    assert!(seeded >= 45, "{seeded} of 50 seeds gave a kernel");
    let graphs = crux_tests::fuzz::sample_graphs();
    assert_eq!(graphs.len(), 4);
    for g in graphs {
        assert!(crux_ir::graph::text::parse(g).is_ok());
    }
}
