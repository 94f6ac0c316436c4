//! `Secret`: a string (password, application-credential secret, token) that
//! never shows in `Debug`/`Display` output, logs or error messages.

use std::fmt;

/// A secret string. `Debug` and `Display` print `***`; use [`Secret::expose`]
/// only where the value must go on the wire.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Refuses a file holding secrets (a clouds.yaml with a password, a
/// caso.conf, a private key) that its group or others may read, as ssh
/// does: `Err` names the file, its mode and the fix.
pub fn check_private_file(path: &std::path::Path) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|source| PrivateFileError::Unreadable { path: path.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o044 != 0 {
        return Err(PrivateFileError::Readable { path: path.to_owned(), mode });
    }
    Ok(())
}

/// Why [`check_private_file`] refuses a file.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} holds secrets but is readable by its group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Readable { path: std::path::PathBuf, mode: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_or_world_access_is_refused_and_0600_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clouds.yaml");
        std::fs::write(&p, "x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o620, true),
            (0o644, false),
            (0o660, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = check_private_file(&p);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
            if let Err(e) = r.map_err(|e| e.to_string()) {
                assert!(e.contains(&format!("mode {mode:04o}")) && e.contains("chmod 600"), "{e}");
            }
        }
    }
}
