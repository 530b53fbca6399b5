//! What a solve leaves on each sampled model: the draws of every leaf
//! (by name), per-draw diagnostics and the adapted kernel parameters. One
//! type for parameters and networks.

use crux_compiler::sampler::DiagName;

use super::ids::ModelId;
use ndarray::{Array2, ArrayD, ArrayView2};

/// The chain of one parameter tensor: `(chain, draw, *leaf_shape)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafSamples {
    /// Leaf name (`a`, `net.layers.0.weight`, ...).
    pub name: String,
    /// Draws, shape `(K, N, *shape)` (also for one chain).
    pub samples: ArrayD<f64>,
}

/// Per-draw kernel diagnostics, each field `(K, N)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    fields: Vec<(String, Array2<f64>)>,
}

impl Diagnostics {
    pub(crate) fn new(fields: Vec<(String, Array2<f64>)>) -> Diagnostics {
        Diagnostics { fields }
    }
    /// Field names, in the kernel's order.
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }
    /// One field as `(K, N)` values (booleans as 0/1, counts as integers).
    pub fn get(&self, name: &str) -> Option<ArrayView2<'_, f64>> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.view())
    }
    /// `is_divergent` as booleans (HMC family).
    pub fn is_divergent(&self) -> Option<Array2<bool>> {
        self.get(DiagName::IsDivergent.name())
            .map(|a| a.mapv(|x| x != 0.0))
    }
    /// `acceptance_rate` (HMC family, MALA, custom kernels that report it).
    pub fn acceptance_rate(&self) -> Option<ArrayView2<'_, f64>> {
        self.get(DiagName::AcceptanceRate.name())
    }
    /// `energy` (HMC family).
    pub fn energy(&self) -> Option<ArrayView2<'_, f64>> {
        self.get(DiagName::Energy.name())
    }
}

/// A fitted mean-field Gaussian `q` (a `.vi(..)` model or masked group).
#[derive(Clone, Debug, PartialEq)]
pub struct Variational {
    /// The model's name, or `model[leaves]` for a masked group.
    pub group: String,
    /// The leaves `q` covers, in leaf order; the entries below are theirs,
    /// flattened in that order (an entry-masked leaf's fitted entries only).
    pub leaves: Vec<String>,
    /// `μ` per chain, `(K, d)`.
    pub mean: Array2<f64>,
    /// `σ = exp(ρ)` per chain, `(K, d)`.
    pub std: Array2<f64>,
    /// The ELBO estimate of every optimiser step, `(K, steps)`.
    pub elbo: Array2<f64>,
}

/// A model's posterior after a solve.
#[derive(Clone, Debug, PartialEq)]
pub struct Posterior {
    /// Model name.
    pub model: String,
    /// Model identity (what [`crate::Solution::posterior`] looks up).
    pub model_id: ModelId,
    /// Kernel name.
    pub kernel: String,
    /// One chain per leaf, in the model's leaf order (a constrained
    /// leaf's draws on its constrained scale).
    pub leaves: Vec<LeafSamples>,
    /// Per-draw diagnostics; `None` for kernels without an info record
    /// (VI; SGLD and SGHMC record `is_divergent` only).
    pub diagnostics: Option<Diagnostics>,
    /// Final (adapted) step size of each chain.
    pub step_size: Vec<f64>,
    /// Final (adapted) inverse mass matrix of each chain: its diagonal
    /// (`d` entries), with [`crate::Metric::LowRank`] `D`, `Λ` and `U`
    /// (`d + k + k d` entries, see its docs), or with [`crate::Metric::Dense`] the whole `d × d`
    /// matrix, row-major. Like the step size, it is of the unconstrained
    /// position (the sampler's `u` of a constrained leaf).
    pub inverse_mass: Vec<Vec<f64>>,
    /// The fitted `q` of each of the model's `.vi(..)` groups (empty for
    /// a model sampled by MCMC only). The draws of their leaves above are
    /// i.i.d. draws from these (through the leaf's transform when it is
    /// constrained: `q` is over the unconstrained value).
    pub variational: Vec<Variational>,
}

impl Posterior {
    /// The draws `(K, N, *shape)` of the leaf named `name` (a parameter's
    /// name, or a network leaf's such as `net.layers.0.weight`).
    pub fn leaf(&self, name: &str) -> Option<&ArrayD<f64>> {
        self.leaves
            .iter()
            .find(|l| l.name == name)
            .map(|l| &l.samples)
    }
    /// Leaf names, in the model's leaf order.
    pub fn leaf_names(&self) -> Vec<&str> {
        self.leaves.iter().map(|l| l.name.as_str()).collect()
    }
    /// Chains `K`.
    pub fn num_chains(&self) -> usize {
        self.leaves.first().map_or(0, |l| l.samples.shape()[0])
    }
    /// Draws per chain `N`.
    pub fn num_draws(&self) -> usize {
        self.leaves.first().map_or(0, |l| l.samples.shape()[1])
    }
    /// The draws of entry `j` of leaf `leaf` as `(K, N)`.
    pub fn entry(&self, leaf: usize, j: usize) -> Option<Array2<f64>> {
        let l = self.leaves.get(leaf)?;
        let s = l.samples.shape();
        let per = s[2..].iter().product::<usize>();
        if j >= per {
            return None;
        }
        let flat = l.samples.to_shape((s[0], s[1], per)).ok()?;
        Some(flat.index_axis(ndarray::Axis(2), j).to_owned())
    }
}
