//! Backend differential tests (DESIGN §7, rung 3): the reference kernel
//! interpreter against the Cranelift backend, bit for bit, on random valid
//! kernel programs from [`crux_tests::kgen::arb_kernel`].
//!
//! The checks and their comparison rule are in
//! [`crux_tests::differential`] (the `fuzz/` targets run the same ones).
//!
//! Properties, 10,000 random programs each: (1) interpreter == Cranelift;
//! (2) every generated kernel round-trips through the text format, and the
//! parsed kernel computes the same results; and (3) 300 edited kernel
//! texts parse to a verified round-tripping kernel or fail cleanly.
//!
//! Failures are persisted in `proptest-regressions/backend_differential.txt`
//! (relative to the crate) and replayed first on every run.

use crux_ir::kernel::text::print;
use crux_ir::kernel::{KernelError, Scalar};
use crux_ir::text_fuzz::{mutate, KERNEL_TOKENS};
use crux_tests::differential::{check_backend, check_parse, check_text, interpret};
use crux_tests::kgen::{arb_kernel, KGenConfig};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/backend_differential.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    /// interpreter == Cranelift, bit for bit (or the same error kind).
    #[test]
    fn cranelift_matches_interpreter(case in arb_kernel(KGenConfig::default())) {
        check_backend(&case).map_err(TestCaseError::fail)?;
    }

    /// `parse(print(f)) == f`, printing is stable, and the parsed kernel
    /// computes the same results.
    #[test]
    fn kernels_round_trip_through_text(case in arb_kernel(KGenConfig::default())) {
        check_text(&case).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Parsing a mutated generated kernel never panics; what parses is
    /// verified and round-trips.
    #[test]
    fn mutated_kernels_parse_or_fail_cleanly(
        case in arb_kernel(KGenConfig::default()),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>()), 1..4),
    ) {
        let mut text = print(&case.function);
        for (kind, at) in edits {
            text = mutate(&text, kind, at, &KERNEL_TOKENS);
        }
        check_parse(&text).map_err(TestCaseError::fail)?;
    }
}

/// What the generator produces (run with `--ignored --nocapture` when
/// changing the generator).
#[test]
#[ignore]
fn generator_statistics() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strat = arb_kernel(KGenConfig::default());
    let n = 1000;
    let (mut rets, mut nan_rets) = (0, 0);
    let (mut lines, mut ok, mut oob, mut loops, mut whiles, mut ifs, mut philox) =
        (0, 0, 0, 0, 0, 0, 0);
    let (mut fmas, mut with_fma, mut gemms, mut with_gemm) = (0, 0, 0, 0);
    for _ in 0..n {
        let case = strat.new_tree(&mut runner).unwrap().current();
        let text = print(&case.function);
        lines += text.lines().count();
        loops += text.matches(" for ").count();
        whiles += text.matches(" while ").count();
        ifs += text.matches(" if ").count();
        philox += usize::from(text.contains("0x00000000d2511f53"));
        fmas += text.matches(" = fma ").count();
        with_fma += usize::from(text.contains(" = fma "));
        gemms += text.matches(" gemm ").count();
        with_gemm += usize::from(text.contains(" gemm "));
        match interpret(&case).unwrap().0 {
            Ok(r) => {
                ok += 1;
                rets += r.len();
                nan_rets += r
                    .iter()
                    .filter(|s| {
                        matches!(s, Scalar::F64(x) if x.is_nan())
                            || matches!(s, Scalar::F32(x) if x.is_nan())
                    })
                    .count();
            }
            Err(KernelError::OutOfBounds { .. }) => oob += 1,
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "{n} kernels: {lines} lines; {loops} for, {whiles} while, {ifs} if; {philox} with philox; \
         {fmas} fma in {with_fma} kernels; {gemms} gemm in {with_gemm} kernels; {ok} ran ({rets} return values, {nan_rets} NaN), \
         {oob} out of bounds"
    );
}
