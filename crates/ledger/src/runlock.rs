//! Run locks: one run of a kind at a time on one ledger, spool or store, so that two cron
//! runs overlapping never spool the same records twice or send from one spool at once.
//!
//! A file or directory is locked with an exclusive `flock` on a lock file (std's
//! `File::try_lock`), which the kernel releases when the process ends, however it ends; the
//! file holds the holder's pid and start time for the message a second run prints. A
//! PostgreSQL ledger is locked with a session advisory lock keyed by the ledger's identity
//! (database and schema) and the run kind, released when the ledger's connection closes
//! (`PgStore::try_run_lock`). A second run waits up to the given time, polling, then fails
//! with [`LockError::Busy`].

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Poll interval while waiting for a lock.
const POLL: Duration = Duration::from_millis(200);

/// Why a run lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it (after waiting `waited`).
    #[error(
        "{what} is in use by another fedsite run{holder} (waited {}s); it ends on its own: run \
         again later, or give --wait SECONDS to wait for it",
        waited.as_secs()
    )]
    Busy {
        what: String,
        /// `" (pid 123, since …)"` when the holder wrote it, else empty.
        holder: String,
        waited: Duration,
    },
    #[error("lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] crate::Error),
}

/// A held run lock; released when dropped (or, for PostgreSQL, when the ledger closes).
#[derive(Debug)]
pub struct RunLock {
    _file: Option<File>,
    what: String,
}

impl RunLock {
    /// What is locked (a path, or the PostgreSQL ledger and run kind).
    pub fn what(&self) -> &str {
        &self.what
    }

    pub(crate) fn session(what: String) -> RunLock {
        RunLock { _file: None, what }
    }
}

/// Takes the exclusive lock on `path` (created 0600 if missing; its directory must exist),
/// waiting up to `wait`. `what` names the locked thing in messages.
pub fn lock_file(path: &Path, what: &str, wait: Duration) -> Result<RunLock, LockError> {
    let started = Instant::now();
    loop {
        match try_lock_file(path, what)? {
            Some(l) => return Ok(l),
            None if started.elapsed() >= wait => {
                return Err(LockError::Busy { what: what.to_owned(), holder: holder(path), waited: started.elapsed() });
            }
            None => std::thread::sleep(POLL.min(wait.saturating_sub(started.elapsed()))),
        }
    }
}

/// Waits up to `wait` for `try_lock` to give the lock (PostgreSQL's advisory lock).
pub(crate) fn poll(
    what: &str,
    wait: Duration,
    mut try_lock: impl FnMut() -> crate::Result<bool>,
) -> Result<RunLock, LockError> {
    let started = Instant::now();
    loop {
        if try_lock()? {
            return Ok(RunLock::session(what.to_owned()));
        }
        if started.elapsed() >= wait {
            return Err(LockError::Busy { what: what.to_owned(), holder: String::new(), waited: started.elapsed() });
        }
        std::thread::sleep(POLL.min(wait.saturating_sub(started.elapsed())));
    }
}

fn try_lock_file(path: &Path, what: &str) -> Result<Option<RunLock>, LockError> {
    let io = |source| LockError::Io { path: path.to_owned(), source };
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let note = format!("pid {}, since {}\n", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(note.as_bytes())).map_err(io)?;
    Ok(Some(RunLock { _file: Some(file), what: what.to_owned() }))
}

/// `" (pid 123, since …)"` from the lock file, or "".
fn holder(path: &Path) -> String {
    let mut s = String::new();
    if File::open(path).and_then(|mut f| f.read_to_string(&mut s)).is_err() {
        return String::new();
    }
    let s = s.trim();
    if s.is_empty() || s.len() > 200 { String::new() } else { format!(" ({s})") }
}
