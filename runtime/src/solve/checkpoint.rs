//! Checkpoints of a running solve: every chain's state, draws and
//! diagnostics at a chunk boundary, so a killed run resumes where it was
//! and gives the same draws bit for bit (the draws are a pure function of
//! (seed, chain, sweep, model, k), and chunks end at sweep boundaries).
//!
//! A checkpoint file is one JSON header line, then the payload: for each
//! chain its state, draws and diagnostics buffers as little-endian f64.
//! The header carries the format and crux versions, a SHA-256 of the
//! compiled problem (the chunk function's kernel IR and its data) and of
//! the solve configuration (seed, chains, sweeps), the sweep reached and
//! the payload's SHA-256. It is written to a temporary name and renamed
//! into place, so a run killed while writing leaves the previous
//! checkpoint whole.

use std::path::Path;

use crux_compiler::sampler::abi::{ChainBuffers, ChunkBuffer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::driver::plan::Plan;

static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the running solves to stop at their next chunk boundary (after
/// writing their checkpoint, if one is configured) with
/// [`crate::Error::Interrupted`] (an artifact run returns its draws so far
/// with [`crate::ArtifactSamples::stopped_at`] set). Async-signal-safe (one atomic store): call
/// it from a Ctrl-C handler, as the samples do.
pub fn interrupt() {
    INTERRUPT.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`interrupt`] was called and not yet taken by a solve.
pub(crate) fn take_interrupt() -> bool {
    INTERRUPT.swap(false, std::sync::atomic::Ordering::SeqCst)
}

/// The checkpoint format this crux writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;

const MAGIC: &str = "crux-checkpoint";

/// What is wrong with a checkpoint (each case says what differs).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The system's message.
        message: String,
    },
    /// Not a checkpoint (no header line, or not crux's).
    #[error("`{0}` is not a crux checkpoint")]
    NotACheckpoint(String),
    /// Another checkpoint format.
    #[error("checkpoint format {found}, this crux reads format {expected}: resume it with the crux that wrote it")]
    Format {
        /// The file's.
        found: u32,
        /// This crux's.
        expected: u32,
    },
    /// Written by another crux version (its kernels may differ).
    #[error(
        "written by crux {found}, this is crux {expected}: resume it with the crux that wrote it"
    )]
    CruxVersion {
        /// The file's.
        found: String,
        /// This crux's.
        expected: String,
    },
    /// The problem (its compiled chunk function or data) changed.
    #[error("the checkpoint is of another problem (its compiled sampler or data differ): resume with the problem, configuration and epochs that wrote it")]
    Problem,
    /// The solve's configuration changed.
    #[error("the checkpoint's run had {what} {found}, this one {expected}: resume with the same settings")]
    Config {
        /// Which setting.
        what: &'static str,
        /// The checkpoint's.
        found: String,
        /// This run's.
        expected: String,
    },
    /// The payload is shorter or longer than the header says.
    #[error("the checkpoint is truncated or padded: {found} payload bytes, {expected} expected")]
    Length {
        /// Bytes present.
        found: usize,
        /// Bytes the header promises.
        expected: usize,
    },
    /// The payload does not match its checksum.
    #[error("the checkpoint's payload does not match its checksum: the file is corrupted")]
    Checksum,
}

/// What a run measured before its checkpoint, so that a resumed run
/// reports the whole run's warmup cost and times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunClock {
    /// Seconds of warmup chunks.
    pub warmup_seconds: f64,
    /// Seconds of sampling chunks.
    pub sampling_seconds: f64,
    /// Gradient evaluations of all chains during warmup (set once the
    /// warmup is over).
    pub grad_evals_warmup: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    magic: String,
    format: u32,
    crux: String,
    problem: String,
    seed: u64,
    chains: usize,
    sweeps: usize,
    sweep: usize,
    lens: [usize; 3],
    payload_bytes: usize,
    payload_sha256: String,
    /// Absent in files written before it existed: zero.
    #[serde(default)]
    clock: RunClock,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the plan's compiled chunk function and data.
pub(crate) fn problem_hash(plan: &Plan) -> String {
    let kir = crux_ir::kernel::text::print(&plan.chunk.function);
    problem_hash_of(kir.as_bytes(), &plan.chunk.data)
}

/// The SHA-256 of a chunk function's kernel-IR text and its data buffers
/// (the same for a solve and for the artifact compiled from it).
pub(crate) fn problem_hash_of(kir: &[u8], data: &[Vec<f64>]) -> String {
    let mut h = Sha256::new();
    h.update(kir);
    for d in data {
        for v in d {
            h.update(v.to_le_bytes());
        }
    }
    hex(h.finalize())
}

/// Writes a run's checkpoints at chunk ends: when `every` seconds have
/// passed since the last one, or when the run stops there.
pub(crate) struct Writer<'a> {
    pub path: &'a Path,
    pub id: &'a RunId<'a>,
    pub every: f64,
    last: std::time::Instant,
}

