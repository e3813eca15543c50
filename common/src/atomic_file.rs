//! Writing a file so that a reader (or a watcher reloading it) never sees
//! half of it, with the permissions it was meant to have from its first
//! byte: certificates, keys, credentials.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `bytes` to `path` through a fresh temporary file created with
/// `mode` (so a secret is never readable by others, even briefly), synced,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    // A leftover temporary file could carry other permissions.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn replaces_the_file_with_the_given_mode_even_over_a_stale_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        std::fs::write(path.with_extension("tmp"), "stale").expect("stale tmp");
        std::fs::write(&path, "old").expect("old file");
        write_atomic(&path, b"new", 0o600).expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists());
    }
}
