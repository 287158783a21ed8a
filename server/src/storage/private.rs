//! The data directory is its owner's alone: customers' dumps, partial uploads, symbol files and
//! the database are nobody else's on a shared machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    #[error("cannot create data directory {0}: {1}")]
    Create(String, std::io::Error),
    #[error("cannot make data directory {0} private (chmod 700): {1}")]
    Restrict(String, std::io::Error),
}

/// Creates `dir` if needed and makes it private: every file and folder this process creates
/// from now on is its user's only (umask 077, set before the first one), and the directory
/// itself is 0700 whatever an older version or an operator's `mkdir` left, so files inside it
/// made with looser modes are out of other users' reach too.
pub fn create_data_dir(dir: &Path) -> Result<(), PrivateError> {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let shown = || dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| PrivateError::Create(shown(), e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| PrivateError::Restrict(shown(), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700 | 0o700))
            .map_err(|e| PrivateError::Restrict(shown(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_data_directory_is_closed_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_data_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let f = dir.join("new");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o077,
            0
        );
    }
}
