//! APEL records and their wire formats (cloud v0.4, public IP v0.2,
//! accelerator v0.1, EMI StAR storage, energy v0.1), rendered and parsed in
//! both directions, plus the APEL loader's validation rules and message
//! batching. Knows nothing of OpenStack.
//!
//! The APEL formats are written by hand: no Rust crate implements them (the
//! cloud format is APEL's own `Key: value` / `%%` text, the JSON ones need
//! Python `json.dumps` byte layout, StAR is rendered as cASO's ElementTree
//! writes it).
//!
//! Styles: [`Style::CasoCompat`] reproduces cASO 5.2.2 byte for byte;
//! [`Style::Fedsite`] (the default) differs only where listed on [`Style`].

#![warn(missing_docs)]

mod cloud;
mod error;
mod fields;
mod fingerprint;
mod json;
mod pyfmt;
mod records;
mod star;
pub mod summary;
mod types;
mod validate;

pub use error::Error;
pub use fingerprint::VERSION as FINGERPRINT_VERSION;
pub use records::{AcceleratorRecord, CloudRecord, EnergyRecord, IpRecord, Record, RecordKind, StorageRecord};
pub use types::{ApelText, Fqan, MAX_TEXT_LEN, SiteName, VmStatus, VmUuid, Window};
pub use validate::validate;

/// How records are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// cASO 5.2.2 byte for byte: cloud `EndTime: 0` when there is no end,
    /// `WallDuration`/`CpuDuration` 0 sent as 1, StAR times naive ISO
    /// (`2023-05-21T00:00:00`, `.ffffff` when sub-second).
    CasoCompat,
    /// fedsite: cloud `EndTime` left out when there is no end, durations sent
    /// as they are (0 stays 0), StAR times ISO UTC with `Z`. Everything else
    /// (sorted keys, Python float repr, `json.dumps` separators, element
    /// order) is as in `CasoCompat`.
    #[default]
    Fedsite,
}

/// Renders one record of `kind` as it appears inside a message.
fn render_part(kind: RecordKind, record: &Record, style: Style, index: usize) -> Result<String, Error> {
    validate(record).map_err(|e| e.in_record(index))?;
    Ok(match (kind, record) {
        (RecordKind::Cloud, Record::Cloud(r)) => cloud::render_record(r, style),
        (RecordKind::Ip, Record::Ip(r)) => json::render(&json::ip_fields(r)),
        (RecordKind::Accelerator, Record::Accelerator(r)) => json::render(&json::accelerator_fields(r)),
        (RecordKind::Storage, Record::Storage(r)) => star::render_record(r, style),
        (RecordKind::Energy, Record::Energy(r)) => json::render(&json::energy_fields(r)),
        (expected, r) => {
            return Err(Error::WrongKind { expected, found: r.kind(), index });
        }
    })
}

/// Wraps rendered records in the message envelope of `kind`.
fn assemble(kind: RecordKind, parts: &[String]) -> String {
    match kind {
        RecordKind::Cloud => cloud::assemble(parts),
        RecordKind::Storage => star::assemble(parts),
        RecordKind::Ip | RecordKind::Accelerator | RecordKind::Energy => json::assemble(kind, parts),
    }
}

/// Bytes a message adds around its records: (envelope, separator between two records).
fn overhead(kind: RecordKind) -> (usize, usize) {
    let sep = match kind {
        RecordKind::Cloud => cloud::SEPARATOR.len(),
        RecordKind::Storage => star::SEPARATOR.len(),
        _ => json::SEPARATOR.len(),
    };
    (assemble(kind, &[String::new()]).len(), sep)
}

/// Renders one message of `kind` holding `records` (all of that kind, each
/// passing [`validate`]). Layouts:
/// - cloud: `APEL-cloud-message: v0.4\n` + records (`Key: value` lines sorted
///   by line) joined by `\n%%\n` + `\n`;
/// - ip / accelerator: `{"Type": .., "Version": .., "UsageRecords": [..]}` in
///   Python `json.dumps` layout, cASO key order, nulls left out;
/// - storage: `<sr:StorageUsageRecords xmlns:sr="..">` + records + close tag;
/// - energy: a JSON array of records (what cASO posts to GreenDIGIT CIM).
pub fn render_message(kind: RecordKind, records: &[Record], style: Style) -> Result<Vec<u8>, Error> {
    if records.is_empty() {
        return Err(Error::NoRecords);
    }
    let parts =
        records.iter().enumerate().map(|(i, r)| render_part(kind, r, style, i)).collect::<Result<Vec<_>, _>>()?;
    Ok(assemble(kind, &parts).into_bytes())
}

