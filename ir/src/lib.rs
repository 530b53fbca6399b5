//! # crux-ir
//!
//! The intermediate representations of the crux compiler and their reference
//! semantics.
//!
//! * [`graph`]: the tensor graph IR. A hash-consed arena of nodes with static
//!   shapes; residual expressions, log-densities and their derivatives are
//!   graphs. It has a verifier, a text format that round-trips, a flop
//!   counter, and a reference interpreter that is the oracle for every later
//!   stage.
//! * [`kernel`]: the loop-level kernel IR that sampler step bodies and the
//!   lowered log-density are written in, with its builder, verifier and
//!   reference interpreter; the backends compile it.
//! * [`rng`]: the counter-based Philox-4x32-10 generator. Every random draw
//!   in crux (synthetic noise, sampler proposals) is a pure function of
//!   `(seed, stream, counter)`, so results never depend on thread count,
//!   chunking or backend.
//!
//! The crate has light dependencies on purpose: it is the part every other
//! crate and every test links against.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// Declares a `u32` index newtype with `index()` and a prefixed `Display`
/// (`%3`, `v7`, `buf0`): the typed indices of both IRs.
macro_rules! typed_index {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as `usize`, for indexing the owning table.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

pub mod graph;
pub mod kernel;
pub mod rng;
pub mod text_fuzz;

pub use graph::{
    BinaryOp, CmpOp, DType, DataId, Graph, GraphError, Node, NodeId, Op, ParamId, Shape, Tensor,
    UnaryOp,
};
