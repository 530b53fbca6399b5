//! Validating PTX without a GPU: runs NVIDIA's `ptxas` assembler (when it is
//! installed) on a module and reads its `-v` report (registers, spills,
//! stack frame per entry).
//!
//! `ptxas` is looked for ([`find`]) in `$CRUX_PTXAS`, then on `PATH`, then
//! in the repository's Python virtual environment, where
//! `pip install nvidia-cuda-nvcc` puts it
//! (`.venv/lib/python3*/site-packages/nvidia/*/bin/ptxas`: `cuda_nvcc/bin`
//! for CUDA 12 wheels, `cu13/bin` for CUDA 13 ones).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use super::BackendError;

const BACKEND: &str = "ptxas";

/// Environment variable naming the `ptxas` executable to use.
pub const PTXAS_ENV: &str = "CRUX_PTXAS";
/// Environment variable that, set to `1`, makes a missing `ptxas` an error
/// in the tests (see [`required`]) instead of a skip.
pub const REQUIRE_ENV: &str = "CRUX_REQUIRE_PTXAS";

/// What `ptxas -v` says about one entry function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelReport {
    /// Entry name.
    pub name: String,
    /// Registers per thread.
    pub registers: u64,
    /// Bytes of register spill stores.
    pub spill_stores_bytes: u64,
    /// Bytes of register spill loads.
    pub spill_loads_bytes: u64,
    /// Bytes of per-thread stack frame (local arrays and spills).
    pub stack_frame_bytes: u64,
}

/// The parsed `-v` output of one `ptxas` run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtxasReport {
    /// One report per entry function, in ptxas's order.
    pub kernels: Vec<KernelReport>,
    /// Everything ptxas printed (stdout, then stderr), warnings included.
    pub log: String,
}

impl PtxasReport {
    /// Parses `ptxas -v` output:
    ///
    /// ```text
    /// ptxas info    : Compiling entry function 'k' for 'sm_90'
    /// ptxas info    : Function properties for k
    ///     16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    /// ptxas info    : Used 24 registers, used 0 barriers, 408 bytes cmem[0]
    /// ```
    pub fn parse(log: &str) -> PtxasReport {
        let mut kernels: Vec<KernelReport> = Vec::new();
        for line in log.lines() {
            let line = line.trim();
            if let Some(rest) = line
                .split_once("Compiling entry function '")
                .map(|(_, r)| r)
            {
                let name = rest.split('\'').next().unwrap_or_default();
                kernels.push(KernelReport {
                    name: name.to_string(),
                    ..KernelReport::default()
                });
                continue;
            }
            let Some(e) = kernels.last_mut() else {
                continue;
            };
            if let Some((_, rest)) = line.split_once("Used ") {
                let mut w = rest.split_whitespace();
                if let (Some(n), Some(unit)) = (w.next(), w.next()) {
                    if let (true, Ok(n)) = (unit.starts_with("registers"), n.parse()) {
                        e.registers = n;
                    }
                }
            } else if line.contains("bytes stack frame") {
                for part in line.split(',') {
                    let mut w = part.split_whitespace();
                    let n = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                    let what: Vec<&str> = w.collect();
                    match what.as_slice() {
                        ["bytes", "stack", "frame"] => e.stack_frame_bytes = n,
                        ["bytes", "spill", "stores"] => e.spill_stores_bytes = n,
                        ["bytes", "spill", "loads"] => e.spill_loads_bytes = n,
                        _ => {}
                    }
                }
            }
        }
        PtxasReport {
            kernels,
            log: log.to_string(),
        }
    }
}

/// Whether `$CRUX_REQUIRE_PTXAS` is `1`: tests must then fail, not skip,
/// when [`find`] finds no `ptxas`.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// The `ptxas` executable: `$CRUX_PTXAS` when set (even if it does not
/// exist, so a typo fails loudly), else `ptxas` on `PATH`, else one in the
/// repository's `.venv` (see the module documentation). `None` when there
/// is none.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(PTXAS_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("ptxas");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    in_venv(&repo.join(".venv"))
}

/// `<venv>/lib/python3*/site-packages/nvidia/{cuda_nvcc,*}/bin/ptxas`.
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    for py in pythons {
        let nvidia = py.join("site-packages").join("nvidia");
        let preferred = nvidia.join("cuda_nvcc").join("bin").join("ptxas");
        if preferred.is_file() {
            return Some(preferred);
        }
        let Ok(dirs) = std::fs::read_dir(&nvidia) else {
            continue;
        };
        let mut found: Vec<PathBuf> = dirs
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin").join("ptxas"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return Some(p);
        }
    }
    None
}

fn failed(msg: impl Into<String>) -> BackendError {
    BackendError::Codegen {
        backend: BACKEND,
        msg: msg.into(),
    }
}

/// Removes a file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Assembles `ptx` with `ptxas --gpu-name <gpu> -v` (`gpu` such as
/// `"sm_90"`) into a temporary cubin that is then deleted. `Ok(None)` when
/// no `ptxas` is found ([`find`]); an error carrying ptxas's output when it
/// rejects the module; otherwise its parsed report.
pub fn check(ptx: &str, gpu: &str) -> Result<Option<PtxasReport>, BackendError> {
    let Some(exe) = find() else {
        return Ok(None);
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = format!(
        "crux-ptxas-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir();
    let src = TempFile(dir.join(format!("{stem}.ptx")));
    let out = TempFile(dir.join(format!("{stem}.cubin")));
    std::fs::write(&src.0, ptx).map_err(|e| failed(format!("writing {:?}: {e}", src.0)))?;
    let res = Command::new(&exe)
        .arg("--gpu-name")
        .arg(gpu)
        .arg("-v")
        .arg(&src.0)
        .arg("-o")
        .arg(&out.0)
        .output()
        .map_err(|e| failed(format!("running {exe:?}: {e}")))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    if !res.status.success() {
        return Err(failed(format!("{exe:?} failed ({}):\n{log}", res.status)));
    }
    Ok(Some(PtxasReport::parse(&log)))
}
