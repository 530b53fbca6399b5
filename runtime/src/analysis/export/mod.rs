//! Taking chains elsewhere: an `.npz` archive in arviz's layout (three
//! lines of Python make it an `InferenceData`, see the README) and CSV for
//! spreadsheets.

pub mod npz;

pub use npz::{read_npz, write_npz, NpyArray};

use crux_compiler::sampler::DiagName;

use crate::error::{Error, Result, SamplesError};
use crate::model::posterior::Posterior;

/// arviz's name of a per-draw diagnostics field.
pub fn arviz_stat_name(field: &str) -> &str {
    match DiagName::from_name(field) {
        Some(d) => d.arviz_name(),
        None => field,
    }
}

fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::InvalidArgument {
        what: format!("output path {}", path.display()),
        reason: e.to_string(),
    }
}

fn same_shape(posteriors: &[&Posterior]) -> Result<(usize, usize)> {
    let kn = posteriors
        .first()
        .map_or((0, 0), |p| (p.num_chains(), p.num_draws()));
    if let Some(p) = posteriors
        .iter()
        .find(|p| (p.num_chains(), p.num_draws()) != kn)
    {
        return Err(Error::Samples {
            reason: SamplesError::ExportShapes {
                first: (posteriors[0].model.clone(), kn),
                second: (p.model.clone(), (p.num_chains(), p.num_draws())),
            },
        });
    }
    Ok(kn)
}

/// The arrays of an arviz-layout archive: `posterior/<leaf>` `(K, N,
/// ...)` for every leaf, `sample_stats/<field>` `(K, N)` with arviz's
/// names (`diverging`, `acceptance_rate`, `energy`, `tree_depth`,
/// `n_steps`; suffixed `_<model>` when several models record the same
/// field, with `diverging` then true when any model diverged), then `data`.
pub fn arviz_arrays(posteriors: &[&Posterior], data: &[NpyArray]) -> Result<Vec<NpyArray>> {
    let (k, n) = same_shape(posteriors)?;
    let mut out = Vec::new();
    for p in posteriors {
        for l in &p.leaves {
            out.push(NpyArray {
                name: format!("posterior/{}", l.name),
                shape: l.samples.shape().to_vec(),
                data: l.samples.iter().copied().collect(),
            });
        }
    }
    let with_stats: Vec<&&Posterior> = posteriors
        .iter()
        .filter(|p| p.diagnostics.is_some())
        .collect();
    let mut any_divergent: Option<Vec<f64>> = None;
    for p in &with_stats {
        let d = p
            .diagnostics
            .as_ref()
            .expect("only posteriors with diagnostics are listed here");
        for field in d.names() {
            let a = d
                .get(field)
                .expect("fields are listed from this posterior's own diagnostics");
            let name = arviz_stat_name(field);
            let name = if with_stats.len() == 1 {
                name.to_string()
            } else {
                format!("{name}_{}", p.model)
            };
            if DiagName::from_name(field) == Some(DiagName::IsDivergent) {
                let acc = any_divergent.get_or_insert_with(|| vec![0.0; k * n]);
                for (x, v) in acc.iter_mut().zip(a.iter()) {
                    *x = x.max(*v);
                }
            }
            out.push(NpyArray {
                name: format!("sample_stats/{name}"),
                shape: vec![k, n],
                data: a.iter().copied().collect(),
            });
        }
    }
    if with_stats.len() > 1 {
        if let Some(d) = any_divergent {
            out.push(NpyArray {
                name: "sample_stats/diverging".into(),
                shape: vec![k, n],
                data: d,
            });
        }
    }
    out.extend(data.iter().cloned());
    Ok(out)
}

/// Writes [`arviz_arrays`] to `path`.
pub fn write_arviz_npz(
    path: &std::path::Path,
    posteriors: &[&Posterior],
    data: &[NpyArray],
) -> Result<()> {
    let arrays = arviz_arrays(posteriors, data)?;
    write_npz(path, &arrays).map_err(|e| io(path, e))
}

/// Column names of one leaf's entries: `a[0]`, `w[1,2]`, or the leaf name
/// for a scalar.
pub(crate) fn entry_names(name: &str, shape: &[usize]) -> Vec<String> {
    let count: usize = shape.iter().product();
    if shape.is_empty() {
        return vec![name.to_string()];
    }
    (0..count)
        .map(|mut i| {
            let mut idx = vec![0; shape.len()];
            for (d, s) in shape.iter().enumerate().rev() {
                idx[d] = i % s;
                i /= s;
            }
            let idx: Vec<String> = idx.iter().map(|x| x.to_string()).collect();
            format!("{name}[{}]", idx.join(","))
        })
        .collect()
}

/// Writes the draws as CSV, one row per chain and draw: `chain,draw,` then
/// every entry of every leaf (`a[0]`, `net.layers.0.weight[3,0]`, ...),
/// values in shortest round-trip form.
pub fn write_csv(path: &std::path::Path, posteriors: &[&Posterior]) -> Result<()> {
    let (k, n) = same_shape(posteriors)?;
    let mut header = vec!["chain".to_string(), "draw".to_string()];
    let mut columns: Vec<(&ndarray::ArrayD<f64>, usize)> = Vec::new();
    for p in posteriors {
        for l in &p.leaves {
            let shape = &l.samples.shape()[2..];
            header.extend(entry_names(&l.name, shape));
            columns.push((&l.samples, shape.iter().product()));
        }
    }
    crate::files::atomic_write_with(path, |w| {
        let mut text = header.join(",");
        text.push('\n');
        for c in 0..k {
            for d in 0..n {
                text.push_str(&format!("{c},{d}"));
                for (a, per) in &columns {
                    let flat = a
                        .as_slice()
                        .map(|s| &s[(c * n + d) * per..(c * n + d + 1) * per]);
                    match flat {
                        Some(row) => {
                            for v in row {
                                text.push_str(&format!(",{v:?}"));
                            }
                        }
                        None => {
                            let row = a
                                .index_axis(ndarray::Axis(0), c)
                                .index_axis(ndarray::Axis(0), d)
                                .to_owned();
                            for v in row.iter() {
                                text.push_str(&format!(",{v:?}"));
                            }
                        }
                    }
                }
                text.push('\n');
                if text.len() > 1 << 16 {
                    w.write_all(text.as_bytes())?;
                    text.clear();
                }
            }
        }
        w.write_all(text.as_bytes())
    })
    .map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names() {
        assert_eq!(entry_names("a", &[1]), vec!["a[0]"]);
        assert_eq!(entry_names("s", &[]), vec!["s"]);
        assert_eq!(
            entry_names("w", &[2, 2]),
            vec!["w[0,0]", "w[0,1]", "w[1,0]", "w[1,1]"]
        );
    }
}
