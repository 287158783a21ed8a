//! Why a dump could not be opened. Every message is one line that names the problem, because
//! the CLI prints it as-is (exit code 2) and a customer forwards it to us verbatim.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DumpError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("empty file: not a kernel dump")]
    Empty,
    /// A structure runs past the end of the file.
    #[error("truncated: {what} needs {need:#x} bytes, file has {have:#x}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    /// The file is something else (user-mode minidump, random bytes, ...).
    #[error("not a kernel dump: {0}")]
    NotKernelDump(String),
    /// A valid dump whose type or architecture we do not handle (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A structure is present but its contents contradict themselves or the file.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl DumpError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        DumpError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
