//! `.npz` files (a zip of `.npy` f64 arrays, stored uncompressed) through
//! `ndarray-npy`: what numpy, arviz and the benchmarks read.

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter};

/// One named f64 array for an `.npz` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Name inside the archive (without `.npy`).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes `arrays` to `path` as an `.npz` archive, in order (atomically:
/// a temporary file renamed into place).
pub fn write_npz(path: &std::path::Path, arrays: &[NpyArray]) -> std::io::Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    {
        let mut w = NpzWriter::new(&mut bytes);
        for a in arrays {
            let arr = ArrayD::from_shape_vec(IxDyn(&a.shape), a.data.clone()).map_err(io_error)?;
            w.add_array(a.name.as_str(), &arr).map_err(io_error)?;
        }
        w.finish().map_err(io_error)?;
    }
    crate::files::atomic_write(path, bytes.get_ref())
}

/// Reads the f64 arrays of an `.npz` archive, in archive order.
pub fn read_npz(path: &std::path::Path) -> std::io::Result<Vec<NpyArray>> {
    let mut r = NpzReader::new(std::fs::File::open(path)?).map_err(io_error)?;
    let names = r.names().map_err(io_error)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let arr: ArrayD<f64> = r.by_name(&name).map_err(io_error)?;
        out.push(NpyArray {
            name: name.strip_suffix(".npy").unwrap_or(&name).to_string(),
            shape: arr.shape().to_vec(),
            data: arr.iter().copied().collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let path = std::env::temp_dir().join(format!("crux-npz-{}.npz", std::process::id()));
        let arrays = vec![
            NpyArray {
                name: "posterior/a".into(),
                shape: vec![2, 3, 1],
                data: (0..6).map(|i| i as f64 * 0.5 - 1.0).collect(),
            },
            NpyArray {
                name: "x".into(),
                shape: vec![4],
                data: vec![0.0, f64::NAN, f64::INFINITY, -0.0],
            },
        ];
        write_npz(&path, &arrays).unwrap();
        let back = read_npz(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(back.len(), 2);
        for (a, b) in arrays.iter().zip(&back) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.shape, b.shape);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.data), bits(&b.data));
        }
    }
}
