//! What the user declares: domains and their points, expressions,
//! parameters and networks, noise, constraints, priors, and per model how
//! it is sampled. Plain values that know their [`ModelId`]; nothing here
//! compiles or runs anything (this room imports no other).

pub(crate) mod constraint;
pub(crate) mod domain;
pub(crate) mod expr;
pub(crate) mod group;
pub(crate) mod ids;
pub(crate) mod init;
pub(crate) mod likelihood;
pub(crate) mod lora;
pub(crate) mod mask;
pub(crate) mod net;
pub mod noise;
pub(crate) mod param;
pub(crate) mod posterior;
pub(crate) mod prior;
pub(crate) mod registry;
pub(crate) mod sampling;
pub(crate) mod transform;
pub(crate) mod vi;

pub use constraint::{Constraint, Reduction};
pub use domain::Domain;
pub use expr::{diff, Expr, IntoExpr, MAX_ELEMENTS, MAX_RANK};
pub use group::Group;
pub use ids::{DomainId, ModelId};
pub use init::{Init, Laplace, Pathfinder, Svgd};
pub use likelihood::MAX_DF;
pub use mask::{Mask, Masked};
pub use net::{Activation, Net, MAX_LAYERS, MAX_NET_PARAMS};
pub use param::{Model, Param, MAX_ORDERED_ENTRIES, MAX_PARAM_ENTRIES};
pub use posterior::{Diagnostics, LeafSamples, Posterior, Variational};
pub use prior::{CustomPrior, Prior};
pub use registry::{GroupRole, MaskGroup, ModelInfo, ModelResults, ModelSettings};
pub use sampling::{
    Bayesian, InverseMass, KernelChoice, Metric, Optimizer, DEFAULT_TARGET_ACCEPTANCE,
};
pub use transform::Transform;
pub use vi::Vi;
