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
//! | `chunk.o` | the same compiled by Cranelift for the host target (bounds checks on) |
//! | `chunk.so` | `chunk.o` linked into a shared library by the system's `cc`, when there is one: what `sample` loads instead of compiling |
//! | `chunk.ptx` | the same for the GPU |
//! | `logdensity.<i>.graph` | each step's optimised log-density, graph IR text |
//! | `data.bin` | the chunk's data buffers, f64 little-endian |
//! | `state.bin` | every chain's base state, f64 little-endian |
//!
//! Loading checks the format version, the crux version, the target's byte
//! order and the hash of every file it reads (the kernel, data and state;
//! [`Artifact::verify_files`] checks the rest) before parsing, verifies the kernel, and
//! compiles it with Cranelift *with* bounds checks (the code came from a
//! file). [`Artifact::open`] is the fast path for sampling: it defers
//! parsing the kernel until something needs it, and a run on Cranelift
//! loads `chunk.so` (hash-checked, copied to a private file first) when
//! the artifact was made for this target, so it compiles nothing. The
//! chunk function and the chains' start are the in-process solve's, so
//! the same seed gives the same draws bit for bit, from the kernel IR, the
//! interpreter or the shared library.

mod error;
mod manifest;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crux_compiler::backend::clif::{self, ClifOptions};
use crux_compiler::backend::ptx::{emit, PtxOptions};
use crux_compiler::backend::{Executable, Interpreter};
use crux_compiler::sampler::abi::ChainBuffers;
use crux_ir::kernel::Function;
use ndarray::{ArrayD, IxDyn};
use sha2::{Digest, Sha256};

pub use error::ArtifactError;
pub use manifest::{FieldLayout, LeafLayout, LeafSource, Manifest, ModelLayout, FORMAT_VERSION};

use super::checkpoint;
use super::driver::collect::read_diagnostics;
use super::driver::cpu::run_range;
use super::driver::init::{base_state, jitters, Jitter};
use super::driver::plan::plan;
use super::options::{SolveOptions, Tiering};
use crate::compile::problem::Problem;
use crate::compile::Backend;
use crate::error::{Error, Result};
use crate::model::{LeafSamples, ModelId, Posterior};

/// A loaded (or freshly compiled) artifact.
#[derive(Clone, Debug)]
pub struct Artifact {
    manifest: Manifest,
    /// `chunk.kir`, parsed on first use.
    kir: Vec<u8>,
    function: std::sync::OnceLock<Function>,
    /// `chunk.so`, when the artifact has one.
    shared: Option<Vec<u8>>,
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
    /// A progress bar over the sweeps (on a terminal).
    pub progress: bool,
    /// Which Cranelift code runs the chains ([`Tiering::Auto`]: the
    /// fast-compiling baseline code first, the optimised code from the
    /// first chunk boundary after it is compiled on another thread). The
    /// draws are the same for every choice.
    pub tiering: Tiering,
    /// Write the run's state here at chunk ends (as
    /// [`SolveOptions::checkpoint`]), at most every `checkpoint_every`
    /// seconds.
    pub checkpoint: Option<std::path::PathBuf>,
    /// Seconds between checkpoints (default 60; 0: every chunk).
    pub checkpoint_every: f64,
    /// Continue the run saved at this checkpoint (the same artifact, seed,
    /// chains and draws): the draws equal an uninterrupted run's.
    pub resume: Option<std::path::PathBuf>,
    /// Stop after this many chunks (after writing the checkpoint): see
    /// [`ArtifactSamples::stopped_at`].
    pub stop_after_chunks: Option<usize>,
    /// Sweeps per chunk (default: a twentieth of the run, at least 1000);
    /// the draws do not depend on it.
    pub chunk_sweeps: Option<usize>,
}

