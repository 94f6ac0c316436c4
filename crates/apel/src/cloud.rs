//! `APEL-cloud-message` v0.4: render (cASO-compat or fedsite style) and parse
//! with the APEL loader's rules (APEL `apel/db/loader/record_factory.py`, `apel/db/records/cloud.py`).

use crate::fields::{LineIndex, float, int, integral_float, loader_datetime};
use crate::types::is_null_spelling;
use crate::{ApelText, CloudRecord, Error, Fqan, SiteName, Style, VmStatus, VmUuid};
use chrono::{DateTime, Utc};
use pyjson::float_repr;
use std::collections::HashMap;

pub(crate) const MESSAGE_TYPE: &str = "APEL-cloud-message";
pub(crate) const HEADER: &str = "APEL-cloud-message: v0.4\n";
pub(crate) const SEPARATOR: &str = "\n%%\n";
pub(crate) const TRAILER: &str = "\n";

/// Keys the loader stores.
const FIELDS: [&str; 27] = [
    "VMUUID",
    "SiteName",
    "RecordCreateTime",
    "CloudComputeService",
    "MachineName",
    "LocalUserId",
    "LocalGroupId",
    "GlobalUserName",
    "FQAN",
    "Status",
    "StartTime",
    "EndTime",
    "SuspendDuration",
    "WallDuration",
    "CpuDuration",
    "CpuCount",
    "NetworkType",
    "NetworkInbound",
    "NetworkOutbound",
    "PublicIPCount",
    "Memory",
    "Disk",
    "BenchmarkType",
    "Benchmark",
    "StorageRecordId",
    "ImageId",
    "CloudType",
];
/// Keys the loader accepts and ignores.
const IGNORED: [&str; 4] = ["UpdateTime", "MeasurementTime", "MeasurementMonth", "MeasurementYear"];

fn epoch(t: DateTime<Utc>) -> String {
    t.timestamp().to_string()
}

/// One record as `Key: value` lines sorted by whole line, joined by `\n`.
pub(crate) fn render_record(r: &CloudRecord, style: Style) -> String {
    let compat = style == Style::CasoCompat;
    let mut lines: Vec<String> = Vec::with_capacity(27);
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            lines.push(format!("{k}: {v}"));
        }
    };
    let txt = |v: &Option<ApelText>| v.as_ref().map(|t| t.to_string());
    let num = |v: Option<u64>| v.map(|n| n.to_string());
    let dur = |v: Option<u64>| v.map(|n| if compat && n == 0 { 1 } else { n }).map(|n| n.to_string());
    put("VMUUID", Some(r.vm_uuid.to_string()));
    put("SiteName", Some(r.site_name.to_string()));
    put("RecordCreateTime", r.record_create_time.map(epoch));
    put("CloudComputeService", txt(&r.cloud_compute_service));
    put("CloudType", txt(&r.cloud_type));
    put("MachineName", txt(&r.machine_name));
    put("LocalUserId", txt(&r.local_user_id));
    put("LocalGroupId", txt(&r.local_group_id));
    put("GlobalUserName", txt(&r.global_user_name));
    put("FQAN", r.fqan.as_ref().map(Fqan::to_string));
    put("Status", r.status.map(|s| s.as_str().to_string()));
    put("StartTime", r.start_time.map(epoch));
    put(
        "EndTime",
        match r.end_time {
            Some(t) => Some(epoch(t)),
            None if compat => Some("0".into()),
            None => None,
        },
    );
    put("SuspendDuration", num(r.suspend_duration));
    put("WallDuration", dur(r.wall_duration));
    put("CpuDuration", dur(r.cpu_duration));
    put("CpuCount", r.cpu_count.map(|n| n.to_string()));
    put("NetworkType", txt(&r.network_type));
    put("NetworkInbound", num(r.network_inbound));
    put("NetworkOutbound", num(r.network_outbound));
    put("PublicIPCount", r.public_ip_count.map(|n| n.to_string()));
    put("Memory", num(r.memory));
    put("Disk", num(r.disk));
    put("StorageRecordId", txt(&r.storage_record_id));
    put("ImageId", txt(&r.image_id));
    put("BenchmarkType", txt(&r.benchmark_type));
    put("Benchmark", r.benchmark.map(float_repr));
    lines.sort();
    lines.join("\n")
}

/// Header + records joined by `\n%%\n` + final `\n` (cASO's layout).
pub(crate) fn assemble(parts: &[String]) -> String {
    format!("{HEADER}{}{TRAILER}", parts.join(SEPARATOR))
}

