//! The received-records store: a SQLite file with APEL's semantics (latest cloud record per
//! VM per month replaces the earlier one; cloud summaries with per-VM deltas).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apel::{Record, summary};
use chrono::{DateTime, Datelike, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{ReceiveError, store_err};

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
    /// (latest earlier measurement time, month 0 excluded; [`apel::summary::vm_deltas`]) of
    /// wall, cpu, network in/out, grouped
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
        // Rows come by VM, then measurement time: each VM's records get their deltas together.
        let deltas =
            rows.chunk_by(|a, b| a.0 == b.0).flat_map(|vm| summary::vm_deltas(vm.iter().map(|r| (r.16, r.1 != 0))));
        let deltas: Vec<_> = deltas.collect();
        for (r, d) in rows.into_iter().zip(deltas) {
            let (_vm, year, month, site, ccs, gu, vo, vog, vor, status, image, cpus, bt, b, ct, start, v) = r;
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
            g.wall_duration += d.delta[0];
            g.cpu_duration += d.delta[1];
            g.network_inbound += d.delta[2];
            g.network_outbound += d.delta[3];
            g.memory += v[4];
            g.disk += v[5];
            g.number_of_vms += 1;
        }
        Ok(groups.into_values().collect())
    }
}
