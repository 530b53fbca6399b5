//! Low-rank adapters (LoRA, Hu et al. 2021, "LoRA: Low-Rank Adaptation of
//! Large Language Models") on the dense layers of an MLP.
//!
//! `net.lora(rank, alpha)` is a new [`Net`] — its own [`ModelId`] and
//! settings, named `"<name>.lora"` — whose only leaves are, per layer `l`
//! with weight `W_l` of shape `(out, in)`,
//!
//! * `A_l`, shape `(rank, in)`, named `<name>.lora.layers.{l}.lora_a`,
//! * `B_l`, shape `(out, rank)`, named `<name>.lora.layers.{l}.lora_b`,
//!
//! in that order (`A_0, B_0, A_1, B_1, ...`). The base network's weights
//! and biases are inputs of the LoRA net, not its leaves: they stay leaves
//! of the base model, constant in a solve unless the base net is
//! configured too. Layer `l` of the LoRA net applies
//!
//! ```text
//! W_eff = W_l + (alpha / rank) · B_l · A_l        (out, in)
//! h'    = act(h · W_effᵀ + b_l)
//! ```
//!
//! with `h` of shape `(P, in)`, in one of two forms chosen per layer (they
//! are the same function; each matches the base layer's `h.matmul(W.t())`
//! orientation):
//!
//! * merged, `h · W_effᵀ`: `B·A` costs `out·rank·in` once, independent of
//!   the number of points `P`, and every forward-mode tangent (`d/dx`,
//!   `d²/dx²` of a PINN) reuses `W_eff`; but the gradient then goes through
//!   `∂W_eff = dzᵀ·h`, an extra `P·in·out` per tangent;
//! * factored, `h·W_lᵀ + (alpha/rank)·(h·A_lᵀ)·B_lᵀ`: about
//!   `3·P·rank·(in + out)` extra per tangent over the forward and reverse
//!   passes, and no `(out, in)` gradient.
//!
//! A layer is factored when `3·rank·(in + out) < in·out` (wide square
//! layers, small ranks), else merged (the input and output layers of a
//! PINN, small widths). Measured (release build, Cranelift, one chain,
//! 3000 Adam sweeps of the spec's PINN: 101 points, `u''`, three
//! tanh layers, rank 4), seconds for this rule / all factored / all merged:
//! width 16: 0.75 / 0.84 / 0.77; width 32: 2.05 / 2.11 / 2.24; width 64:
//! 5.65 / 5.83 / 7.80.
//!
//! Initialisation (the standard one): `A_l ~ U(−1/√in, 1/√in)`, drawn
//! deterministically from the base network's seed with
//! [`crux_ir::rng`] on streams of [`Purpose::NetInit`] that the MLP
//! initialisation never uses (index `2⁵⁵ | depth·2²⁴ | l`, where `depth`
//! counts LoRA levels: a LoRA of a LoRA net draws its own streams), and
//! `B_l = 0`, so a fresh LoRA net computes exactly (bit for bit) what its
//! base computes.
//!
//! `rank` must be at least 1; a rank above `min(in, out)` of a layer is
//! allowed (that layer's update `B·A` can then be any `(out, in)` matrix,
//! with redundant parameters), so one rank serves networks with a 1-wide
//! input or output. `alpha` must be finite and positive.
//!
//! A LoRA net is a `Net` like any other: `.bayesian(..)`, `.optimizer(..)`,
//! masks, `posterior_samples()` (the adapters' draws, leaves by name) and
//! `.lora(..)` again (adapters on the adapted weights; the inner adapters
//! are then frozen inputs too).
//!
//! [`Purpose::NetInit`]: crux_ir::rng::Purpose::NetInit

use std::sync::Arc;

use crux_ir::graph::Shape;
use crux_ir::rng::{self, Purpose};

use super::expr::Expr;
use super::ids::ModelId;
use super::net::{Net, MAX_NET_PARAMS};
use super::param::{Model, Param};
use super::registry::ModelCell;
use crate::error::{Error, Result};

/// Bit that marks a LoRA initialisation stream within [`Purpose::NetInit`]
/// (the MLP initialisation uses indices `2l`, `2l + 1` with `l ≤ 1001`).
const LORA_STREAM: u64 = 1 << 55;
/// Bit position of the LoRA level in the stream index (`l < 2²⁴`).
const DEPTH_SHIFT: u32 = 24;

/// The adapters of a LoRA net: its leaves and how they enter the layers.
pub(crate) struct Adapters {
    /// The adapted network (its layers give `W_l`, possibly adapted too).
    base: Net,
    rank: usize,
    alpha: f64,
    /// LoRA level: 1 on a plain MLP, one more on each further `.lora(..)`.
    depth: u64,
    cell: Arc<ModelCell>,
    /// `(A_l, B_l)` per layer.
    layers: Vec<(Param, Param)>,
}

