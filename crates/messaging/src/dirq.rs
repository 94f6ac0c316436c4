//! dirq `QueueSimple`: a hand-written port (no Rust crate implements it) of python
//! `dirq` 1.8 `QueueSimple`, the spool cASO writes and APEL `ssmsend` drains. Owns the
//! exact on-disk layout, element names, lock/unlock/remove and purge (python-dirq `dirq/QueueSimple.py`).
//!
//! Layout, as python writes it:
//! ```text
//! <path>/XXXXXXXX/                 "%08x" of unix seconds rounded down to the granularity (60)
//! <path>/XXXXXXXX/SSSSSSSSMMMMMR   element: "%08x%05x%01x" seconds, microseconds, random digit
//! <path>/XXXXXXXX/<elt>.tmp        being written (O_EXCL), then hard-linked to a fresh name
//! <path>/XXXXXXXX/<elt>.lck        lock = hard link to the element
//! ```
//! Every race with a concurrent python process (ENOENT, EEXIST) is handled as python does;
//! where python crashes or loops on a race or an error, this port does the safe thing
//! instead (listed on [`QueueSimple`]).

use std::collections::hash_map::RandomState;
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind, Write};
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Suffix of an element being written.
pub const TEMPORARY_SUFFIX: &str = ".tmp";
/// Suffix of the hard link that locks an element.
pub const LOCKED_SUFFIX: &str = ".lck";
/// dirq's default directory granularity, seconds.
pub const DEFAULT_GRANULARITY: u64 = 60;
/// dirq's default `purge` maximum age of a `.tmp` file.
pub const DEFAULT_MAXTEMP: Duration = Duration::from_secs(300);
/// dirq's default `purge` maximum age of a `.lck` lock.
pub const DEFAULT_MAXLOCK: Duration = Duration::from_secs(600);
/// Give up after this many consecutive name collisions / vanished directories
/// (python dirq retries forever).
const MAX_ATTEMPTS: usize = 100_000;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A dirq failure, naming the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid dirq element name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("dirq: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dirq: cannot link {} to {}: {source}", from.display(), to.display())]
    Link {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The underlying I/O error kind, if this is an I/O failure.
    pub fn io_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Io { source, .. } | Error::Link { source, .. } => Some(source.kind()),
            Error::InvalidName { .. } => None,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An intermediate directory name: `^[0-9a-f]{8}$`.
pub fn is_dir_name(s: &str) -> bool {
    is_hex(s, 8)
}

/// An element file name: `^[0-9a-f]{14}$` (no `.tmp` / `.lck`).
pub fn is_element_file_name(s: &str) -> bool {
    is_hex(s, 14)
}

/// A `.tmp` or `.lck` file dirq itself creates: 14 hex digits and the suffix.
fn volatile_kind(s: &str) -> Option<&'static str> {
    [TEMPORARY_SUFFIX, LOCKED_SUFFIX].into_iter().find(|suf| s.strip_suffix(suf).is_some_and(is_element_file_name))
}

/// A validated element name `"<8 hex>/<14 hex>"` (python's `_DIRELT_REGEXP`), e.g.
/// `6b0bf3a4/6b0bf3de56c97b`; it can never name anything outside the queue directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementName(String);

