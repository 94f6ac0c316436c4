//! The receiver: pull from an AMS subscription, base64-decode, decrypt if needed, verify the
//! S/MIME signature against CAs and the signer DN against an allowed list, parse with
//! `apel::parse_message`, store durably, and only then acknowledge. Owns the two stores:
//! python dirq's `Queue` layout (`incoming/` + `reject/`, as ssmreceive writes) and the
//! received-records SQLite file with APEL's semantics (latest cloud record per VM per month
//! replaces the earlier one; cloud summaries with per-VM deltas, reference §3.6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apel::{Record, RecordKind};
use chrono::{DateTime, Datelike, Utc};
use rand::Rng as _;
use rusqlite::{Connection, OptionalExtension, params};

use crate::ams::{AmsClient, AmsError, ReceivedMessage};
use smime::{self, Signer, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("store {}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },
    #[error(transparent)]
    Ams(#[from] AmsError),
    /// A record of a message cannot be rendered back for its receipt (nothing of the message
    /// is stored; it stays unacknowledged).
    #[error("message {ams_id}: rendering {kind} record {key} for its receipt: {source}")]
    Render {
        ams_id: String,
        kind: &'static str,
        key: String,
        #[source]
        source: apel::Error,
    },
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> ReceiveError {
    ReceiveError::Store { path: path.to_owned(), reason: e.to_string() }
}

// ---------------------------------------------------------------------------------------------
// python dirq `Queue` (directory elements)

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

// ---------------------------------------------------------------------------------------------
// The received-records store (APEL semantics)

/// The receiver's SQLite file: every message (by AMS id, with how often it arrived), the
/// latest cloud record per (VMUUID, year, month) as APEL's `REPLACE INTO`, the latest record of
/// other kinds per key, how often each record version arrived, and the rejects.
pub struct RecordStore {
    path: PathBuf,
    db: Connection,
}

/// What loading one message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOutcome {
    /// This AMS message id was stored before (redelivered, e.g. after a lost acknowledge).
    pub redelivered: bool,
    pub records: usize,
}

/// One row of APEL's `CloudSummaries` (grouping of `SummariseVMs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CloudSummary {
    pub site: String,
    pub cloud_compute_service: Option<String>,
    pub year: i32,
    pub month: u32,
    pub global_user_name: Option<String>,
    pub vo: String,
    pub vo_group: Option<String>,
    pub vo_role: Option<String>,
    pub status: Option<String>,
    pub image_id: Option<String>,
    pub cpu_count: u32,
    pub benchmark_type: Option<String>,
    pub benchmark: f64,
    pub cloud_type: Option<String>,
    pub earliest_start: Option<DateTime<Utc>>,
    pub latest_start: Option<DateTime<Utc>>,
    /// Sums of the per-VM deltas (this record's cumulative value minus the VM's previous
    /// record's).
    pub wall_duration: i64,
    pub cpu_duration: i64,
    pub network_inbound: i64,
    pub network_outbound: i64,
    pub memory: i64,
    pub disk: i64,
    pub number_of_vms: u64,
}

/// Counts over the store, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub messages: u64,
    /// Sum over messages of (arrivals - 1).
    pub redeliveries: u64,
    pub cloud_records: u64,
    pub other_records: u64,
    /// Record versions (kind, key, body) that arrived more than once (in different messages).
    pub duplicate_records: u64,
    pub rejected: u64,
}

/// FQAN → (VO, VOGroup, VORole) as APEL splits `/vo[/group]/Role=r/Capability=c`; a bare VO
/// name (as cASO sends) is its own group, role `Role=NULL`; none → VO `None`.
pub fn parse_fqan(fqan: Option<&str>) -> (String, Option<String>, Option<String>) {
    let Some(f) = fqan.map(str::trim).filter(|f| !f.is_empty()) else {
        return ("None".into(), None, None);
    };
    let mut group = Vec::new();
    let mut role = "Role=NULL".to_string();
    for part in f.trim_start_matches('/').split('/') {
        if part.starts_with("Role=") {
            role = part.to_string();
        } else if part.starts_with("Capability=") {
        } else if !part.is_empty() {
            group.push(part);
        }
    }
    let vo = group.first().map(|s| s.to_string()).unwrap_or_else(|| "None".into());
    (vo, Some(format!("/{}", group.join("/"))), Some(role))
}

