//! What can be wrong with an artifact, each case with what to do.

/// A problem with an ahead-of-time artifact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArtifactError {
    /// The path is not a directory.
    #[error("`{0}` is not an artifact directory (make one with `crux compile PROBLEM -o DIR`)")]
    NotAnArtifact(String),
    /// A file the artifact needs is not there.
    #[error("the artifact has no `{0}`: it is incomplete; compile it again")]
    MissingFile(String),
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// The system's message.
        message: String,
    },
    /// `manifest.json` is not a manifest.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// Another artifact format.
    #[error("artifact format {found}, this crux reads format {expected}: compile it again with this crux")]
    FormatVersion {
        /// The artifact's.
        found: u32,
        /// This crux's.
        expected: u32,
    },
    /// Made by another crux version (kernels, layouts and draws may differ).
    #[error("made by crux {found}, this is crux {expected}: compile it again with this crux")]
    CruxVersion {
        /// The artifact's.
        found: String,
        /// This crux's.
        expected: String,
    },
    /// Made for a target whose data this host cannot read.
    #[error("made for target {artifact}, this host is {host} (another byte order): compile it on this host")]
    Target {
        /// The artifact's target.
        artifact: String,
        /// This host's.
        host: String,
    },
    /// A file's contents changed after the artifact was written.
    #[error("`{file}` does not match its hash in the manifest (expected {expected}, found {found}): the artifact is corrupted or was edited; compile it again")]
    HashMismatch {
        /// The file.
        file: String,
        /// The manifest's SHA-256.
        expected: String,
        /// The file's.
        found: String,
    },
    /// The kernel IR does not parse or verify.
    #[error("chunk.kir: {0}")]
    Kernel(String),
    /// The files disagree with the manifest's layout.
    #[error("inconsistent artifact: {0}")]
    Layout(String),
    /// The problem uses a feature artifacts do not carry yet.
    #[error("cannot make an artifact: {0}; sample it in-process with `solve` instead")]
    Unsupported(String),
}

impl ArtifactError {
    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> ArtifactError {
        ArtifactError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
