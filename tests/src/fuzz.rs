//! The fuzz targets' bodies: `fuzz/fuzz_targets/*.rs` (cargo-fuzz,
//! libFuzzer) call these with libFuzzer's inputs, and
//! `tests/tests/fuzz_targets.rs` runs them in CI on generated inputs. Each
//! panics exactly when a property fails, which is what libFuzzer records.
//!
//! Inputs are bytes. The text targets read a leading mode byte: raw UTF-8
//! text (what a user could hand the parser), or a seed for a generated
//! valid text that the remaining bytes then edit (deeper than raw bytes
//! reach). The differential target turns the bytes into the seed of the
//! proptest generator [`crate::kgen::arb_kernel`], so every input is a
//! valid random program.

use crux_ir::text_fuzz::{mutate, GRAPH_TOKENS, KERNEL_TOKENS};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::differential::{check_backend, check_parse, check_text};
use crate::kgen::{arb_kernel, KGenCase, KGenConfig};

/// A generator run seeded by `bytes` (folded into 32 bytes).
fn runner(bytes: &[u8]) -> TestRunner {
    let mut seed = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        seed[i % 32] ^= b.rotate_left((i / 32) as u32 % 8);
    }
    // The length too, so inputs that fold alike still differ.
    seed[31] ^= bytes.len() as u8;
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    )
}

/// The random valid kernel `bytes` seed (`None` when the generator
/// rejects its draw).
pub fn kernel_of(bytes: &[u8]) -> Option<KGenCase> {
    let tree = arb_kernel(KGenConfig::default())
        .new_tree(&mut runner(bytes))
        .ok()?;
    Some(tree.current())
}

/// Edits of `text`, two bytes each (kind, position), at most 8.
fn edited(mut text: String, edits: &[u8], tokens: &[char]) -> String {
    for e in edits.chunks_exact(2).take(8) {
        let at = (e[1] as usize) * 7919 + e[0] as usize;
        text = mutate(&text, e[0], at, tokens);
    }
    text
}

/// Kernel text parser: never panics; what parses verifies and round-trips.
/// Mode byte even: the rest is text; odd: bytes 1..9 seed a generated
/// kernel's text (which must round-trip and compute the same), the rest
/// edit it.
pub fn kernel_text(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (seed, edits) = rest.split_at(rest.len().min(8));
        let Some(case) = kernel_of(seed) else {
            return;
        };
        if let Err(e) = check_text(&case) {
            panic!("{e}");
        }
        edited(
            crux_ir::kernel::text::print(&case.function),
            edits,
            &KERNEL_TOKENS,
        )
    };
    if let Err(e) = check_parse(&text) {
        panic!("{e}\n--- text ---\n{text}");
    }
}

/// Graph text parser: never panics; what parses verifies and round-trips.
/// Mode byte even: the rest is text; odd: the text of one of crux's sample
/// graphs (the quick example at each stage, chosen by byte 1), edited by the rest.
pub fn graph_text(data: &[u8]) {
    use crux_ir::graph::text::{parse, print};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let Some((&which, edits)) = rest.split_first() else {
            return;
        };
        let graphs = sample_graphs();
        let base = &graphs[which as usize % graphs.len()];
        edited(base.clone(), edits, &GRAPH_TOKENS)
    };
    if let Ok(g) = parse(&text) {
        if let Err(e) = crux_ir::graph::verify(&g) {
            panic!("a parsed graph does not verify: {e}\n--- text ---\n{text}");
        }
        let again = parse(&print(&g));
        if again.as_ref() != Ok(&g) {
            panic!("a parsed graph does not round-trip: {again:?}\n--- text ---\n{text}");
        }
    }
}

/// Interpreter == Cranelift, bit for bit, on the kernel `data` seeds.
pub fn kernel_differential(data: &[u8]) {
    if let Some(case) = kernel_of(data) {
        if let Err(e) = check_backend(&case) {
            panic!(
                "{e}\n--- kernel ---\n{}",
                crux_ir::kernel::text::print(&case.function)
            );
        }
    }
}

/// The graph-IR texts of the samples' log-densities at every stage (built
/// once): valid starting points for edits.
pub fn sample_graphs() -> &'static [String] {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut out = Vec::new();
        if let Ok(q) = crux_samples::problems::Quickstart::new(0) {
            if let Ok(ld) = q.log_density(1.0) {
                for stage in ["traced", "differentiated", "staged", "optimised"] {
                    if let Ok(t) = ld.stage_ir(stage) {
                        out.push(t);
                    }
                }
            }
        }
        if out.is_empty() {
            out.push(String::new());
        }
        out
    })
}
