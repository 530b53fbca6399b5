//! Backend differential tests (DESIGN §7, rung 3): the reference kernel
//! interpreter against the Cranelift backend, bit for bit, on random valid
//! kernel programs from [`crux_tests::kgen::arb_kernel`].
//!
//! # Comparison rule
//!
//! Both run the same function on copies of the same arguments and buffers.
//! Either both succeed, and then the return values agree under
//! [`Scalar::same`] (bitwise, any NaN equal to any NaN) and every buffer
//! agrees element by element under the same rule; or both fail with the
//! same error (out of bounds, with the same buffer, index and length), and
//! the stores made before the failing access agree the same way. The generator keeps NaN payloads
//! from becoming observable (see its documentation), since the IR leaves
//! them to the backend. The interpreter runs with a fuel bound far above
//! what the generated loops need; a case where it runs out is a generator
//! bug and fails.
//!
//! Properties: (1) interpreter == Cranelift; (2) every generated kernel
//! round-trips through the text format, and the parsed kernel computes the
//! same results.
//!
//! Failures are persisted in `proptest-regressions/backend_differential.txt`
//! (relative to the crate) and replayed first on every run.

use crux_compiler::backend::clif::compile;
use crux_compiler::backend::{BackendError, Executable};
use crux_ir::kernel::text::{parse, print};
use crux_ir::kernel::{run, Buffer, KernelError, Scalar};
use crux_tests::kgen::{arb_kernel, KGenCase, KGenConfig};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Instructions the interpreter may execute per case.
const FUEL: u64 = 2_000_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/backend_differential.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// The kind of a run's error, for comparing errors across backends.
fn kind(e: &KernelError) -> &'static str {
    match e {
        KernelError::Invalid { .. } => "invalid",
        KernelError::OutOfFuel(_) => "out of fuel",
        KernelError::OutOfBounds { .. } => "out of bounds",
        KernelError::Arguments { .. } => "arguments",
        KernelError::Parse { .. } => "parse",
    }
}

fn backend_kind(e: &BackendError) -> &'static str {
    match e {
        BackendError::Kernel(k) => kind(k),
        BackendError::Unsupported { .. } => "unsupported",
        BackendError::Codegen { .. } => "codegen",
    }
}

fn scalar_at(b: &Buffer, i: usize) -> Scalar {
    match b {
        Buffer::F64(v) => Scalar::F64(v[i]),
        Buffer::F32(v) => Scalar::F32(v[i]),
        Buffer::I64(v) => Scalar::I64(v[i]),
        Buffer::I32(v) => Scalar::I32(v[i]),
    }
}

/// Returns and buffers agree bit for bit (any NaN equal to any NaN).
fn compare(
    what: &str,
    (ra, ba): (&[Scalar], &[Buffer]),
    (rb, bb): (&[Scalar], &[Buffer]),
) -> Result<(), String> {
    if ra.len() != rb.len() {
        return Err(format!(
            "{what}: {} vs {} return values",
            ra.len(),
            rb.len()
        ));
    }
    for (i, (a, b)) in ra.iter().zip(rb).enumerate() {
        if !a.same(*b) {
            return Err(format!("{what}: return value {i} differs: {a:?} vs {b:?}"));
        }
    }
    for (j, (a, b)) in ba.iter().zip(bb).enumerate() {
        if a.ty() != b.ty() || a.len() != b.len() {
            return Err(format!("{what}: buffer {j} changed shape"));
        }
        for i in 0..a.len() {
            let (x, y) = (scalar_at(a, i), scalar_at(b, i));
            if !x.same(y) {
                return Err(format!("{what}: buf{j}[{i}] differs: {x:?} vs {y:?}"));
            }
        }
    }
    Ok(())
}

/// Runs the interpreter; a case that runs out of fuel is a generator bug.
/// A run's outcome and the buffers after it.
type Outcome = (Result<Vec<Scalar>, KernelError>, Vec<Buffer>);

fn interpret(case: &KGenCase) -> Result<Outcome, String> {
    let mut bufs = case.buffers.clone();
    let r = run(&case.function, &case.args, &mut bufs, FUEL);
    if let Err(KernelError::OutOfFuel(_)) = r {
        return Err("the interpreter ran out of fuel on a generated kernel".into());
    }
    if let Err(e @ (KernelError::Invalid { .. } | KernelError::Arguments { .. })) = &r {
        return Err(format!("the interpreter rejected a generated kernel: {e}"));
    }
    Ok((r, bufs))
}

