//! EMI StAR storage records (XML): rendered exactly as cASO's ElementTree
//! writes them (no XML declaration, fixed element order, `sr:` prefix) and
//! parsed as APEL's `star_parser` reads them (namespace-aware, with quick-xml).

use crate::fields::{int, iso_datetime};
use crate::{ApelText, Error, StorageRecord, Style};
use chrono::{DateTime, Utc};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use std::collections::HashMap;

pub(crate) const NS: &str = "http://eu-emi.eu/namespaces/2011/02/storagerecord";
const CAR_NS: &str = "http://eu-emi.eu/namespaces/2012/11/computerecord";
const AUR_NS: &str = "http://eu-emi.eu/namespaces/2012/11/aggregatedcomputerecord";
pub(crate) const SEPARATOR: &str = "";

pub(crate) fn head() -> String {
    format!("<sr:StorageUsageRecords xmlns:sr=\"{NS}\">")
}
pub(crate) const TAIL: &str = "</sr:StorageUsageRecords>";

/// Python `datetime.isoformat()` of a naive UTC time (compat) or with `Z` (fedsite).
fn iso(t: DateTime<Utc>, style: Style) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = t.timestamp_subsec_micros();
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    if style == Style::Fedsite {
        s.push('Z');
    }
    s
}

/// ElementTree text escaping.
fn esc_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
/// ElementTree attribute escaping.
fn esc_attr(s: &str) -> String {
    esc_text(s).replace('"', "&quot;").replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#09;")
}

fn elem(out: &mut String, name: &str, text: &str) {
    if text.is_empty() {
        out.push_str(&format!("<sr:{name} />"));
    } else {
        out.push_str(&format!("<sr:{name}>{}</sr:{name}>", esc_text(text)));
    }
}

fn opt_elem(out: &mut String, name: &str, text: &Option<ApelText>) {
    if let Some(t) = text {
        elem(out, name, t.as_str());
    }
}

/// One `<sr:StorageUsageRecord>` (without its own xmlns, as inside cASO's wrapper).
pub(crate) fn render_record(r: &StorageRecord, style: Style) -> String {
    let mut o = String::from("<sr:StorageUsageRecord>");
    o.push_str(&format!(
        "<sr:RecordIdentity sr:createTime=\"{}\" sr:recordId=\"{}\" />",
        esc_attr(&iso(r.create_time, style)),
        esc_attr(r.record_id.as_str())
    ));
    elem(&mut o, "StorageSystem", r.storage_system.as_str());
    opt_elem(&mut o, "Site", &r.site);
    opt_elem(&mut o, "StorageShare", &r.storage_share);
    opt_elem(&mut o, "StorageMedia", &r.storage_media);
    opt_elem(&mut o, "StorageClass", &r.storage_class);
    let subject = [&r.local_user, &r.local_group, &r.user_identity, &r.group];
    if subject.iter().any(|s| s.is_some()) {
        o.push_str("<sr:SubjectIdentity>");
        opt_elem(&mut o, "LocalUser", &r.local_user);
        opt_elem(&mut o, "LocalGroup", &r.local_group);
        opt_elem(&mut o, "UserIdentity", &r.user_identity);
        opt_elem(&mut o, "Group", &r.group);
        o.push_str("</sr:SubjectIdentity>");
    }
    elem(&mut o, "StartTime", &iso(r.start_time, style));
    elem(&mut o, "EndTime", &iso(r.end_time, style));
    elem(&mut o, "ResourceCapacityUsed", &r.resource_capacity_used.to_string());
    if let Some(a) = r.resource_capacity_allocated {
        elem(&mut o, "ResourceCapacityAllocated", &a.to_string());
    }
    o.push_str("</sr:StorageUsageRecord>");
    o
}

pub(crate) fn assemble(parts: &[String]) -> String {
    format!("{}{}{TAIL}", head(), parts.join(SEPARATOR))
}

fn xml_err(e: impl std::fmt::Display, pos: u64) -> Error {
    Error::Xml(format!("{e} (at byte {pos})"))
}

/// Fields of one record: first occurrence of each StAR element, plus the
/// `RecordIdentity` attributes.
#[derive(Default)]
struct Raw {
    fields: HashMap<String, String>,
}

