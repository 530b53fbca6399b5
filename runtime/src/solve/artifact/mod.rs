//! Ahead-of-time artifacts: a solve's chunk function and everything a
//! later run needs to sample with it, written once (`crux compile`) and
//! loaded without tracing, optimising or lowering again (`crux sample`).
//!
//! An artifact is a directory:
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | format and crux versions, target, sampler layout, each file's SHA-256 |
//! | `chunk.kir` | the chunk function, kernel IR text (what is loaded) |
//! | `chunk.o` | the same compiled by Cranelift for the host target (an object file to link; not loaded) |
//! | `chunk.ptx` | the same for the GPU |
//! | `logdensity.<i>.graph` | each step's optimised log-density, graph IR text |
//! | `data.bin` | the chunk's data buffers, f64 little-endian |
//! | `state.bin` | every chain's base state, f64 little-endian |
//!
//! Loading checks the format version, the crux version, the target's byte
//! order and every file's hash before parsing, verifies the kernel, and
//! compiles it with Cranelift *with* bounds checks (the code came from a
//! file). The chunk function and the chains' start are the in-process
//! solve's, so the same seed gives the same draws bit for bit.

mod error;
mod manifest;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crux_compiler::backend::clif::{self, ClifOptions};
use crux_compiler::backend::ptx::{emit, PtxOptions};
use crux_compiler::backend::{Executable, Interpreter};
use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::DiagKind;
use crux_ir::kernel::Function;
use ndarray::{Array2, ArrayD, IxDyn};
use sha2::{Digest, Sha256};

pub use error::ArtifactError;
pub use manifest::{FieldLayout, LeafLayout, LeafSource, Manifest, ModelLayout, FORMAT_VERSION};

use super::driver::cpu::run_range;
use super::driver::init::{base_state, jitters, Jitter};
use super::driver::plan::{plan, Plan};
use super::options::SolveOptions;
use crate::compile::problem::Problem;
use crate::compile::Backend;
use crate::error::{Error, Result};
use crate::model::{Diagnostics, LeafSamples, ModelId, Posterior};

/// A loaded (or freshly compiled) artifact.
#[derive(Clone, Debug)]
pub struct Artifact {
    manifest: Manifest,
    function: Function,
    data: Vec<Vec<f64>>,
    state: Vec<f64>,
    /// File name and contents of the text files (written as they are).
    texts: Vec<(String, Vec<u8>)>,
}

/// What a run of an artifact asks for.
#[derive(Clone, Debug)]
pub struct ArtifactRun {
    /// Chains (default: the compiled count).
    pub chains: Option<usize>,
    /// Draws per chain, at most the compiled `keep` (default: all).
    pub draws: Option<usize>,
    /// The sampler seed (default: the compiled one).
    pub seed: Option<u64>,
    /// [`Backend::Cranelift`] or [`Backend::Interpreter`].
    pub backend: Backend,
    /// Worker threads (default: the machine's cores).
    pub threads: Option<usize>,
}

impl Default for ArtifactRun {
    fn default() -> Self {
        ArtifactRun {
            chains: None,
            draws: None,
            seed: None,
            backend: Backend::Cranelift,
            threads: None,
        }
    }
}

/// The result of a run: one posterior per model, and timings.
#[derive(Clone, Debug)]
pub struct ArtifactSamples {
    /// The posteriors, in the artifact's model order.
    pub posteriors: Vec<Posterior>,
    /// Seconds compiling the kernel IR.
    pub compile_seconds: f64,
    /// Seconds running the chains.
    pub run_seconds: f64,
    /// Sweeps each chain ran.
    pub sweeps: usize,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_from(bytes: &[u8]) -> Option<Vec<f64>> {
    (bytes.len() % 8 == 0).then(|| {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    })
}

/// The host's target, as the manifest records it.
pub fn host_target() -> String {
    format!(
        "{}-{}-{}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        if cfg!(target_endian = "little") {
            "le"
        } else {
            "be"
        }
    )
}

