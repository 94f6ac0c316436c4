//! Public IP records from Neutron: the project's floating IPs created by
//! the window end, counted per IP version; one record per version (cASO
//! keeps only the last, IPv6 over IPv4, unless configured so).

use apel::{ApelText, Fqan, IpRecord, Record, Window};
use openstack::neutron::FloatingIp;

use crate::access::{Access, ProjectAccess};
use crate::config::ExtractConfig;
use crate::error::ExtractError;

/// A stable identifier for the (project, version, window end) record, in
/// UUID form (cASO sends a random uuid4 each run).
pub fn stable_uuid(project_id: &str, version: u8, window: &Window) -> String {
    // FNV-1a 128-bit over the parts: deterministic across runs and builds.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    let data = format!("{project_id}/ipv{version}/{}", window.to().timestamp());
    for b in data.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let mut b = h.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x80; // version 8 (custom)
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// The records of one project from its floating IPs (already its own).
pub fn build(
    cfg: &ExtractConfig,
    project_id: &str,
    fqan: &Fqan,
    window: &Window,
    fips: &[FloatingIp],
) -> Vec<IpRecord> {
    let (mut v4, mut v6) = (0u32, 0u32);
    for f in fips {
        if f.created_at.is_some_and(|c| c > window.to()) {
            continue;
        }
        if f.ip_version() == 6 { v6 += 1 } else { v4 += 1 }
    }
    let mut out: Vec<IpRecord> = [(4u8, v4), (6u8, v6)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(version, n)| IpRecord {
            measurement_time: window.to(),
            site_name: cfg.site_name.clone(),
            cloud_compute_service: Some(cfg.service_name.clone()),
            cloud_type: cfg.cloud_type.clone(),
            uuid: Some(stable_uuid(project_id, version, window)),
            local_user: None,
            global_user_name: None,
            local_group: ApelText::lossy(project_id),
            fqan: fqan.clone(),
            ip_version: version,
            ip_count: n,
        })
        .collect();
    if !cfg.compat.ip_both_versions && out.len() > 1 {
        out.drain(..out.len() - 1);
    }
    out
}

pub(crate) async fn extract(
    a: &Access,
    p: &ProjectAccess,
    cfg: &ExtractConfig,
    fqan: &Fqan,
    window: Window,
) -> Result<Vec<Record>, ExtractError> {
    let fips = a.project_floating_ips(p).await?;
    Ok(build(cfg, &p.id, fqan, &window, &fips).into_iter().map(Record::Ip).collect())
}
