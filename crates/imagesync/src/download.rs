//! The local cache keyed by digest and the resumable download into it:
//! `<cache>/blobs/<algo>/<hex>` (verified originals), `<cache>/partial/`
//! (interrupted downloads, resumed with `Range`), `<cache>/converted/<algo>-<hex>.<fmt>`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::AsyncWriteExt;

use crate::error::SyncError;

/// A content digest: algorithm and lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentDigest {
    /// `sha256` or `sha512`.
    pub algo: String,
    pub hex: String,
}

impl ContentDigest {
    /// Parses `sha256:<64 hex>` / `sha512:<128 hex>`.
    pub fn parse(s: &str) -> Option<ContentDigest> {
        let (algo, hex) = s.split_once(':')?;
        let want = match algo {
            "sha256" => 64,
            "sha512" => 128,
            _ => return None,
        };
        let hex = hex.to_ascii_lowercase();
        (hex.len() == want && hex.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| ContentDigest { algo: algo.into(), hex })
    }
    pub fn sha512(hex: &str) -> Option<ContentDigest> {
        ContentDigest::parse(&format!("sha512:{hex}"))
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algo, self.hex)
    }
}

/// Hex digest of a file with `algo`.
pub fn file_digest(path: &Path, algo: &str) -> Result<String, SyncError> {
    let mut f = std::fs::File::open(path).map_err(|e| SyncError::io(format!("reading {}", path.display()), e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut s256 = Sha256::new();
    let mut s512 = Sha512::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| SyncError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        match algo {
            "sha256" => s256.update(&buf[..n]),
            _ => s512.update(&buf[..n]),
        }
    }
    Ok(match algo {
        "sha256" => hex::encode(s256.finalize()),
        _ => hex::encode(s512.finalize()),
    })
}

/// The cache directory layout.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }
    pub fn blob(&self, d: &ContentDigest) -> PathBuf {
        self.root.join("blobs").join(&d.algo).join(&d.hex)
    }
    fn partial(&self, d: &ContentDigest) -> PathBuf {
        self.root.join("partial").join(format!("{}-{}", d.algo, d.hex))
    }
    pub fn converted(&self, d: &ContentDigest, format: &str) -> PathBuf {
        self.root.join("converted").join(format!("{}-{}.{format}", d.algo, d.hex))
    }
}

/// Download statistics of one fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes transferred over the network.
    pub bytes: u64,
    /// Whether the file came from the cache without a transfer.
    pub cached: bool,
    /// Whether an interrupted download was resumed.
    pub resumed: bool,
}

/// Returns the cached, verified file for `digest`, downloading `url` (or
/// resuming an interrupted download) when it is not cached yet. The size and
/// digest are verified before the file enters the cache; a mismatch deletes
/// the download.
pub async fn fetch(
    http: &reqwest::Client,
    cache: &Cache,
    url: &str,
    authorization: Option<&str>,
    digest: &ContentDigest,
    size: Option<u64>,
    progress: bool,
    label: &str,
) -> Result<(PathBuf, Fetched), SyncError> {
    let dest = cache.blob(digest);
    if dest.exists() {
        // Re-verify (a cache file can rot); a bad one is fetched again.
        if file_digest(&dest, &digest.algo)? == digest.hex {
            return Ok((dest, Fetched { cached: true, ..Default::default() }));
        }
        let _ = std::fs::remove_file(&dest);
    }
    let part = cache.partial(digest);
    for dir in [dest.parent(), part.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(|e| SyncError::io(format!("creating {}", dir.display()), e))?;
    }
    let dl_err = |m: String| SyncError::Download { url: url.to_string(), message: m };
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut req = http.get(url);
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let resume = have > 0 && size.is_none_or(|s| have < s);
    if resume {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().await.map_err(|e| dl_err(chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(SyncError::DownloadStatus { url: url.to_string(), status: status.as_u16() });
    }
    let resumed = resume && status.as_u16() == 206;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .await
        .map_err(|e| SyncError::io(format!("opening {}", part.display()), e))?;
    let start = if resumed { have } else { 0 };
    let bar = progress_bar(progress, size, start, label);
    let mut bytes = 0u64;
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| dl_err(format!("after {} bytes: {}", start + bytes, chain(&e))))?
    {
        file.write_all(&chunk).await.map_err(|e| SyncError::io(format!("writing {}", part.display()), e))?;
        bytes += chunk.len() as u64;
        bar.set_position(start + bytes);
        if let Some(s) = size
            && start + bytes > s
        {
            break;
        }
    }
    file.flush().await.map_err(|e| SyncError::io(format!("writing {}", part.display()), e))?;
    drop(file);
    bar.finish_and_clear();
    let got = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if let Some(s) = size
        && got != s
    {
        if got > s {
            let _ = std::fs::remove_file(&part);
        }
        return Err(SyncError::Size { what: label.to_string(), expected: s, actual: got });
    }
    let actual = file_digest(&part, &digest.algo)?;
    if actual != digest.hex {
        let _ = std::fs::remove_file(&part);
        return Err(SyncError::Checksum {
            what: label.to_string(),
            expected: digest.to_string(),
            actual: format!("{}:{actual}", digest.algo),
        });
    }
    std::fs::rename(&part, &dest).map_err(|e| SyncError::io(format!("moving {} into the cache", part.display()), e))?;
    Ok((dest, Fetched { bytes, cached: false, resumed }))
}

fn progress_bar(enabled: bool, size: Option<u64>, pos: u64, label: &str) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match size {
        Some(s) => indicatif::ProgressBar::new(s),
        None => indicatif::ProgressBar::no_length(),
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar.set_position(pos);
    bar
}

pub(crate) use openstack::error::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let d = ContentDigest::parse(&format!("sha256:{}", "AB".repeat(32))).unwrap();
        assert_eq!(d.hex, "ab".repeat(32));
        assert!(ContentDigest::parse("sha256:abc").is_none());
        assert!(ContentDigest::parse(&format!("md5:{}", "a".repeat(32))).is_none());
        assert!(ContentDigest::parse(&format!("sha512:{}", "g".repeat(128))).is_none());
    }
}