impl ElementName {
    pub fn parse(name: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidName { name: name.to_string(), reason };
        let (dir, file) = name.split_once('/').ok_or_else(|| bad("expected <8 hex>/<14 hex>"))?;
        if !is_dir_name(dir) {
            return Err(bad("directory part is not 8 lowercase hex digits"));
        }
        if !is_element_file_name(file) {
            return Err(bad("element part is not 14 lowercase hex digits"));
        }
        Ok(ElementName(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The intermediate directory, `XXXXXXXX`.
    pub fn dir(&self) -> &str {
        &self.0[..8]
    }
    /// The element file name, `SSSSSSSSMMMMMR`.
    pub fn file(&self) -> &str {
        &self.0[9..]
    }
}

impl Deref for ElementName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
impl AsRef<str> for ElementName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for ElementName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl FromStr for ElementName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
impl TryFrom<&str> for ElementName {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
impl TryFrom<String> for ElementName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}
impl From<ElementName> for String {
    fn from(n: ElementName) -> String {
        n.0
    }
}
impl PartialEq<str> for ElementName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}
impl PartialEq<&str> for ElementName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Constructor options, as python's `QueueSimple(path, umask, rndhex, granularity)`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Permissions become exactly `0o666 & !umask` (files) / `0o777 & !umask` (dirs);
    /// `None` (default) leaves them to the process umask, like python.
    pub umask: Option<u32>,
    /// The last hex digit of every name (taken mod 16); `None` = random per queue object.
    pub rndhex: Option<u8>,
    /// Seconds per intermediate directory; `<= 1` means one directory per second.
    pub granularity: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { umask: None, rndhex: None, granularity: DEFAULT_GRANULARITY }
    }
}

/// What [`QueueSimple::purge`] did (python only prints warnings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Stale `.tmp` files removed, as `<dir>/<file>`.
    pub removed_temp: Vec<String>,
    /// Stale `.lck` links removed (elements unlocked), as `<dir>/<file>`.
    pub unlocked: Vec<String>,
    /// Empty intermediate directories removed.
    pub removed_dirs: Vec<String>,
}

/// A dirq `QueueSimple` at a directory. Same layout and semantics as python dirq 1.8;
/// safe beside concurrent python producers/consumers. Deliberate differences, all on
/// paths where python raises, loops or leaks:
/// - a `.tmp` is fsync'ed before it is linked, the directory after (python does neither);
///   a failed write unlinks its `.tmp` (python leaves it for `purge`);
/// - an intermediate directory vanishing (concurrent `purge`) while listing it, or a file
///   named like one, is skipped (python raises ENOENT / ENOTDIR); `purge` skips a directory
///   that is no longer empty when it removes it (python raises ENOTEMPTY); `add` ignores its
///   `.tmp` vanishing after the link; `lock` ignores its `.lck` vanishing while undoing it;
/// - `add` gives up after 100 000 collisions and reports other errors (python loops forever
///   on e.g. EACCES when creating the `.tmp`);
/// - `purge` only considers `<14 hex>.tmp|.lck` (python also deletes any old file whose name
///   ends in `.tmp`/`.lck`, and, through a regex bug, any file ending in `?tmp`/`?lck`);
/// - a missing queue directory lists as empty for `iter`/`count`/`purge` (python: only `iter`);
/// - with `umask` set, modes are fixed by chmod after create instead of swapping the
///   process-wide umask (same resulting modes, thread safe).
#[derive(Clone, Debug)]
pub struct QueueSimple {
    path: PathBuf,
    umask: Option<u32>,
    rndhex: u8,
    granularity: u64,
}

fn now_since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// python `_name(rndhex)`: `"%08x%05x%01x" % (secs, micros, rndhex)`.
fn new_name(rndhex: u8) -> String {
    let now = now_since_epoch();
    format!("{:08x}{:05x}{:01x}", now.as_secs(), now.subsec_micros(), rndhex)
}

