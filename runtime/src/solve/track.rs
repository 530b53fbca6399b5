//! Metrics streamed during a solve: a [`Tracker`] receives, at every chunk
//! boundary, the spec's `posterior/<name>/...` keys and the loss at chain
//! 0's position; [`JsonlTracker`] writes them one JSON object per line.

use std::fmt;
use std::io::Write;

use crate::error::{Error, Result};

/// One chunk boundary's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Sweeps done by every chain.
    pub sweep: usize,
    /// Total sweeps of the solve.
    pub sweeps: usize,
    /// Seconds since sampling started.
    pub seconds: f64,
    /// `(key, value)` pairs: `posterior/<name>/n_samples`, `n_chains`,
    /// `mean` (scalar parameters), `n_is_divergent`,
    /// `mean_acceptance_rate`, `mean_energy` (when the kernel records
    /// them), `loss` and `loss/c<i>` per constraint at chain 0's position.
    pub values: Vec<(String, f64)>,
}

impl Metrics {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Receives metrics at every chunk boundary of a solve (a training
/// dashboard, a file, a test).
pub trait Tracker: Send + fmt::Debug {
    /// Called after every chain finished the sweeps up to `m.sweep`.
    fn record(&mut self, m: &Metrics) -> Result<()>;
}

/// Writes one JSON object per chunk boundary to a file:
/// `{"sweep": .., "sweeps": .., "seconds": .., "<key>": <value>, ...}`
/// (non-finite values as `null`).
#[derive(Debug)]
pub struct JsonlTracker {
    path: std::path::PathBuf,
    /// Unbuffered: each record is one `write` of a whole line.
    out: std::fs::File,
}

impl JsonlTracker {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: impl AsRef<std::path::Path>) -> Result<JsonlTracker> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        Ok(JsonlTracker { path, out: file })
    }
}

fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::InvalidArgument {
        what: format!("tracker file {}", path.display()),
        reason: e.to_string(),
    }
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `v` as a JSON number (shortest round-trip form), or `null`.
pub(crate) fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "null".into()
    }
}

impl Tracker for JsonlTracker {
    fn record(&mut self, m: &Metrics) -> Result<()> {
        let mut line = format!(
            "{{\"sweep\": {}, \"sweeps\": {}, \"seconds\": {}",
            m.sweep,
            m.sweeps,
            json_number(m.seconds)
        );
        for (k, v) in &m.values {
            line.push_str(&format!(", {}: {}", json_string(k), json_number(*v)));
        }
        line.push_str("}\n");
        // One write of the whole line: a killed run leaves whole lines.
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| io(&self.path, e))
    }
}
