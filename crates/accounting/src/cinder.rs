//! Storage (StAR) records from Cinder: one per volume of the project that
//! exists at extraction time, covering `[max(created, from), to]`, plus a
//! closing record for each volume the caller (the ledger) saw before and
//! Cinder no longer lists.

use std::collections::HashSet;

use apel::{ApelText, Fqan, Record, StorageRecord, Window};
use chrono::{DateTime, Utc};
use openstack::cinder::Volume;

use crate::access::{Access, ProjectAccess};
use crate::config::ExtractConfig;
use crate::error::ExtractError;

const GIB: u64 = 1 << 30;

/// A volume the ledger holds a record for, now absent from Cinder.
#[derive(Debug, Clone, PartialEq)]
pub struct GoneVolume {
    /// The last record sent for it.
    pub last: StorageRecord,
    /// When it was deleted, if the caller knows (notifications, audit).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The record of one listed volume (`user_name`: its Keystone name).
pub fn volume_record(
    cfg: &ExtractConfig,
    project_id: &str,
    fqan: &Fqan,
    window: &Window,
    v: &Volume,
    user_name: Option<&str>,
) -> StorageRecord {
    StorageRecord {
        record_id: ApelText::lossy(&v.id),
        create_time: window.to(),
        storage_system: cfg.service_name.clone(),
        site: Some(ApelText::lossy(cfg.site_name.as_str())),
        storage_share: None,
        storage_media: None,
        storage_class: None,
        local_user: v.user_id.as_deref().map(ApelText::lossy),
        local_group: Some(ApelText::lossy(project_id)),
        user_identity: user_name.map(ApelText::lossy),
        group: Some(ApelText::lossy(fqan.as_str())),
        start_time: v.created_at.max(window.from()),
        end_time: window.to(),
        resource_capacity_used: v.size.saturating_mul(GIB),
        resource_capacity_allocated: None,
    }
}

/// The closing record of a volume gone since `last`: it ends at the
/// deletion time when known (within the window), else where the last
/// record ended (no usage is claimed for the unknown part).
pub fn closing_record(window: &Window, gone: &GoneVolume) -> StorageRecord {
    let mut r = gone.last.clone();
    let end = gone.deleted_at.map_or(r.end_time, |d| d.clamp(window.from(), window.to())).max(r.start_time);
    r.end_time = end;
    r.create_time = window.to();
    r
}

/// Cinder's records for one project; `known` gives the ledger's volumes of
/// the project (their last records), told which ones Cinder lists. Returns
/// the records and the ids of the volumes closed.
pub(crate) async fn extract(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    fqan: &Fqan,
    window: Window,
    known: impl FnOnce(&HashSet<String>) -> Result<Vec<GoneVolume>, ExtractError>,
) -> Result<(Vec<Record>, Vec<String>), ExtractError> {
    let mut vols = a.project_volumes(p).await?;
    vols.sort_by_key(|v| v.created_at);
    let listed: HashSet<String> = vols.iter().map(|v| v.id.clone()).collect();
    let mut out = Vec::new();
    for v in &vols {
        if v.created_at > window.to() {
            continue; // created after the window: nothing to report yet
        }
        let user = match &v.user_id {
            Some(u) => a.user_name(u).await?,
            None => None,
        };
        out.push(Record::Storage(volume_record(cfg, &p.id, fqan, &window, v, user.as_deref())));
    }
    let mut closed = Vec::new();
    for g in known(&listed)? {
        if !listed.contains(g.last.record_id.as_str()) {
            closed.push(g.last.record_id.to_string());
            out.push(Record::Storage(closing_record(&window, &g)));
        }
    }
    Ok((out, closed))
}