/// Parses a StAR message (`sr:StorageUsageRecords`, or a bare record).
pub(crate) fn parse(text: &str) -> Result<Vec<StorageRecord>, Error> {
    let mut reader = NsReader::from_str(text);
    let sr = Namespace(NS.as_bytes());
    let mut root_seen = false;
    let mut current: Option<Raw> = None;
    // Open elements inside the current record: (local name if in the StAR namespace, text).
    let mut stack: Vec<(Option<String>, String)> = Vec::new();
    let mut records = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let (ns, ev) = reader.read_resolved_event().map_err(|e| xml_err(e, pos))?;
        let in_sr = ns == ResolveResult::Bound(sr);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if !root_seen {
                    root_seen = true;
                    match &ns {
                        ResolveResult::Bound(Namespace(n)) if *n == NS.as_bytes() => {}
                        ResolveResult::Bound(Namespace(n)) if *n == CAR_NS.as_bytes() => {
                            return Err(Error::UnknownMessageType("CAR compute records (not supported)".into()));
                        }
                        ResolveResult::Bound(Namespace(n)) if *n == AUR_NS.as_bytes() => {
                            return Err(Error::UnknownMessageType("AUR aggregated records (not supported)".into()));
                        }
                        _ => {
                            return Err(Error::UnknownMessageType("XML format not recognised".into()));
                        }
                    }
                }
                if in_sr && local == "StorageUsageRecord" && current.is_none() {
                    if empty {
                        records.push(build(Raw::default()).map_err(|e| e.in_record(records.len()))?);
                    } else {
                        current = Some(Raw::default());
                        stack.clear();
                    }
                    continue;
                }
                if let Some(raw) = current.as_mut() {
                    if in_sr && local == "RecordIdentity" {
                        for a in e.attributes() {
                            let a = a.map_err(|err| xml_err(err, pos))?;
                            let (ans, aname) = reader.resolve_attribute(a.key);
                            let ok = matches!(ans, ResolveResult::Unbound) || ans == ResolveResult::Bound(sr);
                            let aname = String::from_utf8_lossy(aname.as_ref()).into_owned();
                            if ok && (aname == "recordId" || aname == "createTime") {
                                let v = a.unescape_value().map_err(|err| xml_err(err, pos))?;
                                raw.fields.entry(aname).or_insert_with(|| v.trim().to_string());
                            }
                        }
                    }
                    let name = in_sr.then_some(local);
                    if empty {
                        if let Some(n) = name {
                            raw.fields.entry(n).or_default();
                        }
                    } else {
                        stack.push((name, String::new()));
                    }
                }
            }
            Event::Text(t) => {
                if let Some((_, buf)) = stack.last_mut() {
                    buf.push_str(&t.xml_content().map_err(|e| xml_err(e, pos))?);
                }
            }
            Event::CData(t) => {
                if let Some((_, buf)) = stack.last_mut() {
                    buf.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, buf)) = stack.last_mut() {
                    let name = r.decode().map_err(|e| xml_err(e, pos))?;
                    let resolved =
                        quick_xml::escape::unescape(&format!("&{name};")).map_err(|e| xml_err(e, pos))?.into_owned();
                    buf.push_str(&resolved);
                }
            }
            Event::End(_) => {
                if let Some(raw) = current.as_mut() {
                    match stack.pop() {
                        Some((name, text)) => {
                            if let Some(n) = name {
                                raw.fields.entry(n).or_insert_with(|| text.trim().to_string());
                            }
                        }
                        None => {
                            // End of the StorageUsageRecord itself.
                            let raw = current.take().expect("in a record");
                            records.push(build(raw).map_err(|e| e.in_record(records.len()))?);
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(Error::Xml("no root element".into()));
    }
    if records.is_empty() {
        return Err(Error::NoRecords);
    }
    Ok(records)
}

fn build(raw: Raw) -> Result<StorageRecord, Error> {
    let f = &raw.fields;
    let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let req = |k: &str| get(k).ok_or_else(|| Error::missing(k));
    let text = |k: &str| get(k).map(|v| ApelText::for_field(k, v)).transpose();
    let time = |k: &str| req(k).and_then(|v| iso_datetime(k, v));
    Ok(StorageRecord {
        record_id: ApelText::for_field("recordId", req("recordId")?)?,
        create_time: time("createTime")?,
        storage_system: ApelText::for_field("StorageSystem", req("StorageSystem")?)?,
        site: text("Site")?,
        storage_share: text("StorageShare")?,
        storage_media: text("StorageMedia")?,
        storage_class: text("StorageClass")?,
        local_user: text("LocalUser")?,
        local_group: text("LocalGroup")?,
        user_identity: text("UserIdentity")?,
        group: text("Group")?,
        start_time: time("StartTime")?,
        end_time: time("EndTime")?,
        resource_capacity_used: int("ResourceCapacityUsed", req("ResourceCapacityUsed")?)?,
        resource_capacity_allocated: get("ResourceCapacityAllocated")
            .map(|v| int("ResourceCapacityAllocated", v))
            .transpose()?,
    })
}
