//! Multilayer perceptrons as models.

use std::sync::Arc;

use crux_ir::graph::Shape;

use crate::error::{Error, Result};
use crate::model::expr::Expr;
use crate::model::ids::ModelId;
use crate::model::param::{Model, Param};

/// Hidden-layer activation of an MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// Hyperbolic tangent (the usual choice for PINNs: smooth derivatives).
    Tanh,
    /// Sine.
    Sin,
    /// `ln(1 + eˣ)`.
    Softplus,
    /// Logistic sigmoid.
    Sigmoid,
    /// `max(x, 0)` (its second derivative is zero almost everywhere).
    Relu,
}

impl Activation {
    fn apply(self, x: &Expr) -> Expr {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Sin => x.sin(),
            Activation::Softplus => x.softplus(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Relu => x.relu(),
        }
    }
}

/// The most parameters one network may have (10⁸).
pub const MAX_NET_PARAMS: usize = 100_000_000;

/// The most hidden layers one network may have.
pub const MAX_LAYERS: usize = 1000;

/// A multilayer perceptron: `layers` hidden layers of width `hidden`, then a
/// linear output layer. Weights are laid out `(out, in)` (so their
/// `fan_in` is the input width) and biases `(out,)`.
#[derive(Clone)]
pub struct Net(Arc<NetState>);

struct NetState {
    id: ModelId,
    name: String,
    input: usize,
    output: usize,
    activation: Activation,
    /// `(weight, bias)` per layer. For a LoRA net these are the base
    /// network's leaves (frozen inputs, not leaves of this model).
    layers: Vec<(Param, Param)>,
    /// The seed of the initial draws (LoRA adapters draw from it too, on
    /// their own streams).
    seed: u64,
    /// `Some` for a LoRA net ([`Net::lora`]): its leaves are the adapters.
    adapters: Option<super::lora::Adapters>,
}

impl Net {
    /// An MLP named `net` with weights and biases drawn from
    /// `U(−1/√fan_in, 1/√fan_in)`, deterministic in `seed`.
    pub fn mlp(
        input: usize,
        output: usize,
        hidden: usize,
        layers: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Net> {
        Net::mlp_named("net", input, output, hidden, layers, activation, seed)
    }

    /// [`Net::mlp`] with a name (used for its leaves: `name.layers.0.weight`, ...).
    pub fn mlp_named(
        name: impl Into<String>,
        input: usize,
        output: usize,
        hidden: usize,
        layers: usize,
        activation: Activation,
        seed: u64,
    ) -> Result<Net> {
        let name = name.into();
        for (what, v) in [
            ("input width", input),
            ("output width", output),
            ("hidden width", hidden),
        ] {
            if v == 0 {
                return Err(Error::InvalidArgument {
                    what: format!("MLP {what}"),
                    reason: "must be at least 1".into(),
                });
            }
        }
        // Total weights and biases, with overflow-proof arithmetic: any
        // width may come from user input.
        let mut widths = vec![input];
        widths.extend(std::iter::repeat_n(hidden, layers.min(MAX_LAYERS + 1)));
        widths.push(output);
        let total = widths.windows(2).try_fold(0usize, |acc, w| {
            w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(acc)
        });
        if layers > MAX_LAYERS || total.is_none_or(|t| t > MAX_NET_PARAMS) {
            return Err(Error::InvalidArgument {
                what: "MLP size".into(),
                reason: format!(
                    "{input} -> {layers} x {hidden} -> {output} exceeds {MAX_NET_PARAMS} parameters or {MAX_LAYERS} layers"
                ),
            });
        }
        let id = ModelId::fresh();
        let cell: Arc<super::registry::ModelCell> = Arc::default();
        let mut leaves = Vec::with_capacity(widths.len() - 1);
        for (l, w) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let draw = |leaf: u64, n: usize| -> Vec<f64> {
                let stream = crux_ir::rng::stream(crux_ir::rng::Purpose::NetInit, leaf);
                (0..n as u64)
                    .map(|i| bound * (2.0 * crux_ir::rng::uniform(seed, stream, i) - 1.0))
                    .collect()
            };
            let weight = Param::leaf(
                id,
                cell.clone(),
                name.clone(),
                format!("{name}.layers.{l}.weight"),
                Shape(vec![fan_out, fan_in]),
                Some(draw(2 * l as u64, fan_out * fan_in)),
            );
            let bias = Param::leaf(
                id,
                cell.clone(),
                name.clone(),
                format!("{name}.layers.{l}.bias"),
                Shape(vec![fan_out]),
                Some(draw(2 * l as u64 + 1, fan_out)),
            );
            leaves.push((weight, bias));
        }
        Ok(Net(Arc::new(NetState {
            id,
            name,
            input,
            output,
            activation,
            layers: leaves,
            seed,
            adapters: None,
        })))
    }