fn check_backend(case: &KGenCase) -> Result<(), TestCaseError> {
    let (want, want_bufs) = interpret(case).map_err(TestCaseError::fail)?;
    let k = compile(&case.function, &Default::default())
        .map_err(|e| TestCaseError::fail(format!("Cranelift compilation failed: {e}")))?;
    let mut bufs = case.buffers.clone();
    let got = k.call(&case.args, &mut bufs);
    match (&want, &got) {
        (Ok(a), Ok(b)) => compare("interpreter vs Cranelift", (a, &want_bufs), (b, &bufs))
            .map_err(TestCaseError::fail),
        // Stores before the failing access have happened on both.
        (Err(a), Err(b)) if kind(a) == backend_kind(b) => {
            if let BackendError::Kernel(k) = b {
                prop_assert_eq!(a, k, "the errors differ in detail");
            }
            compare(
                "interpreter vs Cranelift (after the error)",
                (&[], &want_bufs),
                (&[], &bufs),
            )
            .map_err(TestCaseError::fail)
        }
        _ => Err(TestCaseError::fail(format!(
            "interpreter: {want:?}\nCranelift: {got:?}"
        ))),
    }
}

fn check_text(case: &KGenCase) -> Result<(), TestCaseError> {
    let text = print(&case.function);
    let back = parse(&text).map_err(|e| TestCaseError::fail(format!("parse failed: {e}")))?;
    prop_assert!(
        back == case.function,
        "round trip changed the kernel:\n{}\n---\n{}",
        text,
        print(&back)
    );
    prop_assert_eq!(print(&back), text);
    let (want, want_bufs) = interpret(case).map_err(TestCaseError::fail)?;
    let mut bufs = case.buffers.clone();
    let got = run(&back, &case.args, &mut bufs, FUEL);
    match (&want, &got) {
        (Ok(a), Ok(b)) => {
            compare("original vs parsed", (a, &want_bufs), (b, &bufs)).map_err(TestCaseError::fail)
        }
        (Err(a), Err(b)) if a == b => Ok(()),
        _ => Err(TestCaseError::fail(format!(
            "original: {want:?}\nparsed: {got:?}"
        ))),
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// interpreter == Cranelift, bit for bit (or the same error kind).
    #[test]
    fn cranelift_matches_interpreter(case in arb_kernel(KGenConfig::default())) {
        check_backend(&case)?;
    }

    /// `parse(print(f)) == f`, printing is stable, and the parsed kernel
    /// computes the same results.
    #[test]
    fn kernels_round_trip_through_text(case in arb_kernel(KGenConfig::default())) {
        check_text(&case)?;
    }
}

/// `text` with one edit chosen by `kind` at position `at`: a character
/// deleted or replaced by a token-ish one, or a line duplicated or swapped
/// with the next.
fn mutate(text: &str, kind: u8, at: usize) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let chars: Vec<char> = text.chars().collect();
    let i = at % chars.len().max(1);
    match kind % 4 {
        0 => chars
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect(),
        1 => {
            let j = at % lines.len().max(1);
            if let Some(l) = lines.get(j).copied() {
                lines.insert(j, l);
            }
            lines.join("\n")
        }
        2 => {
            if lines.len() > 1 {
                let j = at % (lines.len() - 1);
                lines.swap(j, j + 1);
            }
            lines.join("\n")
        }
        _ => {
            let subst = [
                'v', '1', '9', ',', '[', ']', '{', '}', '|', '(', ')', ' ', 'x', '=', ':',
            ];
            chars
                .iter()
                .enumerate()
                .map(|(j, c)| if j == i { subst[at % subst.len()] } else { *c })
                .collect()
        }
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
            text = mutate(&text, kind, at);
        }
        match parse(&text) {
            Ok(f) => {
                crux_ir::kernel::verify(&f).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(parse(&print(&f)), Ok(f));
            }
            Err(e) => prop_assert!(matches!(e, KernelError::Parse { .. }), "{:?}", e),
        }
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
