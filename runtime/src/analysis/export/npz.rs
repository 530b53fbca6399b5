//! A minimal `.npz` writer and reader (a zip of `.npy` f64 arrays, stored
//! uncompressed): enough for numpy, arviz and the benchmarks to read the
//! chains, without a zip dependency.

use std::io::Write;

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

fn npy(a: &NpyArray) -> Vec<u8> {
    let shape = match a.shape.len() {
        1 => format!("({},)", a.shape[0]),
        _ => format!(
            "({})",
            a.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in &a.data {
        out.extend(v.to_le_bytes());
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Writes `arrays` to `path` as an `.npz` archive.
pub fn write_npz(path: &std::path::Path, arrays: &[NpyArray]) -> std::io::Result<()> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for a in arrays {
        let name = format!("{}.npy", a.name);
        let body = npy(a);
        let crc = crc32(&body);
        let offset = out.len() as u32;
        let size = u32::try_from(body.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "array over 4 GiB")
        })?;
        // Local file header: stored (method 0), no data descriptor.
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, method, time
        out.extend(crc.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(&body);
        // Central directory entry.
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 8]); // extra, comment, disk, internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let cd_len = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((arrays.len() as u16).to_le_bytes());
    out.extend((arrays.len() as u16).to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    std::fs::File::create(path)?.write_all(&out)
}

/// Reads an `.npz` archive written by [`write_npz`] (stored entries of
/// little-endian f64 `.npy` arrays) back, in archive order.
pub fn read_npz(path: &std::path::Path) -> std::io::Result<Vec<NpyArray>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let bytes = std::fs::read(path)?;
    let u16_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut out = Vec::new();
    let mut at = 0;
    while u32_at(at) == Some(0x0403_4b50) {
        let method = u16_at(at + 8).ok_or_else(|| bad("truncated header"))?;
        let size = u32_at(at + 18).ok_or_else(|| bad("truncated header"))?;
        let name_len = u16_at(at + 26).ok_or_else(|| bad("truncated header"))?;
        let extra = u16_at(at + 28).ok_or_else(|| bad("truncated header"))?;
        if method != 0 {
            return Err(bad("compressed entries are not supported"));
        }
        let name_at = at + 30;
        let body_at = name_at + name_len + extra;
        let name = bytes
            .get(name_at..name_at + name_len)
            .ok_or_else(|| bad("truncated name"))?;
        let body = bytes
            .get(body_at..body_at + size)
            .ok_or_else(|| bad("truncated entry"))?;
        let name = String::from_utf8_lossy(name);
        let name = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        if body.get(..8) != Some(b"\x93NUMPY\x01\x00".as_slice()) {
            return Err(bad("not a version 1.0 .npy entry"));
        }
        let hl = u16::from_le_bytes([body[8], body[9]]) as usize;
        let header = String::from_utf8_lossy(body.get(10..10 + hl).ok_or_else(|| bad("header"))?);
        if !header.contains("'descr': '<f8'") {
            return Err(bad("only little-endian f64 arrays are supported"));
        }
        let shape_text = header
            .split("'shape': (")
            .nth(1)
            .and_then(|t| t.split(')').next())
            .ok_or_else(|| bad("no shape"))?;
        let shape: Vec<usize> = shape_text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().map_err(|_| bad("bad shape")))
            .collect::<std::io::Result<_>>()?;
        let data: Vec<f64> = body[10 + hl..]
            .chunks_exact(8)
            .map(|c| {
                f64::from_le_bytes(c.try_into().expect("chunks_exact(8) yields 8-byte slices"))
            })
            .collect();
        if data.len() != shape.iter().product::<usize>() {
            return Err(bad("data length does not match the shape"));
        }
        out.push(NpyArray { name, shape, data });
        at = body_at + size;
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

    #[test]
    fn crc_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn npy_header_is_aligned() {
        let a = NpyArray {
            name: "x".into(),
            shape: vec![2, 3],
            data: vec![0.0; 6],
        };
        let b = npy(&a);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert_eq!(b.len(), 10 + hl + 48);
        assert!(String::from_utf8_lossy(&b[10..10 + hl]).contains("'shape': (2, 3)"));
    }
}