    /// Input width.
    pub fn input_width(&self) -> usize {
        self.0.input
    }

    /// Output width.
    pub fn output_width(&self) -> usize {
        self.0.output
    }

    /// Number of scalar parameters (of a LoRA net: its adapters').
    pub fn num_params(&self) -> usize {
        self.leaves().iter().map(Param::len).sum()
    }

    /// The network applied pointwise to coordinate expressions: the inputs,
    /// each `(P, k)`, are joined column-wise into `(P, input)`, and the
    /// result is `(P, output)`.
    pub fn call(&self, inputs: &[&Expr]) -> Expr {
        if let Some(bad) = inputs
            .iter()
            .find(|e| e.check().is_ok() && e.shape().len() != 2)
        {
            return Expr::invalid(Error::InvalidOperation {
                op: "Net::call",
                expr: format!("{}({bad})", self.0.name),
                reason: format!(
                    "network inputs are (P, k) columns, this one has shape {:?}; reshape it to (P, 1)",
                    bad.shape()
                ),
            });
        }
        let x = Expr::concat(inputs, 1);
        if x.check().is_err() {
            return x;
        }
        if x.shape().len() != 2 || x.shape()[1] != self.0.input {
            return Expr::invalid(Error::InvalidOperation {
                op: "Net::call",
                expr: format!("{}({x})", self.0.name),
                reason: format!(
                    "the network takes {} input columns, the inputs give shape {:?}; pass one (P, 1) coordinate per input",
                    self.0.input,
                    x.shape()
                ),
            });
        }
        let last = self.0.layers.len() - 1;
        let mut h = x;
        for (l, (_, b)) in self.0.layers.iter().enumerate() {
            let z = self.dense(l, &h) + b;
            h = if l < last {
                self.0.activation.apply(&z)
            } else {
                z
            };
        }
        h
    }
}

impl Model for Net {
    fn model_id(&self) -> ModelId {
        self.0.id
    }
    fn model_name(&self) -> String {
        self.0.name.clone()
    }
    fn leaves(&self) -> Vec<Param> {
        if let Some(a) = &self.0.adapters {
            return a.leaves();
        }
        self.0
            .layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Net({}: {} -> {} x {} ({:?}) -> {})",
            self.0.name,
            self.0.input,
            self.0.layers.len() - 1,
            self.0.layers.first().map(|l| l.0.shape()[0]).unwrap_or(0),
            self.0.activation,
            self.0.output
        )?;
        match &self.0.adapters {
            Some(a) => write!(f, " + {a:?}"),
            None => Ok(()),
        }
    }
}

/// Hooks for [`super::lora`].
impl Net {
    /// The network's name.
    pub(super) fn name(&self) -> &str {
        &self.0.name
    }
    /// The seed its initial values were drawn from.
    pub(super) fn seed(&self) -> u64 {
        self.0.seed
    }
    /// `(weight, bias)` per layer (of a LoRA net: the base's frozen leaves).
    pub(super) fn layer_leaves(&self) -> &[(Param, Param)] {
        &self.0.layers
    }
    /// The adapters of a LoRA net.
    pub(super) fn adapters(&self) -> Option<&super::lora::Adapters> {
        self.0.adapters.as_ref()
    }
    /// The effective weight `(out, in)` of layer `l`: the weight leaf, or
    /// for a LoRA net its adapted weight.
    pub(super) fn layer_weight(&self, l: usize) -> Expr {
        match &self.0.adapters {
            Some(a) => a.weight(l),
            None => self.0.layers[l].0.expr(),
        }
    }
    /// `h · W_effᵀ`, `h` of shape `(P, in)`: layer `l` without its bias
    /// (for a LoRA net in whichever form [`super::lora`] finds cheaper).
    pub(super) fn dense(&self, l: usize, h: &Expr) -> Expr {
        match &self.0.adapters {
            Some(a) => a.dense(l, h),
            None => h.matmul(&self.0.layers[l].0.expr().t()),
        }
    }
    /// A network like this one (widths, activation, frozen layer leaves,
    /// seed) that is the model `id` named `name` with `adapters` as leaves.
    pub(super) fn adapted(
        &self,
        id: ModelId,
        name: String,
        adapters: super::lora::Adapters,
    ) -> Net {
        Net(Arc::new(NetState {
            id,
            name,
            input: self.0.input,
            output: self.0.output,
            activation: self.0.activation,
            layers: self.0.layers.clone(),
            seed: self.0.seed,
            adapters: Some(adapters),
        }))
    }
}

