//! The quarantine directory beside a spool (`<spool>.quarantine/` by default): a plain
//! directory holding, per quarantined element, the message as it was in the spool
//! (`<dir>_<file>`, the element name with `/` flattened) and a note (`<dir>_<file>.error`:
//! `element:`, `spool:`, `time:`, `reason:` lines). Owns writing it, reading it (by reason)
//! and requeueing: putting elements back into the spool under their own names (dirq layout)
//! with their ledger messages back to `spooled`, so a fixed configuration sends them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use ledger::{Ledger, MessageState};

use crate::config::PathType;
use crate::dirq::{ElementName, QueueSimple};
use crate::sender::{SPLIT_REASON, SUPERSEDED_REASON, SendError, write_durably};

const NOTE_SUFFIX: &str = ".error";

fn io_err(path: &Path, e: impl std::fmt::Display) -> SendError {
    SendError::Spool { path: path.to_owned(), reason: e.to_string() }
}

/// One quarantined element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The file in the quarantine directory holding the message.
    pub file: String,
    /// The spool element it was (from its note; the file name if the note does not say).
    pub element: String,
    pub reason: String,
    /// When it was quarantined (RFC 3339, from the note).
    pub time: Option<String>,
}

/// Writes `data` and its note into `dir` (created if missing), durably.
pub fn write(dir: &Path, spool: &Path, element: &str, data: &[u8], reason: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let flat = element.replace('/', "_");
    write_durably(&dir.join(&flat), data)?;
    // One line per field: a reason spanning lines would be cut at the first.
    let reason = reason.replace(['\n', '\r'], " ");
    let note = format!(
        "element: {element}\nspool: {}\ntime: {}\nreason: {reason}\n",
        spool.display(),
        Utc::now().to_rfc3339()
    );
    write_durably(&dir.join(format!("{flat}{NOTE_SUFFIX}")), note.as_bytes())
}

/// Every quarantined element of `dir` (none if it does not exist), by file name.
pub fn list(dir: &Path) -> Result<Vec<Quarantined>, SendError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(file) = name.strip_suffix(NOTE_SUFFIX) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
        out.push(Quarantined {
            file: file.to_owned(),
            element: field("element: ").unwrap_or_else(|| file.to_owned()),
            reason: field("reason: ").unwrap_or_default(),
            time: field("time: "),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// The quarantine grouped by reason: (reason, elements), most frequent first.
pub fn by_reason(items: &[Quarantined]) -> Vec<(String, Vec<String>)> {
    let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for q in items {
        m.entry(q.reason.as_str()).or_default().push(q.element.clone());
    }
    let mut v: Vec<(String, Vec<String>)> = m.into_iter().map(|(r, e)| (r.to_owned(), e)).collect();
    v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Which quarantined elements to requeue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    /// By element name (`dir/file`) or quarantine file name (`dir_file`).
    Elements(Vec<String>),
    /// Those whose reason contains this text.
    Reason(String),
}

impl Selection {
    fn takes(&self, q: &Quarantined) -> bool {
        match self {
            Selection::All => true,
            Selection::Elements(v) => v.iter().any(|e| *e == q.element || *e == q.file),
            Selection::Reason(r) => q.reason.contains(r.as_str()),
        }
    }
}

/// What a requeue did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequeueReport {
    /// (element as now in the spool, reason it had been quarantined for).
    pub requeued: Vec<(String, String)>,
    /// Of those, ledger messages set back to spooled.
    pub ledger_requeued: usize,
    /// (element, why it was left in the quarantine).
    pub skipped: Vec<(String, String)>,
    /// Element names given in the selection that the quarantine does not hold.
    pub not_found: Vec<String>,
}

/// Puts the selected quarantined elements back into `spool`. Order, so that a crash at any
/// point loses nothing and a rerun finishes the job: the ledger message back to `spooled`
/// first (a sender would otherwise quarantine the element again on sight), then the element
/// into the spool under its own name, then the quarantine files removed. An element the
/// ledger knows in another state than quarantined/spooled, or whose name is already in the
/// spool, is skipped with the reason. Elements that are not dirq names (a foreign flat file)
/// are added under a new name.
pub fn requeue(
    spool: &Path,
    ty: PathType,
    quarantine: &Path,
    selection: &Selection,
    mut ledger: Option<&mut Ledger>,
    dry_run: bool,
) -> Result<RequeueReport, SendError> {
    let items = list(quarantine)?;
    let mut report = RequeueReport::default();
    if let Selection::Elements(wanted) = selection {
        report.not_found =
            wanted.iter().filter(|w| !items.iter().any(|q| q.element == **w || q.file == **w)).cloned().collect();
    }
    let queue = match ty {
        PathType::Dirq if !dry_run => Some(QueueSimple::open(spool).map_err(|e| io_err(spool, e))?),
        _ => None,
    };
    for q in items.iter().filter(|q| selection.takes(q)) {
        if q.reason.starts_with(SPLIT_REASON) || q.reason.starts_with(SUPERSEDED_REASON) {
            report.skipped.push((q.element.clone(), "replaced by other messages".into()));
            continue;
        }
        let path = quarantine.join(&q.file);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                report.skipped.push((q.element.clone(), format!("cannot read {}: {e}", path.display())));
                continue;
            }
        };
        let known = match ledger.as_deref() {
            Some(l) => l.message(&q.element)?.map(|m| m.state),
            None => None,
        };
        match known {
            None | Some(MessageState::Quarantined | MessageState::Spooled) => {}
            Some(state) => {
                report.skipped.push((q.element.clone(), format!("the ledger has this message as {state}")));
                continue;
            }
        }
        let in_spool = match ty {
            PathType::Dirq => {
                ElementName::parse(&q.element).ok().is_some_and(|n| spool.join(n.dir()).join(n.file()).exists())
            }
            PathType::Directory => spool.join(&q.element).exists(),
        };
        if in_spool {
            report.skipped.push((q.element.clone(), "an element of that name is in the spool".into()));
            continue;
        }
        if dry_run {
            report.requeued.push((q.element.clone(), q.reason.clone()));
            report.ledger_requeued += usize::from(known == Some(MessageState::Quarantined));
            continue;
        }
        if known == Some(MessageState::Quarantined)
            && let Some(l) = ledger.as_deref_mut()
        {
            l.requeue(&q.element)?;
            report.ledger_requeued += 1;
        }
        let element = match (ty, &queue) {
            (PathType::Dirq, Some(queue)) => match ElementName::parse(&q.element) {
                Ok(name) => {
                    queue.restore(&name, &data).map_err(|e| io_err(spool, e))?;
                    q.element.clone()
                }
                Err(_) => queue.add(&data).map_err(|e| io_err(spool, e))?.to_string(),
            },
            _ => {
                std::fs::create_dir_all(spool).map_err(|e| io_err(spool, e))?;
                write_durably(&spool.join(&q.element), &data).map_err(|e| io_err(spool, e))?;
                q.element.clone()
            }
        };
        for f in [path, quarantine.join(format!("{}{NOTE_SUFFIX}", q.file))] {
            if let Err(e) = std::fs::remove_file(&f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(io_err(&f, e));
            }
        }
        tracing::info!(element = %element, reason = %q.reason, "requeued");
        report.requeued.push((element, q.reason.clone()));
    }
    Ok(report)
}

/// `<spool>.quarantine`, beside the spool (e.g. /var/spool/apel/outgoing.quarantine).
pub fn default_dir(spool: &Path) -> PathBuf {
    let mut s = spool.as_os_str().to_owned();
    s.push(".quarantine");
    PathBuf::from(s)
}