impl Adapters {
    /// The adapted weight of layer `l`: `W_l + (alpha/rank)·B_l·A_l`.
    pub(super) fn weight(&self, l: usize) -> Expr {
        let (a, b) = &self.layers[l];
        self.base.layer_weight(l) + self.scale() * b.expr().matmul(&a.expr())
    }

    /// `h · W_effᵀ` for `h` of shape `(P, in)`, in the cheaper form for
    /// this layer's shape (see the module notes): factored,
    /// `h·W_lᵀ + (alpha/rank)·(h·A_lᵀ)·B_lᵀ`, when
    /// `3·rank·(in + out) < in·out`, else merged, `h·W_effᵀ`.
    pub(super) fn dense(&self, l: usize, h: &Expr) -> Expr {
        let (a, b) = &self.layers[l];
        let (fan_out, fan_in) = (b.shape()[0], a.shape()[1]);
        if factored(self.rank, fan_in, fan_out) {
            self.base.dense(l, h) + self.scale() * h.matmul(&a.expr().t()).matmul(&b.expr().t())
        } else {
            h.matmul(&self.weight(l).t())
        }
    }

    /// `alpha / rank`.
    fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// `A_0, B_0, A_1, B_1, ...`.
    pub(super) fn leaves(&self) -> Vec<Param> {
        self.layers
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect()
    }

    /// The LoRA model's settings and results.
    pub(super) fn cell(&self) -> &Arc<ModelCell> {
        &self.cell
    }
}

/// Whether a layer `(out, in)` with adapters of rank `rank` is applied in
/// the factored form (see the module notes). Overflow-proof: the adapters'
/// size is bounded by [`MAX_NET_PARAMS`], the weight's by the base's.
fn factored(rank: usize, fan_in: usize, fan_out: usize) -> bool {
    rank.saturating_mul(3).saturating_mul(fan_in + fan_out) < fan_in.saturating_mul(fan_out)
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LoRA(rank {}, alpha {}, on {})",
            self.rank,
            self.alpha,
            self.base.model_name()
        )
    }
}

