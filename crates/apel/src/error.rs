//! `apel::Error`: every way a record, a field or a message can be wrong.
//! Each variant names what was wrong (field or key, line or record, value).

use crate::RecordKind;

/// An APEL record, field or message failed validation or parsing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A field value breaks a rule (type, range, charset, length...).
    #[error("{field}: {reason} (value {value:?})")]
    InvalidValue {
        /// The field (APEL key).
        field: String,
        /// The value as given.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A mandatory field is absent or null.
    #[error("missing mandatory field {field}")]
    MissingField {
        /// The field (APEL key).
        field: String,
    },
    /// A key the loader does not know (`Unknown field: X` in APEL).
    #[error("unknown field: {key}")]
    UnknownField {
        /// The key as written.
        key: String,
    },
    /// A line that is not `Key: value`.
    #[error("line {line}: no ':' separator in {text:?}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// Wraps an error with the 1-based line of the message it occurred on.
    #[error("line {line}: {error}")]
    AtLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        error: Box<Error>,
    },
    /// Wraps an error with the 0-based index of the record in the message.
    #[error("record {index}: {error}")]
    InRecord {
        /// 0-based record index.
        index: usize,
        /// What is wrong with it.
        error: Box<Error>,
    },
    /// The message has a byte outside ASCII (SSM and the loader decode ASCII).
    #[error("non-ASCII byte 0x{byte:02x} at offset {offset} (line {line})")]
    NotAscii {
        /// Byte offset in the message.
        offset: usize,
        /// 1-based line number.
        line: usize,
        /// The byte.
        byte: u8,
    },
    /// The header / JSON `Type` / XML namespace is not a record type we know.
    #[error("message type not recognised: {0:?}")]
    UnknownMessageType(String),
    /// The message holds no record.
    #[error("message holds no records")]
    NoRecords,
    /// JSON syntax or shape error.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// XML syntax or shape error.
    #[error("invalid XML: {0}")]
    Xml(String),
    /// A record of another kind was given to a message of this kind.
    #[error("a {expected} message cannot hold a {found} record (record {index})")]
    WrongKind {
        /// The message's kind.
        expected: RecordKind,
        /// The record's kind.
        found: RecordKind,
        /// 0-based record index.
        index: usize,
    },
    /// One record alone exceeds the message size limit.
    #[error("record {index} alone is {size} bytes once signed and encoded, over the {limit} byte limit")]
    RecordTooLarge {
        /// 0-based record index.
        index: usize,
        /// Its size signed and encoded, bytes.
        size: usize,
        /// The message size limit, bytes.
        limit: usize,
    },
}

impl Error {
    pub(crate) fn invalid(field: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::InvalidValue { field: field.to_string(), value: value.to_string(), reason: reason.into() }
    }
    pub(crate) fn missing(field: &str) -> Self {
        Error::MissingField { field: field.to_string() }
    }
    pub(crate) fn at_line(self, line: usize) -> Self {
        Error::AtLine { line, error: Box::new(self) }
    }
    pub(crate) fn in_record(self, index: usize) -> Self {
        Error::InRecord { index, error: Box::new(self) }
    }
}