fn ts(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp())
}

impl RecordStore {
    pub fn open(path: impl AsRef<Path>) -> Result<RecordStore, ReceiveError> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| store_err(&path, e))?;
        }
        let db = Connection::open(&path).map_err(|e| store_err(&path, e))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;
             CREATE TABLE IF NOT EXISTS messages (ams_id TEXT PRIMARY KEY, empaid TEXT, signer TEXT,
                 body_sha256 TEXT, records INTEGER, arrivals INTEGER NOT NULL, first_at TEXT, last_at TEXT);
             CREATE TABLE IF NOT EXISTS cloud_records (vmuuid TEXT NOT NULL, year INTEGER NOT NULL,
                 month INTEGER NOT NULL, measurement_time INTEGER, site TEXT NOT NULL, ccs TEXT,
                 global_user TEXT, fqan TEXT, vo TEXT, vo_group TEXT, vo_role TEXT, status TEXT,
                 image_id TEXT, cpu_count INTEGER, benchmark_type TEXT, benchmark REAL, cloud_type TEXT,
                 start_time INTEGER, wall INTEGER, cpu INTEGER, net_in INTEGER, net_out INTEGER,
                 memory INTEGER, disk INTEGER, body TEXT NOT NULL, signer TEXT, empaid TEXT, ams_id TEXT,
                 loaded_at TEXT, PRIMARY KEY (vmuuid, year, month));
             CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
                 signer TEXT, empaid TEXT, ams_id TEXT, loaded_at TEXT, PRIMARY KEY (kind, key));
             CREATE TABLE IF NOT EXISTS receipts (kind TEXT NOT NULL, key TEXT NOT NULL,
                 body_sha256 TEXT NOT NULL, arrivals INTEGER NOT NULL, PRIMARY KEY (kind, key, body_sha256));
             CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY, ams_id TEXT, empaid TEXT,
                 signer TEXT, error TEXT NOT NULL, body BLOB, at TEXT);",
        )
        .map_err(|e| store_err(&path, e))?;
        Ok(RecordStore { path, db })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores one accepted message's records in one transaction (durable on return). A
    /// message id seen before only bumps its arrival count: its records are not counted again.
    pub fn load(
        &mut self,
        ams_id: &str,
        empaid: &str,
        signer: &str,
        body: &[u8],
        records: &[Record],
    ) -> Result<LoadOutcome, ReceiveError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| store_err(&path, x);
        let now = Utc::now().to_rfc3339();
        let tx = self.db.transaction().map_err(e)?;
        let seen: Option<i64> = tx
            .query_row("SELECT arrivals FROM messages WHERE ams_id=?1", [ams_id], |r| r.get(0))
            .optional()
            .map_err(e)?;
        if seen.is_some() {
            tx.execute("UPDATE messages SET arrivals=arrivals+1, last_at=?2 WHERE ams_id=?1", params![ams_id, now])
                .map_err(e)?;
            tx.commit().map_err(e)?;
            return Ok(LoadOutcome { redelivered: true, records: records.len() });
        }
        tx.execute(
            "INSERT INTO messages VALUES (?1,?2,?3,?4,?5,1,?6,?6)",
            params![
                ams_id,
                empaid,
                signer,
                ledger::sha256_hex(&String::from_utf8_lossy(body)),
                records.len() as i64,
                now
            ],
        )
        .map_err(e)?;
        for r in records {
            let kind = r.kind().as_str();
            let key = r.key();
            let rendered =
                apel::render_message(r.kind(), std::slice::from_ref(r), apel::Style::Fedsite).map_err(|source| {
                    ReceiveError::Render { ams_id: ams_id.to_string(), kind, key: key.clone(), source }
                })?;
            // APEL messages are ASCII (every text field is validated), so this is the bytes as they are.
            let rbody = String::from_utf8_lossy(&rendered);
            tx.execute(
                "INSERT INTO receipts VALUES (?1,?2,?3,1) ON CONFLICT(kind,key,body_sha256)
                 DO UPDATE SET arrivals=arrivals+1",
                params![kind, key, ledger::sha256_hex(&rbody)],
            )
            .map_err(e)?;
            match r {
                Record::Cloud(c) => {
                    let mt = c.measurement_time();
                    let (y, m) = mt.map(|t| (t.year(), t.month())).unwrap_or((0, 0));
                    let fqan = c.fqan.as_ref().map(|f| f.to_string());
                    let (vo, group, role) = parse_fqan(fqan.as_deref());
                    let txt = |v: &Option<apel::ApelText>| v.as_ref().map(|t| t.to_string());
                    tx.execute(
                        "INSERT OR REPLACE INTO cloud_records VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,
                         ?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)",
                        params![
                            c.vm_uuid.to_string(),
                            y,
                            m,
                            ts(mt),
                            c.site_name.to_string(),
                            txt(&c.cloud_compute_service),
                            txt(&c.global_user_name),
                            fqan,
                            vo,
                            group,
                            role,
                            c.status.map(|s| s.as_str().to_string()),
                            txt(&c.image_id),
                            c.cpu_count.unwrap_or(0),
                            txt(&c.benchmark_type),
                            c.benchmark.unwrap_or(0.0),
                            txt(&c.cloud_type),
                            ts(c.start_time),
                            c.wall_duration.map(|v| v as i64),
                            c.cpu_duration.map(|v| v as i64),
                            c.network_inbound.map(|v| v as i64),
                            c.network_outbound.map(|v| v as i64),
                            c.memory.map(|v| v as i64),
                            c.disk.map(|v| v as i64),
                            rbody,
                            signer,
                            empaid,
                            ams_id,
                            now
                        ],
                    )
                    .map_err(e)?;
                }
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO records VALUES (?1,?2,?3,?4,?5,?6,?7)",
                        params![kind, key, rbody, signer, empaid, ams_id, now],
                    )
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(LoadOutcome { redelivered: false, records: records.len() })
    }

    pub fn reject(
        &mut self,
        ams_id: &str,
        empaid: &str,
        signer: Option<&str>,
        body: &[u8],
        error: &str,
    ) -> Result<(), ReceiveError> {
        self.db
            .execute(
                "INSERT INTO rejected (ams_id, empaid, signer, error, body, at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![ams_id, empaid, signer, error, body, Utc::now().to_rfc3339()],
            )
            .map_err(|e| store_err(&self.path, e))?;
        Ok(())
    }

    pub fn counts(&self) -> Result<StoreCounts, ReceiveError> {
        let q = |sql: &str| -> Result<u64, ReceiveError> {
            self.db
                .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(|e| store_err(&self.path, e))
        };
        Ok(StoreCounts {
            messages: q("SELECT COUNT(*) FROM messages")?,
            redeliveries: q("SELECT SUM(arrivals-1) FROM messages")?,
            cloud_records: q("SELECT COUNT(*) FROM cloud_records")?,
            other_records: q("SELECT COUNT(*) FROM records")?,
            duplicate_records: q("SELECT COUNT(*) FROM receipts WHERE arrivals > 1")?,
            rejected: q("SELECT COUNT(*) FROM rejected")?,
        })
    }

    /// (kind, key, body sha256, arrivals) of every record version received.
    pub fn receipts(&self) -> Result<Vec<(String, String, String, u64)>, ReceiveError> {
        let mut st = self
            .db
            .prepare("SELECT kind, key, body_sha256, arrivals FROM receipts ORDER BY kind, key")
            .map_err(|e| store_err(&self.path, e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| store_err(&self.path, e))?;
        Ok(rows)
    }

    /// (error, empaid) of the rejected messages.
    pub fn rejects(&self) -> Result<Vec<(String, String)>, ReceiveError> {
        let mut st = self
            .db
            .prepare("SELECT error, COALESCE(empaid,'') FROM rejected ORDER BY id")
            .map_err(|e| store_err(&self.path, e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| store_err(&self.path, e))?;
        Ok(rows)
    }

    /// APEL's `SummariseVMs`: per stored record, the usage since the VM's previous record
    /// (latest earlier measurement time, month 0 excluded) of wall, cpu, network in/out, grouped
    /// by site, cloud compute service, month, year, global user, VO, VO group, VO role, status,
    /// image, CPU count, benchmark type and benchmark.
    pub fn cloud_summaries(&self) -> Result<Vec<CloudSummary>, ReceiveError> {
        let e = |x: rusqlite::Error| store_err(&self.path, x);
        let mut st = self
            .db
            .prepare(
                "SELECT vmuuid, year, month, site, ccs, global_user, vo, vo_group, vo_role, status,
                 image_id, cpu_count, benchmark_type, benchmark, cloud_type, start_time, wall, cpu,
                 net_in, net_out, memory, disk FROM cloud_records
                 ORDER BY vmuuid, measurement_time",
            )
            .map_err(e)?;
        type Row = (
            String,
            i32,
            u32,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            u32,
            Option<String>,
            f64,
            Option<String>,
            Option<i64>,
            [i64; 6],
        );
        let rows: Vec<Row> = st
            .query_map([], |r| {
                let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0));
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get::<_, Option<String>>(6)?.unwrap_or_else(|| "None".into()),
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get::<_, Option<u32>>(11)?.unwrap_or(0),
                    r.get(12)?,
                    r.get::<_, Option<f64>>(13)?.unwrap_or(0.0),
                    r.get(14)?,
                    r.get(15)?,
                    [n(16)?, n(17)?, n(18)?, n(19)?, n(20)?, n(21)?],
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(e)?;
        let mut groups: BTreeMap<String, CloudSummary> = BTreeMap::new();
        let mut prev: Option<(String, [i64; 6])> = None;
        for r in rows {
            let (vm, year, month, site, ccs, gu, vo, vog, vor, status, image, cpus, bt, b, ct, start, v) = r;
            let base = match &prev {
                Some((pvm, pv)) if *pvm == vm => *pv,
                _ => [0; 6],
            };
            if year != 0 {
                prev = Some((vm.clone(), v));
            }
            let key = format!(
                "{site}\x1f{ccs:?}\x1f{year:04}\x1f{month:02}\x1f{gu:?}\x1f{vo}\x1f{vog:?}\x1f{vor:?}\x1f{status:?}\x1f{image:?}\x1f{cpus}\x1f{bt:?}\x1f{b}"
            );
            let start = start.and_then(|s| DateTime::from_timestamp(s, 0));
            let g = groups.entry(key).or_insert_with(|| CloudSummary {
                site,
                cloud_compute_service: ccs,
                year,
                month,
                global_user_name: gu,
                vo,
                vo_group: vog,
                vo_role: vor,
                status,
                image_id: image,
                cpu_count: cpus,
                benchmark_type: bt,
                benchmark: b,
                cloud_type: ct,
                earliest_start: None,
                latest_start: None,
                wall_duration: 0,
                cpu_duration: 0,
                network_inbound: 0,
                network_outbound: 0,
                memory: 0,
                disk: 0,
                number_of_vms: 0,
            });
            g.earliest_start = match (g.earliest_start, start) {
                (Some(a), Some(s)) => Some(a.min(s)),
                (a, s) => a.or(s),
            };
            g.latest_start = g.latest_start.max(start);
            g.wall_duration += v[0] - base[0];
            g.cpu_duration += v[1] - base[1];
            g.network_inbound += v[2] - base[2];
            g.network_outbound += v[3] - base[3];
            g.memory += v[4];
            g.disk += v[5];
            g.number_of_vms += 1;
        }
        Ok(groups.into_values().collect())
    }
}

// ---------------------------------------------------------------------------------------------
// The receive loop

/// Where accepted and rejected messages go.
pub enum Sink {
    /// `<path>/incoming` and `<path>/reject`, python dirq `Queue` layout (ssmreceive's).
    Queue { incoming: DirQueue, reject: DirQueue },
    /// The received-records store (rejects in its `rejected` table).
    Records(RecordStore),
}

impl Sink {
    pub fn queue(path: &Path) -> Result<Sink, ReceiveError> {
        Ok(Sink::Queue {
            incoming: DirQueue::open(path.join("incoming")).map_err(|e| store_err(path, e))?,
            reject: DirQueue::open(path.join("reject")).map_err(|e| store_err(path, e))?,
        })
    }
}

/// Takes the run lock of a receive store (one `fedsite receive` at a time per store): for a
/// dirq queue directory, `.fedsite-receive.lock` inside it (`dir`), for a records file,
/// `<file>.receive.lock` beside it; waiting up to `wait`.
pub fn lock_store(store: &Path, dir: bool, wait: Duration) -> Result<ledger::RunLock, ledger::LockError> {
    let path = if dir {
        std::fs::create_dir_all(store).map_err(|source| ledger::LockError::Io { path: store.to_owned(), source })?;
        store.join(".fedsite-receive.lock")
    } else {
        let mut s = store.as_os_str().to_owned();
        s.push(".receive.lock");
        PathBuf::from(s)
    };
    ledger::runlock::lock_file(&path, &format!("store {} (receive runs)", store.display()), wait)
}

#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    pub subscription: String,
    /// `maxMessages` per pull.
    pub batch: u32,
    /// Signer DNs accepted (SSM's `dns` file), OpenSSL legacy form.
    pub allowed_dns: Vec<String>,
    /// Retries of a failed pull/acknowledge (retryable errors) before giving up.
    pub retries: u32,
    pub retry_initial: Duration,
}

