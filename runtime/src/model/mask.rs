//! Masks: parts of one model configured apart (the spec's "composable
//! per-mask backends"). `net.mask(Mask::layers([3])).bayesian(cfg)?` samples
//! the last layer's leaves; the rest of the network stays at its value
//! (pattern A), or is trained by the network's `.optimizer(..)` (pattern
//! B); several disjoint masked groups are each sampled by their own kernel
//! in one Gibbs sweep (pattern D). Masks select whole leaves, by name or by
//! layer; the prior of a group sees only its leaves.

use super::net::Net;
use super::param::{check_bayesian, check_optimizer, check_vi, Model, Param};
use super::registry::{GroupRole, MaskGroup, ModelCell};
use super::sampling::{Bayesian, Optimizer};
use super::vi::Vi;
use crate::error::{Error, Result};

/// Which leaves of a model a mask selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Leaves by name (`net.layers.3.weight`, ...).
    Leaves(Vec<String>),
    /// Every leaf of these layers of a network (`layers.{l}.weight` and
    /// `.bias`; layer 0 is the first hidden layer, the last is the output).
    Layers(Vec<usize>),
    /// The entries of one leaf where `mask` is true (row-major, one flag
    /// per entry). The other entries of the leaf stay at their value; a
    /// leaf takes part in at most one entry-masked group.
    Entries {
        /// The leaf's name.
        leaf: String,
        /// One flag per entry.
        mask: Vec<bool>,
    },
}

impl Mask {
    /// Leaves by name.
    pub fn leaves<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Mask {
        Mask::Leaves(names.into_iter().map(Into::into).collect())
    }
    /// Whole layers of a network, by index.
    pub fn layers(indices: impl IntoIterator<Item = usize>) -> Mask {
        Mask::Layers(indices.into_iter().collect())
    }
    /// Entries of one leaf (a boolean array flattened row-major, e.g.
    /// `array.iter().copied()`).
    pub fn entries(leaf: impl Into<String>, mask: impl IntoIterator<Item = bool>) -> Mask {
        Mask::Entries {
            leaf: leaf.into(),
            mask: mask.into_iter().collect(),
        }
    }

    /// The names of the leaves of `leaves` this mask selects, in leaf
    /// order; an error names the model and what it has.
    fn select(&self, model: &str, leaves: &[Param]) -> Result<Selection> {
        let bad = |reason: String| Error::Mask {
            model: model.to_string(),
            reason,
        };
        let names: Vec<&str> = leaves.iter().map(Param::name).collect();
        if let Mask::Entries { leaf, mask } = self {
            let Some(p) = leaves.iter().find(|p| p.name() == leaf) else {
                return Err(bad(format!(
                    "has no leaf `{leaf}`; its leaves are {}",
                    names.join(", ")
                )));
            };
            if mask.len() != p.len() {
                return Err(bad(format!(
                    "the entry mask of `{leaf}` has {} flags, the leaf has {} entries (shape {:?}): give one flag per entry, row-major",
                    mask.len(),
                    p.len(),
                    p.shape()
                )));
            }
            if !mask.iter().any(|&b| b) {
                return Err(bad(
                    "the mask selects no entry: set at least one flag".into()
                ));
            }
            return Ok(Selection {
                leaves: vec![leaf.clone()],
                entries: vec![Some(mask.clone())],
            });
        }
        let picked: Vec<String> = match self {
            Mask::Leaves(wanted) => {
                if let Some(w) = wanted.iter().find(|w| !names.contains(&w.as_str())) {
                    return Err(bad(format!(
                        "has no leaf `{w}`; its leaves are {}",
                        names.join(", ")
                    )));
                }
                names
                    .iter()
                    .filter(|n| wanted.iter().any(|w| w == *n))
                    .map(|n| n.to_string())
                    .collect()
            }
            Mask::Layers(layers) => {
                let layer_of = |n: &str| -> Option<usize> {
                    let rest = n.strip_prefix(model)?.strip_prefix(".layers.")?;
                    rest.split('.').next()?.parse().ok()
                };
                let count = names
                    .iter()
                    .filter_map(|n| layer_of(n))
                    .max()
                    .map_or(0, |m| m + 1);
                if let Some(l) = layers.iter().find(|l| **l >= count) {
                    return Err(bad(format!(
                        "has no layer {l}; it has layers 0..{count} (the last is the output layer)"
                    )));
                }
                names
                    .iter()
                    .filter(|n| layer_of(n).is_some_and(|l| layers.contains(&l)))
                    .map(|n| n.to_string())
                    .collect()
            }
            Mask::Entries { .. } => unreachable!("entry masks returned above"),
        };
        if picked.is_empty() {
            return Err(bad(
                "the mask selects no leaf: give at least one leaf or layer".into(),
            ));
        }
        Ok(Selection {
            entries: vec![None; picked.len()],
            leaves: picked,
        })
    }
}