/// python `os.utime(path, None)`: atime and mtime to now (needs write access, not ownership).
fn touch_now(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string; a null `times` means "now" for both.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Entries of a directory; `Ok(None)` when it does not exist (anymore) or is not a directory.
fn list(path: &Path) -> Result<Option<Vec<String>>> {
    let rd = match fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(e) => return Err(io_err("list directory", path)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        match entry {
            Ok(e) => {
                if let Some(n) = e.file_name().to_str() {
                    out.push(n.to_string());
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("list directory", path)(e)),
        }
    }
    Ok(Some(out))
}

impl QueueSimple {
    /// Opens (creating it and its parents, like python) the queue at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Self> {
        let rndhex = match opts.rndhex {
            Some(r) => r % 16,
            None => (RandomState::new().build_hasher().finish() % 16) as u8,
        };
        let q =
            QueueSimple { path: path.as_ref().to_path_buf(), umask: opts.umask, rndhex, granularity: opts.granularity };
        q.special_mkdir(&q.path)?;
        Ok(q)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hex digit ending every name this queue object generates.
    pub fn rndhex(&self) -> u8 {
        self.rndhex
    }

    /// python `_special_mkdir`: `mkdir -p`; an existing directory is fine. `Ok(true)` if created.
    fn special_mkdir(&self, path: &Path) -> Result<bool> {
        let mut b = fs::DirBuilder::new();
        if let Some(m) = self.umask {
            b.mode(0o777 & !m);
        }
        match b.create(path) {
            Ok(()) => {
                self.fix_mode(path, 0o777)?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound && path.parent().is_some() => {
                self.special_mkdir(path.parent().unwrap_or(path))?;
                match b.create(path) {
                    Ok(()) => self.fix_mode(path, 0o777).map(|_| true),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
                    Err(e) => Err(io_err("mkdir", path)(e)),
                }
            }
            Err(e) => Err(io_err("mkdir", path)(e)),
        }
    }

    /// With an explicit umask, make the permission bits exactly `base & !umask`.
    fn fix_mode(&self, path: &Path, base: u32) -> Result<()> {
        let Some(m) = self.umask else { return Ok(()) };
        let meta = fs::metadata(path).map_err(io_err("stat", path))?;
        let mode = (meta.permissions().mode() & !0o777) | (base & !m);
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
    }

    /// python `_add_dir`: `"%08x"` of now rounded down to the granularity.
    fn add_dir(&self) -> String {
        let mut now = now_since_epoch().as_secs();
        if self.granularity > 1 {
            now -= now % self.granularity;
        }
        format!("{now:08x}")
    }

    /// Adds `data` as a new element; returns its name `"<dir>/<file>"`.
    pub fn add(&self, data: &[u8]) -> Result<ElementName> {
        let dir = self.add_dir();
        let dir_path = self.path.join(&dir);
        let (mut file, tmp) = self.create_tmp(&dir_path)?;
        let written = file.write_all(data).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", &tmp)(e));
        }
        let name = self.link_fresh(&tmp, &dir, &dir_path)?;
        match fs::remove_file(&tmp) {
            // The element is in place; a vanished .tmp (purged by a skewed clock) is harmless.
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err("unlink", &tmp)(e)),
            _ => {}
        }
        // Durability of the new link: a failure is an error (the caller must not count the
        // element as safely spooled; it is visible, and a rerun adopts or supersedes it).
        File::open(&dir_path).and_then(|d| d.sync_all()).map_err(io_err("fsync the directory", &dir_path))?;
        Ok(name)
    }

    /// Puts `data` back under its own name `name` (a requeued element: the ledger knows it by
    /// that name, and its time keeps its place in the order): written to a fresh `.tmp`,
    /// fsync'ed, hard-linked into place. `Ok(false)` (nothing written) when an element of
    /// that name is already there.
    pub fn restore(&self, name: &ElementName, data: &[u8]) -> Result<bool> {
        let dir_path = self.path.join(name.dir());
        if dir_path.join(name.file()).exists() {
            return Ok(false);
        }
        let (mut file, tmp) = self.create_tmp(&dir_path)?;
        let written = file.write_all(data).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", &tmp)(e));
        }
        let to = dir_path.join(name.file());
        let linked = fs::hard_link(&tmp, &to);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                File::open(&dir_path).and_then(|d| d.sync_all()).map_err(io_err("fsync the directory", &dir_path))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::Link { from: tmp, to, source: e }),
        }
    }

    /// python `_add_data`: `<dir>/<name>.tmp` with O_EXCL, mode 0666; the directory is
    /// (re)created on ENOENT, a fresh name is tried on EEXIST.
    fn create_tmp(&self, dir_path: &Path) -> Result<(File, PathBuf)> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let tmp = dir_path.join(format!("{}{TEMPORARY_SUFFIX}", new_name(self.rndhex)));
            let mut o = OpenOptions::new();
            o.write(true).create_new(true).mode(0o666 & !self.umask.unwrap_or(0));
            match o.open(&tmp) {
                Ok(f) => {
                    self.fix_mode(&tmp, 0o666)?;
                    return Ok((f, tmp));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.special_mkdir(dir_path)?;
                    last = Some((tmp, e));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some((tmp, e)),
                Err(e) => return Err(io_err("create", &tmp)(e)),
            }
        }
        let (tmp, e) = last.expect("MAX_ATTEMPTS > 0");
        Err(io_err("create (gave up retrying)", &tmp)(e))
    }

    /// python `_add_path`: hard-link `tmp` to a freshly generated name, retrying on EEXIST.
    fn link_fresh(&self, tmp: &Path, dir: &str, dir_path: &Path) -> Result<ElementName> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let file = new_name(self.rndhex);
            let new = dir_path.join(&file);
            match fs::hard_link(tmp, &new) {
                Ok(()) => return ElementName::parse(&format!("{dir}/{file}")),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some((new, e)),
                Err(e) => {
                    return Err(Error::Link { from: tmp.into(), to: new, source: e });
                }
            }
        }
        let (to, source) = last.expect("MAX_ATTEMPTS > 0");
        Err(Error::Link { from: tmp.into(), to, source })
    }

    /// Sorted intermediate directory names.
    fn dirs(&self) -> Result<Vec<String>> {
        let mut dirs: Vec<String> =
            list(&self.path)?.unwrap_or_default().into_iter().filter(|n| is_dir_name(n)).collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Sorted element names of one directory (none if it vanished).
    fn elements_of(&self, dir: &str) -> Result<Vec<ElementName>> {
        let mut files: Vec<String> =
            list(&self.path.join(dir))?.unwrap_or_default().into_iter().filter(|n| is_element_file_name(n)).collect();
        files.sort();
        Ok(files.into_iter().map(|f| ElementName(format!("{dir}/{f}"))).collect())
    }

    /// Lazy iteration in python's order: directories listed (sorted) at the start, each
    /// directory's elements listed (sorted) when reached; `.tmp`, `.lck` and foreign names
    /// are skipped. Locked elements are included (call `lock` to claim one).
    pub fn names(&self) -> Result<Names<'_>> {
        Ok(Names { queue: self, dirs: self.dirs()?.into(), current: Default::default() })
    }

    /// All element names, in queue order.
    pub fn iter(&self) -> Result<Vec<ElementName>> {
        self.names()?.collect()
    }

    /// Number of elements, locked or not (not temporary).
    pub fn count(&self) -> Result<usize> {
        let mut n = 0;
        for d in self.dirs()? {
            let entries = list(&self.path.join(&d))?.unwrap_or_default();
            n += entries.iter().filter(|e| is_element_file_name(e)).count();
        }
        Ok(n)
    }

    fn paths(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let name = ElementName::parse(name)?;
        let path = self.path.join(name.as_str());
        let lock = self.path.join(format!("{name}{LOCKED_SUFFIX}"));
        Ok((path, lock))
    }

    /// Locks an element: hard link `<name>.lck`, then touch the element. `Ok(false)` when it
    /// is already locked or gone and `permissive` (python's default is `true`).
    pub fn lock(&self, name: &str, permissive: bool) -> Result<bool> {
        let (path, lock) = self.paths(name)?;
        if let Err(e) = fs::hard_link(&path, &lock) {
            if permissive && matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) {
                return Ok(false);
            }
            return Err(Error::Link { from: path, to: lock, source: e });
        }
        match touch_now(&path) {
            Ok(()) => Ok(true),
            // RACE: another process locked and removed the element while we linked.
            Err(e) if permissive && e.kind() == ErrorKind::NotFound => match fs::remove_file(&lock) {
                Ok(()) => Ok(false),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err("unlink", &lock)(e)),
            },
            Err(e) => Err(io_err("utime", &path)(e)),
        }
    }

    /// Unlocks an element (unlink `<name>.lck`). `Ok(false)` when it was not locked and
    /// `permissive` (python's default is `false`).
    pub fn unlock(&self, name: &str, permissive: bool) -> Result<bool> {
        let (_, lock) = self.paths(name)?;
        match fs::remove_file(&lock) {
            Ok(()) => Ok(true),
            Err(e) if permissive && e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("unlink", &lock)(e)),
        }
    }

    /// The bytes of a locked element (read through its `.lck`, like python).
    pub fn get(&self, name: &str) -> Result<Vec<u8>> {
        let lock = self.get_path(name)?;
        fs::read(&lock).map_err(io_err("read", &lock))
    }

    /// Path of a locked element's data (`<path>/<name>.lck`).
    pub fn get_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.paths(name)?.1)
    }

    /// Removes a locked element: unlink the element, then its lock.
    pub fn remove(&self, name: &str) -> Result<()> {
        let (path, lock) = self.paths(name)?;
        fs::remove_file(&path).map_err(io_err("unlink", &path))?;
        fs::remove_file(&lock).map_err(io_err("unlink", &lock))
    }

    /// Touches an element (mtime = now) to show it is still in use.
    pub fn touch(&self, name: &str) -> Result<()> {
        let (path, _) = self.paths(name)?;
        touch_now(&path).map_err(io_err("utime", &path))
    }

    /// python `purge(maxtemp, maxlock)`: removes `.tmp` files older than `maxtemp`, removes
    /// `.lck` links (unlocks) older than `maxlock` (a zero duration disables either), then
    /// removes every empty intermediate directory but the newest.
    pub fn purge(&self, maxtemp: Duration, maxlock: Duration) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        let dirs = self.dirs()?;
        let now = SystemTime::now();
        let oldtemp = (!maxtemp.is_zero()).then(|| now - maxtemp);
        let oldlock = (!maxlock.is_zero()).then(|| now - maxlock);
        if oldtemp.is_some() || oldlock.is_some() {
            for d in &dirs {
                let dir_path = self.path.join(d);
                for old in list(&dir_path)?.unwrap_or_default() {
                    let Some(kind) = volatile_kind(&old) else {
                        continue;
                    };
                    let Some(limit) = (if kind == TEMPORARY_SUFFIX { oldtemp } else { oldlock }) else {
                        continue;
                    };
                    let p = dir_path.join(&old);
                    let mtime = match fs::metadata(&p).and_then(|m| m.modified()) {
                        Ok(t) => t,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err("stat", &p)(e)),
                    };
                    if mtime >= limit {
                        continue;
                    }
                    match fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err("unlink", &p)(e)),
                    }
                    let entry = format!("{d}/{old}");
                    if kind == TEMPORARY_SUFFIX { report.removed_temp.push(entry) } else { report.unlocked.push(entry) }
                }
            }
        }
        if let Some((_newest, older)) = dirs.split_last() {
            for d in older {
                let p = self.path.join(d);
                if list(&p)?.is_none_or(|e| !e.is_empty()) {
                    continue;
                }
                match fs::remove_dir(&p) {
                    Ok(()) => report.removed_dirs.push(d.clone()),
                    // RACE: gone already, or an element was added since we listed it.
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty)
                            || e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(io_err("rmdir", &p)(e)),
                }
            }
        }
        Ok(report)
    }

    /// `purge` with dirq's defaults (300 s, 600 s), as `ssmsend` calls it.
    pub fn purge_default(&self) -> Result<PurgeReport> {
        self.purge(DEFAULT_MAXTEMP, DEFAULT_MAXLOCK)
    }
}

/// Iterator of [`QueueSimple::names`].
pub struct Names<'q> {
    queue: &'q QueueSimple,
    dirs: std::collections::VecDeque<String>,
    current: std::collections::VecDeque<ElementName>,
}

impl Iterator for Names<'_> {
    type Item = Result<ElementName>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(n) = self.current.pop_front() {
                return Some(Ok(n));
            }
            let dir = self.dirs.pop_front()?;
            match self.queue.elements_of(&dir) {
                Ok(elts) => self.current = elts.into(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
