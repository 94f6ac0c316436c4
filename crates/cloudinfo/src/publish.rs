//! Where the document goes: stdout (with print's newline, as the original),
//! a file (written atomically), or a Swift container (created when missing),
//! read back and compared after upload.

use std::path::{Path, PathBuf};

use openstack::Session;
use openstack::swift::ObjectStore;

/// The bytes published: the document plus the newline `print` adds.
pub fn payload(rendered: &str) -> Vec<u8> {
    let mut v = rendered.as_bytes().to_vec();
    v.push(b'\n');
    v
}

/// Writes `data` to `path` through a temporary file in the same directory.
pub fn to_file(path: &Path, data: &[u8]) -> Result<(), PublishError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "info".into())
    ));
    std::fs::write(&tmp, data).map_err(|source| PublishError::Write { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| PublishError::Rename { from: tmp, to: path.to_owned(), source })
}

/// Why the document was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("renaming {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Swift request failed (boxed: `openstack::Error` is large).
    #[error("{0}")]
    Swift(#[source] Box<openstack::Error>),
    #[error("{container}/{object}: read back {read} bytes that differ from the {written} written")]
    ReadBackDiffers { container: String, object: String, read: usize, written: usize },
}

impl From<openstack::Error> for PublishError {
    fn from(e: openstack::Error) -> Self {
        PublishError::Swift(Box::new(e))
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub url: String,
    pub etag: String,
    pub container_created: bool,
}

/// PUTs `data` as `container/object` in the session project's account
/// (creating the container), then reads it back and checks it is the same.
pub async fn to_swift(session: &Session, container: &str, object: &str, data: &[u8]) -> Result<Uploaded, PublishError> {
    let store = ObjectStore::new(session).await?;
    let created = store.create_container(container).await?;
    let etag = store.put_object(container, object, data.to_vec(), "application/json").await?;
    let back = store.get_object(container, object).await?;
    if back.data != data {
        return Err(PublishError::ReadBackDiffers {
            container: container.to_string(),
            object: object.to_string(),
            read: back.data.len(),
            written: data.len(),
        });
    }
    Ok(Uploaded { url: format!("{}/{container}/{object}", store.account_url), etag, container_created: created })
}