impl ReceiverOptions {
    pub fn new(subscription: &str, allowed_dns: Vec<String>) -> ReceiverOptions {
        ReceiverOptions {
            subscription: subscription.into(),
            batch: 100,
            allowed_dns,
            retries: 5,
            retry_initial: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveReport {
    pub pulled: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub records: usize,
    /// Messages whose AMS id the store had already (ack lost or late): not counted again.
    pub redelivered: usize,
    pub acked: usize,
    /// Pull answers lost after AMS may have served them (garbled or cut-off
    /// bodies): their messages stay out until the subscription's ack deadline
    /// and come back on a later run. Non-zero means this run may have left
    /// messages behind.
    pub lost_pulls: usize,
}

impl ReceiveReport {
    pub fn summary(&self) -> String {
        format!(
            "pulled {}, accepted {} ({} records), rejected {}, redelivered {}, acknowledged {}",
            self.pulled, self.accepted, self.records, self.rejected, self.redelivered, self.acked
        )
    }
}

/// What a message turned out to be.
enum Verdict {
    Accept { signer: String, body: Vec<u8>, records: Vec<Record> },
    Reject { signer: Option<String>, body: Vec<u8>, error: String },
}

fn judge(m: &ReceivedMessage, verifier: &Verifier, decryptor: Option<&Signer>, allowed: &[String]) -> Verdict {
    let reject = |signer: Option<String>, body: Vec<u8>, error: String| Verdict::Reject { signer, body, error };
    let data = match &m.data {
        Ok(d) => d.clone(),
        Err(e) => return reject(None, Vec::new(), e.to_string()),
    };
    let signed = if smime::is_encrypted(&data) {
        match decryptor {
            None => return reject(None, data, "encrypted message, but no certificate/key to decrypt".into()),
            Some(d) => match d.decrypt(&data) {
                Ok(s) => s,
                Err(e) => return reject(None, data, format!("decryption failed: {e}")),
            },
        }
    } else {
        data
    };
    let v = match verifier.verify(&signed) {
        Ok(v) => v,
        Err(e) => return reject(None, signed, format!("signature verification failed: {e}")),
    };
    if !allowed.iter().any(|d| d == &v.signer_dn) {
        return reject(Some(v.signer_dn.clone()), v.body, format!("Signer not in valid DNs list: {}", v.signer_dn));
    }
    match apel::parse_message(&v.body) {
        Ok((_kind, records)) => Verdict::Accept { signer: v.signer_dn, body: v.body, records },
        Err(e) => reject(Some(v.signer_dn), v.body, format!("not a valid APEL message: {e}")),
    }
}

async fn with_retries<T, F, Fut>(opts: &ReceiverOptions, mut f: F) -> Result<T, AmsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AmsError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt < opts.retries => {
                attempt += 1;
                let ms = (opts.retry_initial.as_millis() as u64) << (attempt - 1).min(10);
                let wait = rand::rng().random_range(ms / 2..=ms.max(1));
                tracing::info!("retrying in {wait} ms: {e}");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            r => return r,
        }
    }
}

/// Stores one message; Err only when the store itself failed (then it must not be acked).
fn store(sink: &mut Sink, m: &ReceivedMessage, v: Verdict, report: &mut ReceiveReport) -> Result<(), ReceiveError> {
    let empaid = m.attributes.get("empaid").map(String::as_str).unwrap_or("N/A");
    match (sink, v) {
        (Sink::Queue { incoming, .. }, Verdict::Accept { signer, body, records }) => {
            incoming
                .add(&[("body", &body), ("signer", signer.as_bytes()), ("empaid", empaid.as_bytes())])
                .map_err(|e| store_err(incoming.path(), e))?;
            report.accepted += 1;
            report.records += records.len();
        }
        (Sink::Queue { reject, .. }, Verdict::Reject { signer, body, error }) => {
            let signer = signer.unwrap_or_else(|| "Not available.".into());
            reject
                .add(&[
                    ("body", &body),
                    ("signer", signer.as_bytes()),
                    ("empaid", empaid.as_bytes()),
                    ("error", error.as_bytes()),
                ])
                .map_err(|e| store_err(reject.path(), e))?;
            tracing::warn!(empaid, "rejected: {error}");
            report.rejected += 1;
        }
        (Sink::Records(s), Verdict::Accept { signer, body, records }) => {
            let o = s.load(&m.message_id, empaid, &signer, &body, &records)?;
            if o.redelivered {
                report.redelivered += 1;
            } else {
                report.accepted += 1;
                report.records += o.records;
            }
        }
        (Sink::Records(s), Verdict::Reject { signer, body, error }) => {
            tracing::warn!(empaid, "rejected: {error}");
            s.reject(&m.message_id, empaid, signer.as_deref(), &body, &error)?;
            report.rejected += 1;
        }
    }
    Ok(())
}

/// Pulls until the subscription is empty (`returnImmediately`), storing each message durably
/// and acknowledging each pulled batch only after all its messages are stored (AMS acks are
/// cumulative: a store failure acks only the messages before it, then the run stops with the
/// error, and AMS redelivers the rest).
pub async fn receive_once(
    opts: &ReceiverOptions,
    client: &AmsClient,
    verifier: &Verifier,
    decryptor: Option<&Signer>,
    sink: &mut Sink,
) -> Result<ReceiveReport, ReceiveError> {
    let mut report = ReceiveReport::default();
    loop {
        let lost = std::sync::atomic::AtomicUsize::new(0);
        let pulled = with_retries(opts, || async {
            let r = client.pull(&opts.subscription, opts.batch, true).await;
            // A success status with a broken body, or a connection dropped mid-answer:
            // AMS may have handed the batch out already.
            if matches!(r, Err(AmsError::Protocol { .. } | AmsError::Network { .. })) {
                lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r
        })
        .await;
        report.lost_pulls += lost.into_inner();
        let pulled = pulled?;
        if pulled.is_empty() {
            break;
        }
        report.pulled += pulled.len();
        let mut acks = Vec::new();
        let mut failure = None;
        for m in &pulled {
            let v = judge(m, verifier, decryptor, &opts.allowed_dns);
            match store(sink, m, v, &mut report) {
                Ok(()) => acks.push(m.ack_id.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !acks.is_empty() {
            match with_retries(opts, || client.acknowledge(&opts.subscription, &acks)).await {
                Ok(()) => report.acked += acks.len(),
                // Past the deadline: AMS will deliver them again; the store counts them once.
                Err(e) if e.status() == Some(408) => {
                    tracing::warn!("acknowledge too late, messages will come again: {e}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    tracing::info!("receive: {}", report.summary());
    if report.lost_pulls > 0 {
        tracing::warn!(
            "{} pull answer(s) were lost after AMS may have served them: their messages come back after the subscription's ack deadline, on a later run",
            report.lost_pulls
        );
    }
    Ok(report)
}

/// Keeps receiving (long pulls) until `stop` resolves; `receive_once` rounds separated by
/// `idle` when the subscription is empty.
pub async fn receive_loop(
    opts: &ReceiverOptions,
    client: &AmsClient,
    verifier: &Verifier,
    decryptor: Option<&Signer>,
    sink: &mut Sink,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<ReceiveReport, ReceiveError> {
    let mut total = ReceiveReport::default();
    tokio::pin!(stop);
    loop {
        let r = receive_once(opts, client, verifier, decryptor, sink).await?;
        total.pulled += r.pulled;
        total.accepted += r.accepted;
        total.rejected += r.rejected;
        total.records += r.records;
        total.redelivered += r.redelivered;
        total.acked += r.acked;
        total.lost_pulls += r.lost_pulls;
        tokio::select! {
            _ = &mut stop => return Ok(total),
            _ = tokio::time::sleep(idle) => {}
        }
    }
}

/// Kinds as strings for reports.
pub fn kind_name(k: RecordKind) -> &'static str {
    k.as_str()
}