impl Artifact {
    /// Compiles `problem` as [`crate::Crux::solve_with`] would for
    /// `epochs` sweeps and `opts`, into an artifact named `name`. Every
    /// moving model must be sampled by MCMC or optimised (no VI, no
    /// initializer, no entry masks: their starts and outputs are computed
    /// in the solve, which an artifact does not run).
    pub(crate) fn compile(
        problem: &Problem,
        name: &str,
        epochs: usize,
        opts: &SolveOptions,
    ) -> Result<Artifact> {
        let p = plan(problem, epochs, opts.substeps.as_deref(), &|_| {})?;
        let unsupported = |reason: String| Error::Artifact(ArtifactError::Unsupported(reason));
        for m in &p.members {
            if m.sampled().is_some_and(|r| r.is_vi()) {
                return Err(unsupported(format!("model `{}` is fitted by VI", m.name)));
            }
            if m.masks.iter().any(Option::is_some) {
                return Err(unsupported(format!("model `{}` has entry masks", m.name)));
            }
            if m.leaves[0].cell().settings().initializer.is_some() {
                return Err(unsupported(format!(
                    "model `{}` has an initializer (it runs when a solve starts)",
                    m.name
                )));
            }
        }
        let starts = vec![None; p.members.len()];
        let state = base_state(&p, &starts);
        let jit = jitters(&p, &starts);
        let manifest = Manifest::of_plan(&p, name, opts.seed.unwrap_or(problem.seed()), &jit);
        let function = p.chunk.function.clone();
        let ptx = emit(
            &function,
            &PtxOptions {
                bounds_checks: !p.builtin(),
                thread_param: Some(1),
                max_threads_per_block: 128,
            },
        )
        .map_err(|e| Error::Compile(crux_compiler::pipeline::CompileError::Backend(e)))?;
        let object = clif::compile_object(&function)
            .map_err(|e| Error::Compile(crux_compiler::pipeline::CompileError::Backend(e)))?;
        let mut texts = vec![
            (
                "chunk.kir".to_string(),
                crux_ir::kernel::text::print(&function).into_bytes(),
            ),
            ("chunk.ptx".to_string(), ptx.into_bytes()),
            ("chunk.o".to_string(), object),
        ];
        texts.extend(graph_files(&p));
        Ok(Artifact {
            manifest,
            function,
            data: p.chunk.data.clone(),
            state,
            texts,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The chunk function.
    pub fn function(&self) -> &Function {
        &self.function
    }

    /// Writes the artifact into directory `dir` (created if needed; files
    /// of the same names are replaced).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Artifact(ArtifactError::io(dir, e));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut files: Vec<(String, Vec<u8>)> = self.texts.clone();
        files.push(("data.bin".into(), f64_bytes(&self.data.concat())));
        files.push(("state.bin".into(), f64_bytes(&self.state)));
        let mut manifest = self.manifest.clone();
        manifest.files = files
            .iter()
            .map(|(n, b)| manifest::FileEntry {
                name: n.clone(),
                bytes: b.len() as u64,
                sha256: sha256_hex(b),
            })
            .collect();
        manifest.data_lens = self.data.iter().map(Vec::len).collect();
        for (n, b) in &files {
            std::fs::write(dir.join(n), b).map_err(io)?;
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
        std::fs::write(dir.join("manifest.json"), json).map_err(io)?;
        Ok(())
    }

    /// Reads and checks the artifact in directory `dir`.
    pub fn read(dir: &Path) -> Result<Artifact> {
        Self::read_checked(dir).map_err(Error::Artifact)
    }

    fn read_checked(dir: &Path) -> std::result::Result<Artifact, ArtifactError> {
        if !dir.is_dir() {
            return Err(ArtifactError::NotAnArtifact(dir.display().to_string()));
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ArtifactError::MissingFile(name.to_string()),
                _ => ArtifactError::io(&dir.join(name), e),
            })
        };
        let manifest: Manifest = serde_json::from_slice(&read("manifest.json")?)
            .map_err(|e| ArtifactError::Manifest(e.to_string()))?;
        manifest.check_versions()?;
        let mut texts = Vec::new();
        let raw = |name: &str| -> std::result::Result<Vec<u8>, ArtifactError> {
            let entry = manifest
                .files
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| ArtifactError::Manifest(format!("lists no file `{name}`")))?;
            let bytes = read(name)?;
            let found = sha256_hex(&bytes);
            if found != entry.sha256 {
                return Err(ArtifactError::HashMismatch {
                    file: name.to_string(),
                    expected: entry.sha256.clone(),
                    found,
                });
            }
            Ok(bytes)
        };
        for f in manifest.files.clone() {
            let b = raw(&f.name)?;
            if !matches!(f.name.as_str(), "data.bin" | "state.bin") {
                texts.push((f.name.clone(), b));
            }
        }
        let kir = texts
            .iter()
            .find(|(n, _)| n == "chunk.kir")
            .ok_or_else(|| ArtifactError::Manifest("lists no file `chunk.kir`".into()))?;
        let text = std::str::from_utf8(&kir.1).map_err(|e| ArtifactError::Kernel(e.to_string()))?;
        let function =
            crux_ir::kernel::text::parse(text).map_err(|e| ArtifactError::Kernel(e.to_string()))?;
        let data_all = f64_from(&raw("data.bin")?)
            .ok_or_else(|| ArtifactError::Layout("data.bin is not a whole number of f64".into()))?;
        let state = f64_from(&raw("state.bin")?).ok_or_else(|| {
            ArtifactError::Layout("state.bin is not a whole number of f64".into())
        })?;
        if data_all.len() != manifest.data_lens.iter().sum::<usize>() {
            return Err(ArtifactError::Layout(format!(
                "data.bin holds {} values, the manifest's buffers {}",
                data_all.len(),
                manifest.data_lens.iter().sum::<usize>()
            )));
        }
        let mut data = Vec::new();
        let mut at = 0;
        for &n in &manifest.data_lens {
            data.push(data_all[at..at + n].to_vec());
            at += n;
        }
        manifest.check_layout(&function, &state, &data)?;
        Ok(Artifact {
            manifest,
            function,
            data,
            state,
            texts,
        })
    }