impl Default for ArtifactRun {
    fn default() -> Self {
        ArtifactRun {
            chains: None,
            draws: None,
            seed: None,
            backend: Backend::Cranelift,
            threads: None,
            progress: false,
            tiering: Tiering::Auto,
            checkpoint: None,
            checkpoint_every: 60.0,
            resume: None,
            stop_after_chunks: None,
            chunk_sweeps: None,
        }
    }
}

/// How [`Artifact::from_graph_text`] samples a log-density file.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSampling {
    /// Warmup sweeps (window adaptation runs in them).
    pub warmup: usize,
    /// Draws kept per chain.
    pub keep: usize,
    /// A run's default chains.
    pub chains: usize,
    /// A run's default seed.
    pub seed: u64,
    /// The starting step size.
    pub step_size: f64,
    /// Standard deviation of each chain's start around zero.
    pub init_jitter: f64,
}

impl Default for GraphSampling {
    fn default() -> Self {
        GraphSampling {
            warmup: 500,
            keep: 1000,
            chains: 1,
            seed: 42,
            step_size: 0.1,
            init_jitter: 0.0,
        }
    }
}

/// The result of a run: one posterior per model, and timings.
#[derive(Clone, Debug)]
pub struct ArtifactSamples {
    /// The posteriors, in the artifact's model order.
    pub posteriors: Vec<Posterior>,
    /// Whether the chains ran the artifact's shared library (no compiling).
    pub from_library: bool,
    /// Seconds compiling the kernel IR (or loading the library).
    pub compile_seconds: f64,
    /// Seconds running the chains.
    pub run_seconds: f64,
    /// Sweeps each chain runs in the whole run (a stopped run ran
    /// [`ArtifactSamples::stopped_at`]).
    pub sweeps: usize,
    /// The sweep at which the run stopped early (`stop_after_chunks`, or
    /// [`crate::interrupt`], e.g. on Ctrl-C), after writing its
    /// checkpoint; the posteriors then hold the draws kept so far.
    pub stopped_at: Option<usize>,
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
    bytes.len().is_multiple_of(8).then(|| {
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
        let data = p.chunk.data.clone();
        Self::assemble(manifest, function, data, state, p.graphs.clone())
    }

    /// The files of an artifact: PTX, object code and its shared library,
    /// the graphs' text.
    fn assemble(
        manifest: Manifest,
        function: Function,
        data: Vec<Vec<f64>>,
        state: Vec<f64>,
        graphs: Vec<(String, crux_ir::graph::Graph)>,
    ) -> Result<Artifact> {
        let backend = |e| Error::Compile(crux_compiler::pipeline::CompileError::Backend(e));
        let ptx = emit(
            &function,
            &PtxOptions {
                bounds_checks: !manifest.builtin,
                thread_param: Some(1),
                max_threads_per_block: 128,
            },
        )
        .map_err(backend)?;
        let object = clif::compile_object(&function).map_err(backend)?;
        let shared = link_shared(&object);
        let kir = crux_ir::kernel::text::print(&function).into_bytes();
        let mut texts = vec![
            ("chunk.ptx".to_string(), ptx.into_bytes()),
            ("chunk.o".to_string(), object),
        ];
        texts.extend(graph_files(&graphs));
        Ok(Artifact {
            manifest,
            kir,
            function: function.into(),
            shared,
            data,
            state,
            texts,
        })
    }

    /// An artifact of a log-density given as graph IR text (a problem
    /// file: an output `logp`, the parameters as the position), sampled by
    /// NUTS with window adaptation, named `name`. The position starts at
    /// zero (plus `sampling.init_jitter` per chain); each graph parameter
    /// is one leaf of one model named `name`.
    pub fn from_graph_text(text: &str, name: &str, sampling: &GraphSampling) -> Result<Artifact> {
        use crux_compiler::lower::lower_log_density;
        use crux_compiler::pipeline::{compile_log_density, CompileError};
        use crux_compiler::sampler::kernels::Nuts;
        use crux_compiler::sampler::{build_chunk, Adaptation, Metric, ModelPlan};
        let bad = |reason: String| Error::InvalidArgument {
            what: "problem file".into(),
            reason,
        };
        if sampling.keep == 0 || sampling.chains == 0 {
            return Err(bad("keep and chains must be >= 1".into()));
        }
        let graph = crux_ir::graph::text::parse(text)
            .map_err(|e| bad(format!("not graph IR text: {e}")))?;
        let opt = compile_log_density(&graph, &Default::default()).map_err(Error::Compile)?;
        let lowered = lower_log_density(opt.final_graph(), "logp")
            .map_err(|e| Error::Compile(CompileError::Lower(e)))?;
        let dim = lowered.layout.dim;
        if dim == 0 {
            return Err(bad("the graph has no parameters to sample".into()));
        }
        let offsets = lowered.layout.param_offsets.clone();
        let plan = ModelPlan {
            name: name.to_string(),
            kernel: std::sync::Arc::new(Nuts::default()),
            target: lowered,
            offset: 0,
            len: dim,
            warmup: sampling.warmup,
            keep: sampling.keep,
            thin: 1,
            adapt: (sampling.warmup > 0).then(Adaptation::default),
            metric: Metric::Diagonal,
            minibatch: None,
            repeats: 1,
        };
        let chunk = build_chunk(dim, &[plan])
            .map_err(|e| bad(format!("the sampler kernel is invalid: {e}")))?;
        let slots = &chunk.models[0];
        let mut state = vec![0.0; chunk.state.len];
        state[slots.step_size] = sampling.step_size;
        state[slots.inverse_mass..slots.inverse_mass + dim].fill(1.0);
        let leaves = graph
            .params()
            .iter()
            .zip(&offsets)
            .map(|(p, &off)| LeafLayout {
                name: p.name.clone(),
                shape: p.shape.0.clone(),
                source: LeafSource::Draws {
                    offset: slots.draws + off,
                    row: dim,
                },
                transform: Default::default(),
            })
            .collect();
        let jitter = (sampling.init_jitter > 0.0)
            .then_some(manifest::JitterEntry {
                at: chunk.theta,
                len: dim,
                sigma: sampling.init_jitter,
                counter: 0,
            })
            .into_iter()
            .collect();
        let model = ModelLayout {
            name: name.to_string(),
            kernel: "nuts".into(),
            warmup: sampling.warmup,
            keep: sampling.keep,
            thin: 1,
            diag: slots.diag,
            fields: FieldLayout::of(&slots.fields),
            step_size: slots.step_size,
            inverse_mass: (slots.inverse_mass, dim),
            leaves,
        };
        let run = (sampling.seed, sampling.chains, sampling.keep);
        let manifest = Manifest::of_chunk(name, &chunk, run, jitter, vec![model], true);
        let function = chunk.function;
        Self::assemble(
            manifest,
            function,
            chunk.data,
            state,
            vec![("graph".to_string(), opt.final_graph().clone())],
        )
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The chunk function (parsed and verified on first use after
    /// [`Artifact::open`]).
    pub fn function(&self) -> Result<&Function> {
        if let Some(f) = self.function.get() {
            return Ok(f);
        }
        let f = parse_kernel(&self.kir).map_err(Error::Artifact)?;
        Ok(self.function.get_or_init(|| f))
    }

    /// Whether the artifact carries a shared library of its chunk function.
    pub fn has_shared_library(&self) -> bool {
        self.shared.is_some()
    }

    /// Writes the artifact into directory `dir` (created if needed; files
    /// of the same names are replaced).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Artifact(ArtifactError::io(dir, e));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut files: Vec<(String, Vec<u8>)> = vec![("chunk.kir".into(), self.kir.clone())];
        files.extend(self.texts.iter().cloned());
        if let Some(so) = &self.shared {
            files.push(("chunk.so".into(), so.clone()));
        }
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
            crate::files::atomic_write(&dir.join(n), b).map_err(io)?;
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
        // The manifest last: an interrupted write leaves files that do not
        // match an old manifest (a hash error), never a silent mix.
        crate::files::atomic_write(&dir.join("manifest.json"), &json).map_err(io)?;
        Ok(())
    }

    /// Reads and checks the artifact in directory `dir`, the kernel parsed
    /// and verified.
    pub fn read(dir: &Path) -> Result<Artifact> {
        let a = Self::read_checked(dir).map_err(Error::Artifact)?;
        a.function()?;
        Ok(a)
    }

    /// [`Artifact::read`] without parsing the kernel yet (sampling from the
    /// shared library never needs it; a broken kernel is reported when
    /// something does).
    pub fn open(dir: &Path) -> Result<Artifact> {
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
        let texts = Vec::new();
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
        // What sampling needs is read and checked here; the other files
        // (object code, PTX, graphs) by `verify_files`.
        let kir = raw("chunk.kir")?;
        let shared = if manifest.files.iter().any(|f| f.name == "chunk.so") {
            Some(raw("chunk.so")?)
        } else {
            None
        };
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
        manifest.check_layout(&state, &data)?;
        Ok(Artifact {
            manifest,
            kir,
            function: std::sync::OnceLock::new(),
            shared,
            data,
            state,
            texts,
        })
    }

    /// Checks every file the manifest lists against its hash (reading
    /// [`Artifact::read`] skips the ones sampling does not use: object code,
    /// PTX, graphs).
    pub fn verify_files(dir: &Path) -> Result<()> {
        let art = Self::read(dir)?;
        for f in &art.manifest.files {
            let bytes = std::fs::read(dir.join(&f.name)).map_err(|e| {
                Error::Artifact(match e.kind() {
                    std::io::ErrorKind::NotFound => ArtifactError::MissingFile(f.name.clone()),
                    _ => ArtifactError::io(&dir.join(&f.name), e),
                })
            })?;
            let found = sha256_hex(&bytes);
            if found != f.sha256 {
                return Err(Error::Artifact(ArtifactError::HashMismatch {
                    file: f.name.clone(),
                    expected: f.sha256.clone(),
                    found,
                }));
            }
        }
        Ok(())
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
        if run.checkpoint_every.is_nan() || run.checkpoint_every < 0.0 {
            return Err(bad(format!(
                "checkpoint_every must be >= 0 seconds, got {}",
                run.checkpoint_every
            )));
        }
        let seed = run.seed.unwrap_or(m.seed);
        let sweeps = m.sweeps_for(draws);
        let t0 = Instant::now();
        let codegen = |e| Error::Compile(crux_compiler::pipeline::CompileError::Backend(e));
        // Code from a file keeps its bounds checks.
        let optimised_opts = ClifOptions::default();
        let loaded = match (run.backend, run.tiering) {
            (Backend::Cranelift, Tiering::Auto | Tiering::Optimised) => self.load_shared(),
            _ => None,
        };
        let from_library = loaded.is_some();
        let first: Box<dyn Executable + Sync> = match (loaded, run.backend, run.tiering) {
            (Some(k), _, _) => Box::new(k),
            (None, Backend::Cranelift, Tiering::Optimised) => {
                Box::new(clif::compile(self.function()?, &optimised_opts).map_err(codegen)?)
            }
            (None, Backend::Cranelift, Tiering::Auto | Tiering::Baseline) => Box::new(
                clif::compile(self.function()?, &ClifOptions::default().fast_compile())
                    .map_err(codegen)?,
            ),
            (None, Backend::Interpreter, _) => Box::new(Interpreter {
                function: self.function()?.clone(),
                fuel: u64::MAX,
            }),
            (None, Backend::Cuda, _) => {
                return Err(bad(
                    "artifacts run on the CPU for now (cranelift or interpreter)".into(),
                ))
            }
        };
        let compile_seconds = t0.elapsed().as_secs_f64();
        let mut bufs0: Vec<ChainBuffers> = (0..k)
            .map(|c| {
                let mut state = self.state.clone();
                for j in &m.jitter {
                    Jitter::from(*j).apply(&mut state, seed, c);
                }
                self.chain_buffers(state)
            })
            .collect();
        let problem = if run.checkpoint.is_some() || run.resume.is_some() {
            checkpoint::problem_hash_of(&self.kir, &self.data)
        } else {
            String::new()
        };
        let id = checkpoint::RunId {
            problem: &problem,
            seed,
            chains: k,
            sweeps,
        };
        let from = match &run.resume {
            Some(path) => checkpoint::restore(path, &id, &mut bufs0)?.0,
            None => 0,
        };
        let mut checkpoints = run
            .checkpoint
            .as_deref()
            .map(|p| checkpoint::Writer::new(p, &id, run.checkpoint_every));
        let chains: Vec<Mutex<ChainBuffers>> = bufs0.into_iter().map(Mutex::new).collect();
        let threads = run
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, k);
        let t1 = Instant::now();
        let opts = if run.progress {
            SolveOptions::default()
        } else {
            SolveOptions::default().quiet()
        };
        let bar = super::options::progress_bar(&opts, sweeps);
        let chunk = run.chunk_sweeps.unwrap_or(1000.max(sweeps / 20)).max(1);
        let auto =
            run.backend == Backend::Cranelift && run.tiering == Tiering::Auto && !from_library;
        let optimised: std::sync::Arc<std::sync::OnceLock<Box<clif::ClifKernel>>> =
            Default::default();
        if auto && sweeps > chunk {
            // Detached: a short run does not wait for it.
            let (slot, f) = (optimised.clone(), self.function()?.clone());
            std::thread::spawn(move || {
                if let Ok(k) = clif::compile(&f, &ClifOptions::default()) {
                    let _ = slot.set(Box::new(k));
                }
            });
        }
        let mut lo = from;
        let (mut chunks, mut stopped_at) = (0, None);
        while lo < sweeps {
            let hi = (lo + chunk).min(sweeps);
            let exe: &(dyn Executable + Sync) = match optimised.get() {
                Some(k) => k.as_ref(),
                None => first.as_ref(),
            };
            run_range(exe, &chains, seed, (lo, hi), threads).map_err(|cause| Error::Run {
                program: "artifact chunk function",
                models: m.models.iter().map(|x| x.name.clone()).collect(),
                cause,
            })?;
            lo = hi;
            bar.set_position(hi as u64);
            chunks += 1;
            let stop = (run.stop_after_chunks.is_some_and(|n| chunks >= n)
                || checkpoint::take_interrupt())
                && hi < sweeps;
            if let Some(w) = checkpoints.as_mut().filter(|w| w.due(hi, stop)) {
                w.write(hi, &chains, checkpoint::RunClock::default())?;
            }
            if stop {
                stopped_at = Some(hi);
                break;
            }
        }
        bar.finish_and_clear();
        let run_seconds = t1.elapsed().as_secs_f64();
        let bufs: Vec<ChainBuffers> = chains
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let posteriors = m
            .models
            .iter()
            .map(|model| {
                let done = stopped_at.unwrap_or(sweeps);
                let kept = super::resolve::kept_after(done, model.warmup, model.thin, draws);
                posterior(model, &bufs, kept)
            })
            .collect();
        Ok(ArtifactSamples {
            posteriors,
            from_library,
            compile_seconds,
            run_seconds,
            sweeps,
            stopped_at,
        })
    }

    /// The chunk function from `chunk.so`, when there is one, it was built
    /// for this target and the system loads it (else `None`: compile).
    fn load_shared(&self) -> Option<clif::ClifKernel> {
        let so = self.shared.as_ref()?;
        if self.manifest.target != host_target() {
            return None;
        }
        load_library(so, &self.manifest)
    }

    fn chain_buffers(&self, state: Vec<f64>) -> ChainBuffers {
        let m = &self.manifest;
        ChainBuffers::from_parts(state, (m.work_len, m.draws_len, m.diag_len), &self.data)
    }
}

/// `logdensity.<i>.graph` for each step's optimised graph.
fn graph_files(graphs: &[(String, crux_ir::graph::Graph)]) -> Vec<(String, Vec<u8>)> {
    graphs
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
                            let u = &b.draws()[at..at + len];
                            data.extend(l.transform.forward(u));
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
    let fields: Vec<_> = model
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.kind()))
        .collect();
    let diagnostics = read_diagnostics(n, model.diag, &fields, bufs);
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

