//! `manifest.json`: versions, target, the chunk function's buffer layout,
//! the chains' jitter, where each model's leaves and diagnostics lie, and
//! every file's hash.

use serde::{Deserialize, Serialize};

use super::error::ArtifactError;
use super::host_target;
use crate::solve::driver::collect::leaf_owner;
use crate::solve::driver::init::Jitter;
use crate::solve::driver::plan::Plan;
use crux_compiler::sampler::{Chunk, DiagField, DiagKind, ModelSlots};

/// The artifact format this crux writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The crux version that wrote it.
    pub crux_version: String,
    /// `arch-os-endianness` of the writer ([`super::host_target`]).
    pub target: String,
    /// The problem's name.
    pub name: String,
    /// The chunk function's name (the shared library's symbol).
    pub entry: String,
    /// The sampler seed of the compiling solve (a run's default).
    pub seed: u64,
    /// The chains of the compiling solve (a run's default).
    pub chains: usize,
    /// Draws per chain the chunk function keeps (the most of any model).
    pub keep: usize,
    /// Sweeps of a whole run.
    pub sweeps: usize,
    /// Entries of the state, work, draws and diagnostics buffers.
    pub state_len: usize,
    /// See `state_len`.
    pub work_len: usize,
    /// See `state_len`.
    pub draws_len: usize,
    /// See `state_len`.
    pub diag_len: usize,
    /// Entries of each data buffer, in buffer order.
    pub data_lens: Vec<usize>,
    /// The chains' start perturbations.
    pub jitter: Vec<JitterEntry>,
    /// The sampled models.
    pub models: Vec<ModelLayout>,
    /// Whether every kernel is crux's own.
    pub builtin: bool,
    /// Every file but the manifest, with its size and SHA-256.
    pub files: Vec<FileEntry>,
}

/// A file of the artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name within the artifact.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256, hexadecimal.
    pub sha256: String,
}

/// A block of the state perturbed per chain (`init_jitter`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JitterEntry {
    /// Offset in the state.
    pub at: usize,
    /// Entries.
    pub len: usize,
    /// Standard deviation.
    pub sigma: f64,
    /// First start counter.
    pub counter: usize,
}

impl From<JitterEntry> for Jitter {
    fn from(j: JitterEntry) -> Jitter {
        Jitter {
            at: j.at,
            len: j.len,
            sigma: j.sigma,
            counter: j.counter,
        }
    }
}

/// One sampled model: schedule, where its leaves and diagnostics are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelLayout {
    /// Model name.
    pub name: String,
    /// Kernel name(s).
    pub kernel: String,
    /// Sweeps before the first kept draw.
    pub warmup: usize,
    /// Draws kept.
    pub keep: usize,
    /// Sweeps per kept draw.
    pub thin: usize,
    /// Offset of draw 0's diagnostics in the diagnostics buffer.
    pub diag: usize,
    /// The diagnostic fields.
    pub fields: Vec<FieldLayout>,
    /// State slot of the step size.
    pub step_size: usize,
    /// State offset and length of the inverse mass matrix.
    pub inverse_mass: (usize, usize),
    /// The leaves, in leaf order.
    pub leaves: Vec<LeafLayout>,
}

/// A diagnostic field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldLayout {
    /// Name.
    pub name: String,
    /// `bool`, `float` or `int`.
    pub kind: String,
}

impl FieldLayout {
    /// The layouts of a model's diagnostic fields.
    pub(crate) fn of(fields: &[DiagField]) -> Vec<FieldLayout> {
        fields
            .iter()
            .map(|f| FieldLayout {
                name: f.name.to_string(),
                kind: kind_name(f.kind).to_string(),
            })
            .collect()
    }
    /// The storage kind.
    pub fn kind(&self) -> DiagKind {
        match self.kind.as_str() {
            "bool" => DiagKind::Bool,
            "int" => DiagKind::Int,
            _ => DiagKind::Float,
        }
    }
}

/// A leaf of a sampled model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeafLayout {
    /// Leaf name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Where its draws come from.
    pub source: LeafSource,
    /// The map from the drawn (unconstrained) values to the leaf's.
    #[serde(default)]
    pub transform: crate::model::Transform,
}

/// Where a leaf's draws come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LeafSource {
    /// Draw `t` at `offset + t · row` of the draws buffer.
    Draws {
        /// Offset of draw 0.
        offset: usize,
        /// Entries per draw of the recording member.
        row: usize,
    },
    /// A fixed value at every draw.
    Value(Vec<f64>),
}

pub(crate) fn kind_name(k: DiagKind) -> &'static str {
    match k {
        DiagKind::Bool => "bool",
        DiagKind::Int => "int",
        DiagKind::Float => "float",
    }
}