/// What a mask selects: leaves, and per leaf the entries (`None`: all).
struct Selection {
    leaves: Vec<String>,
    entries: Vec<Option<Vec<bool>>>,
}

/// A model seen through a mask: configure the selected leaves.
#[must_use = "configure the masked leaves with .bayesian(..) or .optimizer(..)"]
pub struct Masked<'a> {
    cell: &'a ModelCell,
    model: String,
    leaves: Result<Selection>,
}

impl Masked<'_> {
    /// Samples the masked leaves with `config` (checked here, as
    /// [`Param::bayesian`] does). The group must not overlap another.
    pub fn bayesian(self, config: Bayesian) -> Result<()> {
        check_bayesian(&self.model, &config)?;
        self.attach(GroupRole::Bayesian(config))
    }
    /// Fits the masked leaves by mean-field VI (checked here, as
    /// [`Param::vi`] does). The group must not overlap another; with an
    /// MCMC group on the same model (pattern E) its `posterior_draws` must
    /// equal that group's `keep`.
    pub fn vi(self, config: Vi) -> Result<()> {
        check_vi(&self.model, &config)?;
        self.attach(GroupRole::Vi(config))
    }
    /// Trains the masked leaves with `opt` (a point estimate).
    pub fn optimizer(self, opt: Optimizer) -> Result<()> {
        check_optimizer(&self.model, &opt)?;
        self.attach(GroupRole::Optimizer(opt))
    }

    fn attach(self, role: GroupRole) -> Result<()> {
        let Selection { leaves, entries } = self.leaves?;
        let settings = self.cell.settings();
        if settings.bayesian.is_some() || settings.vi.is_some() {
            return Err(Error::Mask {
                model: self.model,
                reason: "has a global .bayesian(..) or .vi(..): a model is sampled whole or by masked groups, not both; configure every group with .mask(..)".into(),
            });
        }
        if let Some(g) = settings
            .groups
            .iter()
            .find(|g| g.leaves.iter().any(|l| leaves.contains(l)))
        {
            return Err(Error::Mask {
                model: self.model,
                reason: format!(
                    "the mask {leaves:?} overlaps the group {:?}: masked groups must be disjoint (and a leaf takes part in one group, also with entry masks)",
                    g.leaves
                ),
            });
        }
        self.cell.update_settings(|s| {
            s.groups.push(MaskGroup {
                leaves,
                entries,
                role,
            })
        });
        Ok(())
    }
}

fn masked<'a>(cell: &'a ModelCell, model: String, leaves: &[Param], mask: &Mask) -> Masked<'a> {
    let leaves = mask.select(&model, leaves);
    Masked {
        cell,
        model,
        leaves,
    }
}

impl Param {
    /// The entries `mask` selects (a [`Mask::Entries`] of this parameter,
    /// or [`Mask::leaves`] with its name), to sample or optimise apart from
    /// the others, which stay at their value.
    pub fn mask(&self, mask: Mask) -> Masked<'_> {
        masked(
            self.cell(),
            self.owner_name().to_string(),
            std::slice::from_ref(self),
            &mask,
        )
    }
}

impl Net {
    /// The leaves `mask` selects, to configure apart from the rest of the
    /// network: `.bayesian(..)` samples them (the rest stays at its value,
    /// or follows the network's `.optimizer(..)`), `.optimizer(..)` trains
    /// them. Masked groups of one network must be disjoint; sampled groups
    /// share one schedule (warmup, keep, thin, chains). After a solve the
    /// network's posterior holds every leaf (unsampled ones constant along
    /// the chain, optimised ones at their value at each kept sweep).
    pub fn mask(&self, mask: Mask) -> Masked<'_> {
        let leaves = self.leaves();
        masked(self.cell(), self.model_name(), &leaves, &mask)
    }

    /// Removes every masked group of the network.
    pub fn clear_masks(&self) {
        self.cell().update_settings(|s| s.groups.clear());
    }
}
