//! What every benchmark program shares: the median of its runs and the
//! `--json PATH` option that writes its results.

/// The median of `v` (the upper one for an even count); `NaN` for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The path after `--json` on the command line, if any.
pub fn json_path() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1).cloned())
}

/// Writes `out` (one line) to the `--json` path if one was given; exits
/// with status 1 and a message when it cannot be written.
pub fn write_json(out: &serde_json::Value) {
    if let Some(p) = json_path() {
        if let Err(e) = std::fs::write(&p, format!("{out}\n")) {
            eprintln!("error: cannot write {p}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_is_the_middle_run() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(vec![]).is_nan());
    }
}