impl Manifest {
    /// The manifest of `plan` (files and data lengths are filled in when
    /// the artifact is written).
    pub(crate) fn of_plan(plan: &Plan, name: &str, seed: u64, jitter: &[Jitter]) -> Manifest {
        let chunk = &plan.chunk;
        let mut models = Vec::new();
        let mut seen = Vec::new();
        for m in &plan.members {
            if seen.contains(&m.id) {
                continue;
            }
            seen.push(m.id);
            let of_model: Vec<(&crate::solve::driver::plan::Member, &ModelSlots)> =
                plan.recorded().filter(|(o, _)| o.id == m.id).collect();
            let Some((first, r0, s0)) = of_model
                .iter()
                .find_map(|(o, s)| o.sampled().map(|r| (*o, r, *s)))
            else {
                continue;
            };
            let kernels: Vec<&str> = of_model
                .iter()
                .filter_map(|(o, _)| o.sampled().map(|r| r.kernel.name()))
                .collect();
            let leaves = first
                .model_leaves
                .iter()
                .map(|p| {
                    let owner = leaf_owner(p, &of_model).map(|o| LeafSource::Draws {
                        offset: o.offset,
                        row: o.row,
                    });
                    LeafLayout {
                        name: p.name().to_string(),
                        shape: p.shape().to_vec(),
                        source: owner.unwrap_or_else(|| LeafSource::Value(p.values())),
                        transform: p.transform(),
                    }
                })
                .collect();
            models.push(ModelLayout {
                name: first.model.clone(),
                kernel: kernels.join("+"),
                warmup: r0.warmup,
                keep: r0.keep,
                thin: r0.thin,
                diag: s0.diag,
                fields: FieldLayout::of(&s0.fields),
                step_size: s0.step_size,
                inverse_mass: (s0.inverse_mass, s0.metric.inverse_mass_len(first.len)),
                leaves,
            });
        }
        let keep = models.iter().map(|m| m.keep).max().unwrap_or(0);
        let jitter = jitter
            .iter()
            .map(|j| JitterEntry {
                at: j.at,
                len: j.len,
                sigma: j.sigma,
                counter: j.counter,
            })
            .collect();
        let run = (seed, plan.k, keep);
        Manifest::of_chunk(name, chunk, run, jitter, models, plan.builtin())
    }

    /// The manifest of `chunk` (this build's versions and target, the
    /// chunk's entry point and buffer lengths), run `(seed, chains, keep)`
    /// by default; no files yet.
    pub(crate) fn of_chunk(
        name: &str,
        chunk: &Chunk,
        (seed, chains, keep): (u64, usize, usize),
        jitter: Vec<JitterEntry>,
        models: Vec<ModelLayout>,
        builtin: bool,
    ) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            crux_version: env!("CARGO_PKG_VERSION").to_string(),
            target: host_target(),
            name: name.to_string(),
            entry: chunk.function.name.clone(),
            seed,
            chains,
            keep,
            sweeps: chunk.sweeps,
            state_len: chunk.state.len,
            work_len: chunk.work_len,
            draws_len: chunk.draws_len,
            diag_len: chunk.diag_len,
            data_lens: chunk.data.iter().map(Vec::len).collect(),
            jitter,
            models,
            builtin,
            files: Vec::new(),
        }
    }

    /// Sweeps a run keeping `draws` draws per chain needs (all of them for
    /// the compiled `keep`).
    pub fn sweeps_for(&self, draws: usize) -> usize {
        if draws >= self.keep {
            return self.sweeps;
        }
        self.models
            .iter()
            .map(|m| m.warmup + draws.min(m.keep) * m.thin)
            .max()
            .unwrap_or(0)
    }

    /// The format and crux versions and the byte order match this build.
    pub(crate) fn check_versions(&self) -> Result<(), ArtifactError> {
        if self.format_version != FORMAT_VERSION {
            return Err(ArtifactError::FormatVersion {
                found: self.format_version,
                expected: FORMAT_VERSION,
            });
        }
        let ours = env!("CARGO_PKG_VERSION");
        if self.crux_version != ours {
            return Err(ArtifactError::CruxVersion {
                found: self.crux_version.clone(),
                expected: ours.to_string(),
            });
        }
        let host = host_target();
        let endian = |t: &str| t.rsplit('-').next().map(str::to_string);
        if endian(&self.target) != endian(&host) {
            return Err(ArtifactError::Target {
                artifact: self.target.clone(),
                host,
            });
        }
        Ok(())
    }

    /// The kernel, state and data agree with the layout.
    pub(crate) fn check_layout(
        &self,
        state: &[f64],
        data: &[Vec<f64>],
    ) -> Result<(), ArtifactError> {
        let bad = |m: String| Err(ArtifactError::Layout(m));
        if state.len() != self.state_len {
            return bad(format!(
                "state.bin holds {} values, the layout {}",
                state.len(),
                self.state_len
            ));
        }
        if data.len() != self.data_lens.len() {
            return bad(format!(
                "{} data buffers, the layout {}",
                data.len(),
                self.data_lens.len()
            ));
        }
        if self.chains == 0 || self.keep == 0 || self.sweeps == 0 {
            return bad("no chains, draws or sweeps".into());
        }
        for j in &self.jitter {
            if j.at + j.len > self.state_len {
                return bad(format!(
                    "a jitter block ends at {} past the state ({})",
                    j.at + j.len,
                    self.state_len
                ));
            }
        }
        for m in &self.models {
            let (at, len) = m.inverse_mass;
            if m.step_size >= self.state_len || at + len > self.state_len {
                return bad(format!(
                    "model `{}`: kernel parameters outside the state",
                    m.name
                ));
            }
            if m.diag + m.keep * m.fields.len() > self.diag_len {
                return bad(format!(
                    "model `{}`: diagnostics outside their buffer",
                    m.name
                ));
            }
            for l in &m.leaves {
                let n: usize = l.shape.iter().product();
                match &l.source {
                    LeafSource::Draws { offset, row } => {
                        if m.keep > 0 && offset + (m.keep - 1) * row + n > self.draws_len {
                            return bad(format!("leaf `{}`: draws outside their buffer", l.name));
                        }
                    }
                    LeafSource::Value(v) if v.len() != n => {
                        return bad(format!(
                            "leaf `{}`: {} values for shape {:?}",
                            l.name,
                            v.len(),
                            l.shape
                        ));
                    }
                    LeafSource::Value(_) => {}
                }
            }
        }
        Ok(())
    }
}
