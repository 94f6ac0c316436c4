//! Where the document goes: stdout (with print's newline, as the original),
//! a file (written atomically), or a Swift container (created when missing),
//! read back and compared after upload.

use std::path::Path;

use openstack::Session;
use openstack::swift::ObjectStore;

/// The bytes published: the document plus the newline `print` adds.
pub fn payload(rendered: &str) -> Vec<u8> {
    let mut v = rendered.as_bytes().to_vec();
    v.push(b'\n');
    v
}

/// Writes `data` to `path` through a temporary file in the same directory.
pub fn to_file(path: &Path, data: &[u8]) -> Result<(), String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "info".into())
    ));
    std::fs::write(&tmp, data).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), path.display()))
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
pub async fn to_swift(session: &Session, container: &str, object: &str, data: &[u8]) -> Result<Uploaded, String> {
    let store = ObjectStore::new(session).await.map_err(|e| e.to_string())?;
    let created = store.create_container(container).await.map_err(|e| e.to_string())?;
    let etag = store
        .put_object(container, object, data.to_vec(), "application/json")
        .await
        .map_err(|e| e.to_string())?;
    let back = store.get_object(container, object).await.map_err(|e| e.to_string())?;
    if back.data != data {
        return Err(format!(
            "{container}/{object}: read back {} bytes that differ from the {} written",
            back.data.len(),
            data.len()
        ));
    }
    Ok(Uploaded { url: format!("{}/{container}/{object}", store.account_url), etag, container_created: created })
}