impl Net {
    pub(crate) fn cell(&self) -> &Arc<super::registry::ModelCell> {
        match &self.0.adapters {
            Some(a) => a.cell(),
            None => self.0.layers[0].0.cell(),
        }
    }
    /// Samples the network's weights in the next [`crate::Crux::solve`]
    /// with `config`; replaces an earlier one. Checked as
    /// [`Param::bayesian`] does.
    pub fn bayesian(&self, config: super::sampling::Bayesian) -> Result<&Self> {
        super::param::attach(self.cell(), &self.model_name(), config)?;
        Ok(self)
    }
    /// Runs `init` on the network's log-density when the next solve starts
    /// (see [`Param::initialize`]).
    pub fn initialize(&self, init: impl Into<super::init::Init>) -> Result<&Self> {
        super::param::attach_initializer(self.cell(), &self.model_name(), init.into())?;
        Ok(self)
    }
    /// Fits the network's weights by mean-field VI (see [`Param::vi`]).
    pub fn vi(&self, config: super::vi::Vi) -> Result<&Self> {
        super::param::attach_vi(self.cell(), &self.model_name(), config)?;
        Ok(self)
    }
    /// Optimises the network's weights (see [`Param::optimizer`]).
    pub fn optimizer(&self, opt: super::sampling::Optimizer) -> Result<&Self> {
        super::param::attach_optimizer(self.cell(), &self.model_name(), opt)?;
        Ok(self)
    }
    /// The posterior of the last solve that sampled this network (the
    /// same type as a parameter's: leaves by name).
    pub fn posterior(&self) -> Option<Arc<super::posterior::Posterior>> {
        self.cell().results().posterior
    }
    /// Each leaf's chain `(K, N, *leaf_shape)`, in leaf order.
    pub fn posterior_samples(&self) -> Option<Vec<super::posterior::LeafSamples>> {
        self.posterior().map(|p| p.leaves.clone())
    }
    /// Per-draw diagnostics of the last solve (`None` for SGLD, SGHMC).
    pub fn posterior_diagnostics(&self) -> Option<super::posterior::Diagnostics> {
        self.posterior().and_then(|p| p.diagnostics.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_layout_and_initialisation() {
        let net = Net::mlp(1, 1, 32, 3, Activation::Tanh, 0).unwrap();
        let shapes: Vec<Vec<usize>> = net.leaves().iter().map(|p| p.shape().to_vec()).collect();
        assert_eq!(
            shapes,
            [
                vec![32, 1],
                vec![32],
                vec![32, 32],
                vec![32],
                vec![32, 32],
                vec![32],
                vec![1, 32],
                vec![1]
            ]
        );
        assert_eq!(net.num_params(), 2209);
        for p in net.leaves() {
            let bound = match p.name() {
                n if n.contains("layers.0") => 1.0,
                _ => 1.0 / 32f64.sqrt(),
            };
            assert!(p.values().iter().all(|v| v.abs() <= bound), "{}", p.name());
            // Not degenerate: the values spread over the interval.
            let max = p.values().iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(p.len() < 4 || max > 0.5 * bound, "{}", p.name());
        }
        assert_eq!(net.leaves()[2].name(), "net.layers.1.weight");
        // Deterministic in the seed.
        let again = Net::mlp(1, 1, 32, 3, Activation::Tanh, 0).unwrap();
        let other = Net::mlp(1, 1, 32, 3, Activation::Tanh, 1).unwrap();
        assert_eq!(net.leaves()[2].values(), again.leaves()[2].values());
        assert_ne!(net.leaves()[2].values(), other.leaves()[2].values());
    }

    #[test]
    fn bad_networks_and_calls_are_errors() {
        assert!(Net::mlp(0, 1, 4, 1, Activation::Tanh, 0).is_err());
        assert!(Net::mlp(1, 1, 0, 1, Activation::Tanh, 0).is_err());
        let d = crate::Domain::line(0.0, 1.0, 0.5).unwrap();
        let x = d.variable("interior").unwrap();
        let net = Net::mlp(2, 1, 4, 1, Activation::Relu, 0).unwrap();
        let e = net.call(&[&x]).check().unwrap_err();
        assert!(e.to_string().contains("takes 2 input columns"), "{e}");
        assert_eq!(net.call(&[&x, &x]).shape(), &[3, 1]);
    }
}