impl Net {
    /// Low-rank adapters (LoRA, Hu et al. 2021) on every dense layer of
    /// this network: a new network named
    /// `"<name>.lora"`, its own model, whose leaves are only the adapters
    /// `A_l` `(rank, in)` (`<name>.lora.layers.{l}.lora_a`) and `B_l`
    /// `(out, rank)` (`.lora_b`), and whose layer `l` uses the weight
    /// `W_eff = W_l + (alpha/rank)·B_l·A_l` with this network's `W_l` and bias as
    /// frozen inputs. `A_l ~ U(−1/√in, 1/√in)` (deterministic in this
    /// network's seed, on streams of its own) and `B_l = 0`, so the new
    /// network starts equal to this one bit for bit. A layer is computed
    /// as `h·W_effᵀ`, or, when `3·rank·(in + out) < in·out` (wide layers,
    /// small ranks: cheaper there), in the factored form
    /// `h·W_lᵀ + (alpha/rank)·(h·A_lᵀ)·B_lᵀ` (the same function).
    ///
    /// `.bayesian(..)` / `.optimizer(..)` on the returned network sample or
    /// train the adapters only; this network's leaves stay constant in a
    /// solve unless this network is configured too.
    ///
    /// Fails (with [`Error::InvalidArgument`]) when `rank` is 0, when
    /// `alpha` is not finite and positive, or when the adapters would have
    /// more than [`MAX_NET_PARAMS`] entries. A rank above a layer's
    /// `min(in, out)` is allowed (the update is then unconstrained).
    pub fn lora(&self, rank: usize, alpha: f64) -> Result<Net> {
        let name = self.name();
        if rank == 0 {
            return Err(Error::InvalidArgument {
                what: format!("LoRA rank of network `{name}`"),
                reason: "must be at least 1 (ranks 4 to 16 are usual); pass e.g. `.lora(4, 8.0)`"
                    .into(),
            });
        }
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::InvalidArgument {
                what: format!("LoRA alpha of network `{name}`"),
                reason: format!(
                    "must be finite and > 0, got {alpha}; the update is scaled by alpha / rank, \
                     so alpha = rank (here {rank}.0) scales it by 1"
                ),
            });
        }
        // (in, out) per layer, from the base weights `(out, in)`.
        let widths: Vec<(usize, usize)> = self
            .layer_leaves()
            .iter()
            .map(|(w, _)| (w.shape()[1], w.shape()[0]))
            .collect();
        let total = widths.iter().try_fold(0usize, |acc, &(fan_in, fan_out)| {
            rank.checked_mul(fan_in.checked_add(fan_out)?)?
                .checked_add(acc)
        });
        if total.is_none_or(|t| t > MAX_NET_PARAMS) {
            return Err(Error::InvalidArgument {
                what: format!("LoRA rank of network `{name}`"),
                reason: format!(
                    "rank {rank} gives more than {MAX_NET_PARAMS} adapter parameters; \
                     use a rank of at most the layers' widths"
                ),
            });
        }
        let depth = self.adapters().map_or(0, |a| a.depth) + 1;
        let seed = self.seed();
        let lora_name = format!("{name}.lora");
        let id = ModelId::fresh();
        let cell: Arc<ModelCell> = Arc::default();
        let layers = widths
            .iter()
            .enumerate()
            .map(|(l, &(fan_in, fan_out))| {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let stream = rng::stream(
                    Purpose::NetInit,
                    LORA_STREAM | (depth << DEPTH_SHIFT) | l as u64,
                );
                let a_values: Vec<f64> = (0..(rank * fan_in) as u64)
                    .map(|i| bound * (2.0 * rng::uniform(seed, stream, i) - 1.0))
                    .collect();
                let a = Param::leaf(
                    id,
                    cell.clone(),
                    lora_name.clone(),
                    format!("{lora_name}.layers.{l}.lora_a"),
                    Shape(vec![rank, fan_in]),
                    Some(a_values),
                );
                let b = Param::leaf(
                    id,
                    cell.clone(),
                    lora_name.clone(),
                    format!("{lora_name}.layers.{l}.lora_b"),
                    Shape(vec![fan_out, rank]),
                    None,
                );
                (a, b)
            })
            .collect();
        let adapters = Adapters {
            base: self.clone(),
            rank,
            alpha,
            depth,
            cell,
            layers,
        };
        Ok(self.adapted(id, lora_name, adapters))
    }

    /// The network a LoRA net adapts (`None` for a plain MLP).
    pub fn lora_base(&self) -> Option<&Net> {
        self.adapters().map(|a| &a.base)
    }

    /// `(rank, alpha)` of a LoRA net (`None` for a plain MLP).
    pub fn lora_config(&self) -> Option<(usize, f64)> {
        self.adapters().map(|a| (a.rank, a.alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::net::Activation;

    #[test]
    fn adapters_layout_init_and_errors() {
        let base = Net::mlp_named("u", 2, 1, 8, 2, Activation::Tanh, 3).unwrap();
        let lora = base.lora(3, 6.0).unwrap();
        assert_eq!(lora.model_name(), "u.lora");
        assert_ne!(lora.model_id(), base.model_id());
        assert_eq!(lora.lora_config(), Some((3, 6.0)));
        assert_eq!(lora.lora_base().map(Net::model_id), Some(base.model_id()));
        let got: Vec<(String, Vec<usize>)> = lora
            .leaves()
            .iter()
            .map(|p| (p.name().to_string(), p.shape().to_vec()))
            .collect();
        let want: Vec<(String, Vec<usize>)> = [(2, 8), (8, 8), (8, 1)]
            .iter()
            .enumerate()
            .flat_map(|(l, &(i, o))| {
                [
                    (format!("u.lora.layers.{l}.lora_a"), vec![3, i]),
                    (format!("u.lora.layers.{l}.lora_b"), vec![o, 3]),
                ]
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(lora.num_params(), 3 * (2 + 8 + 16 + 9));
        for p in lora.leaves() {
            assert_eq!(p.owner(), lora.model_id());
            if p.name().ends_with("lora_b") {
                assert!(p.values().iter().all(|&v| v == 0.0));
            } else {
                let bound = 1.0 / (p.shape()[1] as f64).sqrt();
                assert!(p.values().iter().all(|v| v.abs() <= bound));
                assert!(p.values().iter().any(|v| v.abs() > 0.3 * bound));
            }
        }
        // Deterministic, and not the base's own draws.
        let again = base.lora(3, 6.0).unwrap();
        assert_eq!(lora.leaves()[2].values(), again.leaves()[2].values());
        let w1 = base.leaves()[2].values();
        assert!(!w1.starts_with(&lora.leaves()[2].values()[..8]));
        // A LoRA of a LoRA net draws other streams.
        let twice = lora.lora(3, 6.0).unwrap();
        assert_eq!(twice.model_name(), "u.lora.lora");
        assert_ne!(twice.leaves()[0].values(), lora.leaves()[0].values());
        assert!(format!("{twice:?}").contains("LoRA(rank 3, alpha 6, on u.lora)"));

        // The form rule: wide square layers factored, thin ones merged.
        assert!(factored(4, 32, 32) && factored(4, 64, 64));
        assert!(!factored(4, 16, 16) && !factored(4, 1, 32) && !factored(4, 32, 1));
        assert!(!factored(usize::MAX, 32, 32));

        for (rank, alpha, what) in [
            (0, 1.0, "rank"),
            (2, 0.0, "alpha"),
            (2, -1.0, "alpha"),
            (2, f64::NAN, "alpha"),
            (2, f64::INFINITY, "alpha"),
            (usize::MAX / 4, 1.0, "rank"),
        ] {
            let e = base.lora(rank, alpha).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument { what: w, .. } if w.contains(what) && w.contains("`u`")),
                "{e}"
            );
        }
    }
}
