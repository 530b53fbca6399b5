//! Writing files so that nothing is ever half written: every output goes
//! to a temporary name beside its path and is renamed into place (atomic
//! on POSIX), so a run killed while writing leaves the previous file whole
//! or none. Shared by every room (exports, checkpoints, artifacts).

use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary name beside `path`, then renames it into
/// place (atomic on POSIX): readers see the old file or the new one, whole.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// [`atomic_write`] of what `fill` writes (buffered), for outputs too large
/// to build in memory first.
pub fn atomic_write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails half way leaves the old file whole and no
    /// temporary behind; an unwritable directory is an error.
    #[test]
    fn atomic_writes_never_leave_partial_files() {
        let dir = std::env::temp_dir().join(format!("crux-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        atomic_write(&path, b"{\"old\": 1}").unwrap();
        let e = atomic_write_with(&path, |w| {
            w.write_all(b"{\"new\": ")?;
            Err(std::io::Error::other("killed half way"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"old\": 1}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            [std::ffi::OsString::from("out.json")],
            "no temporary left"
        );
        assert!(atomic_write(Path::new("/nonexistent-dir/x/out.json"), b"x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