impl<'a> Writer<'a> {
    /// A writer whose first checkpoint is due `every` seconds from now.
    pub fn new(path: &'a Path, id: &'a RunId<'a>, every: f64) -> Writer<'a> {
        Writer {
            path,
            id,
            every,
            last: std::time::Instant::now(),
        }
    }
    /// Whether a checkpoint is due at the end of a chunk reaching sweep
    /// `hi` of `id.sweeps` (never at the run's end: the draws are out).
    pub fn due(&self, hi: usize, stopping: bool) -> bool {
        hi < self.id.sweeps && (stopping || self.last.elapsed().as_secs_f64() >= self.every)
    }
    /// Writes the chains (their host buffers, in sync) at sweep `hi`, and
    /// what the run measured so far.
    pub fn write(
        &mut self,
        hi: usize,
        chains: &[std::sync::Mutex<ChainBuffers>],
        clock: RunClock,
    ) -> Result<(), CheckpointError> {
        let guards: Vec<_> = chains
            .iter()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let refs: Vec<&ChainBuffers> = guards.iter().map(|g| &**g).collect();
        write(self.path, self.id, hi, &refs, clock)?;
        self.last = std::time::Instant::now();
        Ok(())
    }
}

/// Loads the checkpoint at `path` of the run `id` into the chains'
/// buffers; returns the sweep to continue from and what the run had
/// measured.
pub(crate) fn restore(
    path: &Path,
    id: &RunId<'_>,
    chains: &mut [ChainBuffers],
) -> Result<(usize, RunClock), CheckpointError> {
    let (sweep, saved, clock) = read(path, id)?;
    for (b, saved) in chains.iter_mut().zip(saved) {
        for (which, v) in BUFFERS.into_iter().zip(saved) {
            let dst = b.get_mut(which);
            if dst.len() != v.len() {
                return Err(CheckpointError::Problem);
            }
            dst.copy_from_slice(&v);
        }
    }
    Ok((sweep, clock))
}

const BUFFERS: [ChunkBuffer; 3] = [ChunkBuffer::State, ChunkBuffer::Draws, ChunkBuffer::Diag];

fn io(path: &Path, e: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A checkpoint being written or read: what identifies the run.
pub(crate) struct RunId<'a> {
    pub problem: &'a str,
    pub seed: u64,
    pub chains: usize,
    pub sweeps: usize,
}

/// Writes the chains at sweep `sweep` to `path`, atomically.
pub(crate) fn write(
    path: &Path,
    id: &RunId<'_>,
    sweep: usize,
    chains: &[&ChainBuffers],
    clock: RunClock,
) -> Result<(), CheckpointError> {
    let lens = BUFFERS.map(|b| chains.first().map_or(0, |c| c.get(b).len()));
    let mut payload = Vec::with_capacity(chains.len() * lens.iter().sum::<usize>() * 8);
    for c in chains {
        for b in BUFFERS {
            for v in c.get(b) {
                payload.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let header = Header {
        magic: MAGIC.into(),
        format: CHECKPOINT_FORMAT,
        crux: env!("CARGO_PKG_VERSION").into(),
        problem: id.problem.into(),
        seed: id.seed,
        chains: id.chains,
        sweeps: id.sweeps,
        sweep,
        lens,
        payload_bytes: payload.len(),
        payload_sha256: hex(Sha256::digest(&payload)),
        clock,
    };
    let mut bytes = serde_json::to_vec(&header).expect("the header serialises");
    bytes.push(b'\n');
    bytes.extend_from_slice(&payload);
    crate::files::atomic_write(path, &bytes).map_err(|e| io(path, e))
}

/// One chain's saved buffers: state, draws, diagnostics.
pub(crate) type SavedChain = [Vec<f64>; 3];

/// Reads the checkpoint at `path` for the run `id`, checking everything
/// (format, version, problem, configuration, length, checksum); returns
/// the sweep reached, each chain's (state, draws, diagnostics) and what the
/// run had measured.
pub(crate) fn read(
    path: &Path,
    id: &RunId<'_>,
) -> Result<(usize, Vec<SavedChain>, RunClock), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let not = || CheckpointError::NotACheckpoint(path.display().to_string());
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or_else(not)?;
    let header: Header = serde_json::from_slice(&bytes[..nl]).map_err(|_| not())?;
    if header.magic != MAGIC {
        return Err(not());
    }
    if header.format != CHECKPOINT_FORMAT {
        return Err(CheckpointError::Format {
            found: header.format,
            expected: CHECKPOINT_FORMAT,
        });
    }
    if header.crux != env!("CARGO_PKG_VERSION") {
        return Err(CheckpointError::CruxVersion {
            found: header.crux,
            expected: env!("CARGO_PKG_VERSION").into(),
        });
    }
    if header.problem != id.problem {
        return Err(CheckpointError::Problem);
    }
    let config = |what, found: String, expected: String| CheckpointError::Config {
        what,
        found,
        expected,
    };
    if header.seed != id.seed {
        return Err(config("seed", header.seed.to_string(), id.seed.to_string()));
    }
    if header.chains != id.chains {
        return Err(config(
            "chains",
            header.chains.to_string(),
            id.chains.to_string(),
        ));
    }
    if header.sweeps != id.sweeps {
        return Err(config(
            "sweeps",
            header.sweeps.to_string(),
            id.sweeps.to_string(),
        ));
    }
    let payload = &bytes[nl + 1..];
    let per_chain: usize = header.lens.iter().sum::<usize>() * 8;
    let expected = per_chain * header.chains;
    if payload.len() != header.payload_bytes || payload.len() != expected {
        return Err(CheckpointError::Length {
            found: payload.len(),
            expected: header.payload_bytes.max(expected),
        });
    }
    if hex(Sha256::digest(payload)) != header.payload_sha256 {
        return Err(CheckpointError::Checksum);
    }
    if header.sweep > header.sweeps {
        return Err(config(
            "sweep",
            header.sweep.to_string(),
            format!("<= {}", header.sweeps),
        ));
    }
    let mut at = 0;
    let mut take = |n: usize| {
        let v: Vec<f64> = payload[at..at + 8 * n]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        at += 8 * n;
        v
    };
    let chains = (0..header.chains)
        .map(|_| header.lens.map(&mut take))
        .collect();
    Ok((header.sweep, chains, header.clock))
}