/// Parses a whole cloud message (already known to be ASCII).
pub(crate) fn parse(text: &str) -> Result<Vec<CloudRecord>, Error> {
    let idx = LineIndex::new(text);
    let start = text.len() - text.trim_start().len();
    let body = text.trim();
    let (header, rest_off) = match body.find('\n') {
        Some(i) => (&body[..i], start + i + 1),
        None => (body, start + body.len()),
    };
    let msg_type = header.split_once(':').map(|(t, _)| t.trim());
    if msg_type != Some(MESSAGE_TYPE) {
        return Err(Error::UnknownMessageType(header.trim().to_string()));
    }
    let rest = &text[rest_off..start + body.len()];
    let base = rest_off + (rest.len() - rest.trim_start().len());
    let rest = rest.trim();

    let mut records = Vec::new();
    let mut chunk_off = 0;
    for chunk in rest.split("%%") {
        let off = chunk_off;
        chunk_off += chunk.len() + 2;
        if chunk.trim().is_empty() {
            continue;
        }
        let index = records.len();
        let first_line = idx.line(base + off + (chunk.len() - chunk.trim_start().len()));
        let rec = parse_record(chunk, base + off, &idx, first_line).map_err(|e| e.in_record(index))?;
        records.push(rec);
    }
    if records.is_empty() {
        return Err(Error::NoRecords);
    }
    Ok(records)
}

fn parse_record(chunk: &str, off: usize, idx: &LineIndex, first_line: usize) -> Result<CloudRecord, Error> {
    let mut fields: HashMap<&str, (usize, &str)> = HashMap::new();
    let mut line_off = off;
    for line in chunk.split('\n') {
        let line_no = idx.line(line_off);
        line_off += line.len() + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| Error::MalformedLine { line: line_no, text: line.trim().to_string() })?;
        let (k, v) = (k.trim(), v.trim());
        if IGNORED.contains(&k) {
            continue;
        }
        if !FIELDS.contains(&k) {
            return Err(Error::UnknownField { key: k.to_string() }.at_line(line_no));
        }
        fields.insert(k, (line_no, v)); // last one wins, like the loader's dict
    }
    let get = |k: &str| fields.get(k).copied().filter(|(_, v)| !is_null_spelling(v));
    fn conv<T>(
        f: Option<(usize, &str)>,
        k: &str,
        p: impl Fn(&str, &str) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        f.map(|(line, v)| p(k, v).map_err(|e| e.at_line(line))).transpose()
    }
    let text = |k: &str| conv(get(k), k, |k, v| ApelText::for_field(k, v));
    let uint = |k: &str| conv(get(k), k, int::<u64>);
    let u32f = |k: &str| conv(get(k), k, int::<u32>);
    let time = |k: &str| conv(get(k), k, loader_datetime);
    let mandatory = |k: &str| get(k).ok_or_else(|| Error::missing(k).at_line(first_line));

    let vm_uuid = conv(Some(mandatory("VMUUID")?), "VMUUID", |_, v| VmUuid::new(v))?.expect("Some");
    let site_name = conv(Some(mandatory("SiteName")?), "SiteName", |_, v| SiteName::new(v))?.expect("Some");
    Ok(CloudRecord {
        vm_uuid,
        site_name,
        cloud_compute_service: text("CloudComputeService")?,
        cloud_type: text("CloudType")?,
        machine_name: text("MachineName")?,
        local_user_id: text("LocalUserId")?,
        local_group_id: text("LocalGroupId")?,
        global_user_name: text("GlobalUserName")?,
        fqan: conv(get("FQAN"), "FQAN", |_, v| Fqan::new(v))?,
        status: conv(get("Status"), "Status", |_, v| v.parse::<VmStatus>())?,
        start_time: time("StartTime")?,
        end_time: time("EndTime")?,
        suspend_duration: uint("SuspendDuration")?,
        wall_duration: uint("WallDuration")?,
        cpu_duration: uint("CpuDuration")?,
        cpu_count: conv(get("CpuCount"), "CpuCount", integral_float)?,
        network_type: text("NetworkType")?,
        network_inbound: uint("NetworkInbound")?,
        network_outbound: uint("NetworkOutbound")?,
        public_ip_count: u32f("PublicIPCount")?,
        memory: uint("Memory")?,
        disk: uint("Disk")?,
        storage_record_id: text("StorageRecordId")?,
        image_id: text("ImageId")?,
        benchmark_type: text("BenchmarkType")?,
        benchmark: conv(get("Benchmark"), "Benchmark", float)?,
        record_create_time: time("RecordCreateTime")?,
    })
}