    /// Runs the chains: draws, diagnostics and adapted kernel parameters
    /// per model, as an in-process solve of the same problem gives them.
    pub fn sample(&self, run: &ArtifactRun) -> Result<ArtifactSamples> {
        let m = &self.manifest;
        let bad = |reason: String| Error::InvalidArgument {
            what: "artifact run".into(),
            reason,
        };
        let k = run.chains.unwrap_or(m.chains);
        if k == 0 {
            return Err(bad("chains must be >= 1".into()));
        }
        let draws = run.draws.unwrap_or(m.keep);
        if draws == 0 || draws > m.keep {
            return Err(bad(format!(
                "draws must be in 1..={} (the artifact was compiled to keep {} draws per chain), got {draws}",
                m.keep, m.keep
            )));
        }
        let seed = run.seed.unwrap_or(m.seed);
        let sweeps = m.sweeps_for(draws);
        let t0 = Instant::now();
        let exe: Box<dyn Executable + Sync> = match run.backend {
            Backend::Cranelift => Box::new(
                clif::compile(&self.function, &ClifOptions::default()).map_err(|e| {
                    Error::Compile(crux_compiler::pipeline::CompileError::Backend(e))
                })?,
            ),
            Backend::Interpreter => Box::new(Interpreter {
                function: self.function.clone(),
                fuel: u64::MAX,
            }),
            Backend::Cuda => {
                return Err(bad(
                    "artifacts run on the CPU for now (cranelift or interpreter)".into(),
                ))
            }
        };
        let compile_seconds = t0.elapsed().as_secs_f64();
        let chains: Vec<Mutex<ChainBuffers>> = (0..k)
            .map(|c| {
                let mut state = self.state.clone();
                for j in &m.jitter {
                    Jitter::from(*j).apply(&mut state, seed, c);
                }
                Mutex::new(self.chain_buffers(state))
            })
            .collect();
        let threads = run
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, k);
        let t1 = Instant::now();
        let chunk = 1000.max(sweeps / 20);
        let mut lo = 0;
        while lo < sweeps {
            let hi = (lo + chunk).min(sweeps);
            run_range(exe.as_ref(), &chains, seed, (lo, hi), threads).map_err(|cause| {
                Error::Run {
                    program: "artifact chunk function",
                    models: m.models.iter().map(|x| x.name.clone()).collect(),
                    cause,
                }
            })?;
            lo = hi;
        }
        let run_seconds = t1.elapsed().as_secs_f64();
        let bufs: Vec<ChainBuffers> = chains
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let posteriors = m
            .models
            .iter()
            .map(|model| posterior(model, &bufs, draws))
            .collect();
        Ok(ArtifactSamples {
            posteriors,
            compile_seconds,
            run_seconds,
            sweeps,
        })
    }

    fn chain_buffers(&self, state: Vec<f64>) -> ChainBuffers {
        let m = &self.manifest;
        ChainBuffers::from_parts(state, (m.work_len, m.draws_len, m.diag_len), &self.data)
    }
}

