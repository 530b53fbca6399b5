//! Failures while compiled code runs are `Error::Run`, naming the program
//! and the models whose kernels could cause them — not internal compiler
//! errors, and never a panic.

use std::sync::Arc;

use crux::custom::{Family, Kernel, KernelError, StepCtx, StepInfo};
use crux::{Backend, Bayesian, Error, RunFailure, SolveOptions, Tiering};
use crux_samples::problems::Quickstart;

/// A user kernel whose step body stores one entry past the end of its
/// chain's position vector: every index of the state buffer beyond it is
/// another slot, so it writes far past the buffer instead.
#[derive(Debug)]
struct OutOfBounds;

impl Kernel for OutOfBounds {
    fn name(&self) -> &str {
        "oob"
    }
    fn family(&self) -> Family {
        Family::FullData
    }
    fn diagnostics(&self) -> Vec<crux::custom::DiagField> {
        Vec::new()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let env = ctx.env;
        let b = &mut *ctx.b;
        let far = b.i64(1 << 40);
        let x = b.f64(1.0);
        env.position.store(b, far, x);
        Ok(StepInfo {
            accept_stat: None,
            diagnostics: Vec::new(),
        })
    }
}

fn run(backend: Backend, tiering: Tiering) -> Error {
    let q = Quickstart::new(3).unwrap();
    q.a.bayesian(
        Bayesian::custom(Arc::new(OutOfBounds))
            .step_size(0.1)
            .warmup(5)
            .keep(5),
    )
    .unwrap();
    q.b.bayesian(Bayesian::nuts().warmup(5).keep(5)).unwrap();
    q.problem
        .solve_with(
            10,
            &SolveOptions::default()
                .quiet()
                .backend(backend)
                .tiering(tiering),
        )
        .expect_err("an out-of-bounds store must fail the solve")
}

#[test]
fn out_of_bounds_user_kernel_is_a_run_error_naming_the_model() {
    for (backend, tiering) in [
        (Backend::Interpreter, Tiering::Auto),
        (Backend::Cranelift, Tiering::Baseline),
        (Backend::Cranelift, Tiering::Optimised),
    ] {
        let err = run(backend, tiering);
        match &err {
            Error::Run {
                program,
                models,
                cause: RunFailure::Kernel { chain: 0, .. },
            } => {
                assert_eq!(*program, "chunk function");
                assert_eq!(models, &["a".to_string()], "only the user kernel's model");
            }
            other => panic!("{backend:?}/{tiering:?}: expected Error::Run, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("chunk function failed while running"), "{msg}");
        assert!(msg.contains("model(s) a"), "{msg}");
        assert!(!msg.contains("internal compiler error"), "{msg}");
    }
}
