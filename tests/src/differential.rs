//! The kernel-IR differential checks (DESIGN §7, rung 3), shared by the
//! proptest suite (`tests/tests/backend_differential.rs`) and the `fuzz/`
//! targets (through [`crate::fuzz`]): the reference interpreter against the
//! Cranelift backend, and the kernel text format against itself.
//!
//! # Comparison rule
//!
//! Both backends run the same function on copies of the same arguments and
//! buffers. Either both succeed, and then the return values agree under
//! [`Scalar::same`] (bitwise, any NaN equal to any NaN) and every buffer
//! agrees element by element under the same rule; or both fail with the
//! same error (out of bounds, with the same buffer, index and length), and
//! the stores made before the failing access agree the same way. The
//! generator keeps NaN payloads from becoming observable (see
//! [`crate::kgen`]), since the IR leaves them to the backend. The
//! interpreter runs with a fuel bound far above what the generated loops
//! need; a case where it runs out is a generator bug and fails.

use crux_compiler::backend::clif::compile;
use crux_compiler::backend::{BackendError, Executable};
use crux_ir::kernel::text::{parse, print};
use crux_ir::kernel::{run, verify, Buffer, KernelError, Scalar};

use crate::kgen::KGenCase;

/// Instructions the interpreter may execute per case.
pub const FUEL: u64 = 2_000_000;

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

/// A run's outcome and the buffers after it.
pub type Outcome = (Result<Vec<Scalar>, KernelError>, Vec<Buffer>);

/// Runs the interpreter on `case`; running out of fuel, or rejecting the
/// kernel or its arguments, is a generator bug (an `Err`).
pub fn interpret(case: &KGenCase) -> Result<Outcome, String> {
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

/// Interpreter == Cranelift on `case`, bit for bit (or the same error,
/// with the same stores before it).
pub fn check_backend(case: &KGenCase) -> Result<(), String> {
    let (want, want_bufs) = interpret(case)?;
    let k = compile(&case.function, &Default::default())
        .map_err(|e| format!("Cranelift compilation failed: {e}"))?;
    let mut bufs = case.buffers.clone();
    let got = k.call(&case.args, &mut bufs);
    match (&want, &got) {
        (Ok(a), Ok(b)) => compare("interpreter vs Cranelift", (a, &want_bufs), (b, &bufs)),
        // Stores before the failing access have happened on both.
        (Err(a), Err(b)) if kind(a) == backend_kind(b) => {
            if let BackendError::Kernel(k) = b {
                if a != k {
                    return Err(format!("the errors differ in detail: {a:?} vs {k:?}"));
                }
            }
            compare(
                "interpreter vs Cranelift (after the error)",
                (&[], &want_bufs),
                (&[], &bufs),
            )
        }
        _ => Err(format!("interpreter: {want:?}\nCranelift: {got:?}")),
    }
}

/// `parse(print(f)) == f`, printing is stable, and the parsed kernel
/// computes the same results as `case`'s.
pub fn check_text(case: &KGenCase) -> Result<(), String> {
    let text = print(&case.function);
    let back = parse(&text).map_err(|e| format!("parse failed: {e}"))?;
    if back != case.function {
        return Err(format!(
            "round trip changed the kernel:\n{text}\n---\n{}",
            print(&back)
        ));
    }
    if print(&back) != text {
        return Err("printing the parsed kernel gives another text".into());
    }
    let (want, want_bufs) = interpret(case)?;
    let mut bufs = case.buffers.clone();
    let got = run(&back, &case.args, &mut bufs, FUEL);
    match (&want, &got) {
        (Ok(a), Ok(b)) => compare("original vs parsed", (a, &want_bufs), (b, &bufs)),
        (Err(a), Err(b)) if a == b => Ok(()),
        _ => Err(format!("original: {want:?}\nparsed: {got:?}")),
    }
}

/// Any text: parsing fails with a parse error, or gives a kernel that
/// verifies and round-trips through the printer.
pub fn check_parse(text: &str) -> Result<(), String> {
    match parse(text) {
        Ok(f) => {
            verify(&f).map_err(|e| format!("a parsed kernel does not verify: {e}"))?;
            let again = parse(&print(&f));
            if again.as_ref() != Ok(&f) {
                return Err(format!("a parsed kernel does not round-trip: {again:?}"));
            }
            Ok(())
        }
        Err(KernelError::Parse { .. }) => Ok(()),
        Err(e) => Err(format!("parsing failed with a non-parse error: {e:?}")),
    }
}