/// `logdensity.<i>.graph` for each step's optimised graph.
fn graph_files(p: &Plan) -> Vec<(String, Vec<u8>)> {
    p.graphs
        .iter()
        .enumerate()
        .map(|(i, (name, g))| {
            let text = format!("# step {i}: {name}\n{}", crux_ir::graph::text::print(g));
            (format!("logdensity.{i}.graph"), text.into_bytes())
        })
        .collect()
}

/// One model's posterior from the chains' buffers, its first `n` draws.
fn posterior(model: &ModelLayout, bufs: &[ChainBuffers], n: usize) -> Posterior {
    let k = bufs.len();
    let leaves = model
        .leaves
        .iter()
        .map(|l| {
            let len: usize = l.shape.iter().product();
            let mut data = Vec::with_capacity(k * n * len);
            for b in bufs {
                for t in 0..n {
                    match &l.source {
                        LeafSource::Draws { offset, row } => {
                            let at = offset + t * row;
                            data.extend_from_slice(&b.draws()[at..at + len]);
                        }
                        LeafSource::Value(v) => data.extend_from_slice(v),
                    }
                }
            }
            let mut shape = vec![k, n];
            shape.extend(&l.shape);
            LeafSamples {
                name: l.name.clone(),
                samples: ArrayD::from_shape_vec(IxDyn(&shape), data)
                    .expect("k × n × the leaf's entries"),
            }
        })
        .collect();
    let nf = model.fields.len();
    let diagnostics = (nf > 0).then(|| {
        Diagnostics::new(
            model
                .fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let a = Array2::from_shape_fn((k, n), |(c, t)| {
                        let v = bufs[c].diag()[model.diag + t * nf + j];
                        match f.kind() {
                            DiagKind::Bool => (v != 0.0) as u8 as f64,
                            DiagKind::Float | DiagKind::Int => v,
                        }
                    });
                    (f.name.clone(), a)
                })
                .collect(),
        )
    });
    Posterior {
        model: model.name.clone(),
        model_id: ModelId::fresh(),
        kernel: model.kernel.clone(),
        leaves,
        diagnostics,
        step_size: bufs.iter().map(|b| b.state()[model.step_size]).collect(),
        inverse_mass: bufs
            .iter()
            .map(|b| {
                b.state()[model.inverse_mass.0..model.inverse_mass.0 + model.inverse_mass.1]
                    .to_vec()
            })
            .collect(),
        variational: Vec::new(),
    }
}