/// Parses and verifies `chunk.kir`.
fn parse_kernel(kir: &[u8]) -> std::result::Result<Function, ArtifactError> {
    let text = std::str::from_utf8(kir).map_err(|e| ArtifactError::Kernel(e.to_string()))?;
    let f = crux_ir::kernel::text::parse(text).map_err(|e| ArtifactError::Kernel(e.to_string()))?;
    crux_ir::kernel::verify::verify(&f).map_err(|e| ArtifactError::Kernel(e.to_string()))?;
    Ok(f)
}

/// `object` linked into a shared library by the system's `cc` (`None`
/// when there is no `cc` or it fails: the artifact then has no library).
fn link_shared(object: &[u8]) -> Option<Vec<u8>> {
    let dir = private_dir().ok()?;
    let (o, so) = (dir.join("chunk.o"), dir.join("chunk.so"));
    std::fs::write(&o, object).ok()?;
    let status = std::process::Command::new("cc")
        .args(["-shared", "-nostdlib", "-o"])
        .arg(&so)
        .arg(&o)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let bytes = status.success().then(|| std::fs::read(&so).ok()).flatten();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// A fresh directory only this process uses.
fn private_dir() -> std::io::Result<std::path::PathBuf> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "crux-artifact-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Loads the checked library bytes `so` (from a private copy, so what is
/// loaded is what was hashed) and wraps its entry point. The kernel's
/// argument checks use the chunk signature rebuilt from the manifest, so
/// the kernel IR is not parsed.
#[cfg(unix)]
fn load_library(so: &[u8], m: &Manifest) -> Option<clif::ClifKernel> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    let dir = private_dir().ok()?;
    let path = dir.join("chunk.so");
    std::fs::write(&path, so).ok()?;
    // SAFETY: the library is `compile_object`'s code for this artifact's
    // chunk function (its hash matched the manifest's), linked with no
    // initialisers (`-nostdlib`); loading it runs no code.
    let lib = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL) };
    let _ = std::fs::remove_dir_all(&dir);
    let lib = lib.ok()?;
    // SAFETY: the symbol is the chunk function's entry (`EntryFn`), valid
    // while `lib` lives, which the kernel keeps.
    let entry = unsafe { *lib.get::<*const u8>(m.entry.as_bytes()).ok()? };
    let signature = chunk_signature(&m.entry, m.data_lens.len());
    // SAFETY: `entry` is `compile_object`'s code for the chunk function,
    // whose signature `signature` repeats (parameters and buffers).
    Some(unsafe { clif::ClifKernel::from_loaded(entry, &signature, Box::new(lib)) })
}

#[cfg(not(unix))]
fn load_library(_: &[u8], _: &Manifest) -> Option<clif::ClifKernel> {
    None
}

/// A chunk function's signature without its body: the parameters and the
/// buffers the chunk builder declares (argument checks of a loaded kernel).
fn chunk_signature(name: &str, data: usize) -> Function {
    use crux_compiler::sampler::abi::{ChunkBuffer, CHUNK_PARAMS};
    use crux_ir::kernel::{Access, Builder, Ty};
    let mut b = Builder::new(name);
    for p in CHUNK_PARAMS {
        b.param(p, Ty::I64);
    }
    for buf in ChunkBuffer::ALL {
        b.buffer(buf.name(), Ty::F64, buf.access());
    }
    for k in 0..data {
        b.buffer(format!("data{k}"), Ty::F64, Access::Read);
    }
    b.finish(&[])
        .expect("an empty body with no returns verifies")
}