/// Parses one message with the APEL loader's rules: ASCII only; after
/// stripping, `<` → StAR XML, `{` → IP / accelerator JSON (by `Type`), `[` →
/// energy JSON array, anything else → a `Header: version` text message
/// (only `APEL-cloud-message`, any version). Cloud records: split on `%%`,
/// `Key: value` at the first `:`, unknown keys rejected, `none`/`null`/empty
/// read as null, VMUUID and SiteName mandatory, strict ints, datetimes as
/// epoch seconds or `YYYY-MM-DDTHH:MM:SS` + `Z`/`UTC`; `UpdateTime`,
/// `MeasurementTime`, `MeasurementMonth`, `MeasurementYear` ignored. One bad
/// record rejects the whole message; errors name the record, line and field.
pub fn parse_message(bytes: &[u8]) -> Result<(RecordKind, Vec<Record>), Error> {
    let text = fields::check_ascii(bytes)?;
    let trimmed = text.trim_start();
    match trimmed.as_bytes().first() {
        None => Err(Error::NoRecords),
        Some(b'<') => Ok((RecordKind::Storage, star::parse(text)?.into_iter().map(Record::Storage).collect())),
        Some(b'{') | Some(b'[') => json::parse(text),
        Some(_) => Ok((RecordKind::Cloud, cloud::parse(text)?.into_iter().map(Record::Cloud).collect())),
    }
}

/// Default records per message (cASO `[ssm] max_size`, GGUS 143436).
pub const DEFAULT_MAX_RECORDS: usize = 100;
/// Default limit on a message once S/MIME-signed and base64-encoded (EGI: AMS
/// messages must be < 1 MB).
pub const DEFAULT_MAX_SIGNED_BYTES: usize = 1_000_000;
/// Bytes `openssl smime -sign -text` adds to a message: MIME headers and
/// boundaries (~400 B) plus the base64 PKCS#7 signature with the signer
/// certificate (3–5 KB for one host certificate). 8 KiB leaves room for a
/// certificate chain.
pub const SMIME_OVERHEAD: usize = 8192;

/// Estimated size of a message of `message_len` bytes once signed and
/// base64-encoded for AMS: `ceil((message_len + SMIME_OVERHEAD) / 3) * 4`.
/// (If SSM also encrypts, the signed text is base64-wrapped once more inside
/// the PKCS#7 envelope: pass a limit of about 3/4 of the real one.)
pub fn signed_size_estimate(message_len: usize) -> usize {
    (message_len + SMIME_OVERHEAD).div_ceil(3) * 4
}

/// Splits `records` (all of `kind`) into rendered messages, in order, along
/// record boundaries: at most `max_records` per message (0 is read as 1) and
/// never more than `max_signed_bytes` by [`signed_size_estimate`]. An empty
/// slice gives no message; a record that alone would exceed the limit is an
/// error ([`Error::RecordTooLarge`]).
pub fn batch(
    kind: RecordKind,
    records: &[Record],
    style: Style,
    max_records: usize,
    max_signed_bytes: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    Ok(batch_ranges(kind, records, style, max_records, max_signed_bytes)?
        .into_iter()
        .map(|(_, message)| message)
        .collect())
}

/// [`batch`], also telling which records (a range of indices into
/// `records`) each message holds, so a caller can record what it sent.
pub fn batch_ranges(
    kind: RecordKind,
    records: &[Record],
    style: Style,
    max_records: usize,
    max_signed_bytes: usize,
) -> Result<Vec<(std::ops::Range<usize>, Vec<u8>)>, Error> {
    let max_records = max_records.max(1);
    let (envelope, sep) = overhead(kind);
    let mut messages = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut first = 0;
    let mut len = envelope;
    for (index, record) in records.iter().enumerate() {
        let part = render_part(kind, record, style, index)?;
        let alone = signed_size_estimate(envelope + part.len());
        if alone > max_signed_bytes {
            return Err(Error::RecordTooLarge { index, size: alone, limit: max_signed_bytes });
        }
        let grown = len + part.len() + if parts.is_empty() { 0 } else { sep };
        if !parts.is_empty() && (parts.len() >= max_records || signed_size_estimate(grown) > max_signed_bytes) {
            messages.push((first..index, assemble(kind, &parts).into_bytes()));
            parts.clear();
            first = index;
            len = envelope;
        }
        len += part.len() + if parts.is_empty() { 0 } else { sep };
        parts.push(part);
    }
    if !parts.is_empty() {
        debug_assert_eq!(assemble(kind, &parts).len(), len);
        messages.push((first..records.len(), assemble(kind, &parts).into_bytes()));
    }
    Ok(messages)
}
