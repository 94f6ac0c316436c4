//! python dirq's `Queue` layout (directory elements), as ssmreceive writes `incoming/` and
//! `reject/`: the receiver's queue sink.

use std::path::{Path, PathBuf};

use rand::Rng as _;

/// python dirq's `dirq.queue.Queue` with a string schema, as ssmreceive uses it: intermediate
/// directories are counters `%08x` (a new one once the last holds `maxelts` elements), each
/// element is a directory named like a QueueSimple element holding one file per key; elements
/// are built in `temporary/` and renamed into place (fsync'ed before the rename).
#[derive(Debug, Clone)]
pub struct DirQueue {
    path: PathBuf,
    rndhex: u8,
    pub maxelts: usize,
}

impl DirQueue {
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<DirQueue> {
        let path = path.into();
        for d in ["temporary", "obsolete"] {
            std::fs::create_dir_all(path.join(d))?;
        }
        Ok(DirQueue { path, rndhex: rand::rng().random_range(0..16), maxelts: 16000 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn new_name(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:08x}{:05x}{:01x}", now.as_secs(), now.subsec_micros(), self.rndhex)
    }

    fn insertion_dir(&self) -> std::io::Result<String> {
        let mut dirs: Vec<String> = std::fs::read_dir(&self.path)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::dirq::is_dir_name(n))
            .collect();
        dirs.sort();
        let name = match dirs.last() {
            None => format!("{:08x}", 0),
            Some(last) => {
                let n = std::fs::read_dir(self.path.join(last)).map(|rd| rd.count()).unwrap_or(0);
                if n > 0 && n < self.maxelts {
                    last.clone()
                } else {
                    format!("{:08x}", u32::from_str_radix(last, 16).unwrap_or(0) + 1)
                }
            }
        };
        std::fs::create_dir_all(self.path.join(&name))?;
        Ok(name)
    }

    /// Adds an element (`key → content` files); returns `<dir>/<element>`.
    pub fn add(&self, fields: &[(&str, &[u8])]) -> std::io::Result<String> {
        for (k, _) in fields {
            check_field_key(k)?;
        }
        let temp = loop {
            let t = self.path.join("temporary").join(self.new_name());
            match std::fs::create_dir(&t) {
                Ok(()) => break t,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        for (k, v) in fields {
            let mut f = std::fs::File::create(temp.join(k))?;
            std::io::Write::write_all(&mut f, v)?;
            f.sync_all()?;
        }
        std::fs::File::open(&temp)?.sync_all()?;
        loop {
            let dir = self.insertion_dir()?;
            let name = format!("{dir}/{}", self.new_name());
            let dest = self.path.join(&name);
            match std::fs::rename(&temp, &dest) {
                Ok(()) => {
                    std::fs::File::open(self.path.join(&dir))?.sync_all()?;
                    return Ok(name);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Element names, in order.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.path) else { return out };
        let mut dirs: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::dirq::is_dir_name(n))
            .collect();
        dirs.sort();
        for d in dirs {
            let mut els: Vec<String> = std::fs::read_dir(self.path.join(&d))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| crate::dirq::is_element_file_name(n))
                .collect();
            els.sort();
            out.extend(els.into_iter().map(|e| format!("{d}/{e}")));
        }
        out
    }

    /// One field of an element. `name` must be an element name (`<8 hex>/<14 hex>`) and `key`
    /// a field name (lowercase letters), so no argument can reach outside the queue.
    pub fn field(&self, name: &str, key: &str) -> std::io::Result<Vec<u8>> {
        crate::dirq::ElementName::parse(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        check_field_key(key)?;
        std::fs::read(self.path.join(name).join(key))
    }
}

/// A field file name of a dirq `Queue` element: lowercase ASCII letters only.
fn check_field_key(key: &str) -> std::io::Result<()> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid dirq field name {key:?}")));
    }
    Ok(())
}
