//! Reading posteriors: arviz-exact convergence diagnostics on arrays,
//! their per-parameter form on `(chain, draw, ...)` arrays, the summary
//! table, and exports (`.npz` in arviz's layout, CSV). Imports only
//! [`crate::model`] (the posterior type).

pub(crate) mod convergence;
pub mod diagnostics;
pub mod export;
pub(crate) mod summary;

pub use convergence::{ess, ess_bulk, ess_tail, mcse_mean, mcse_sd, rhat, RhatStrategy};
pub use summary::{SummaryRow, SummaryTable};
