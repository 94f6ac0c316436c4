//! A site's own reporting, read from its ledger, spool and run reports: the usage report
//! (`report`: what is counted per VO and month, docs/report.md, and its one HTML page) and the
//! Prometheus metrics (`metrics`: names, labels and values of the text exposition format,
//! docs/metrics.md). The binary only calls these and writes their output.
#![warn(missing_docs)]

pub mod metrics;
pub mod report;

pub use metrics::{Metrics, MetricsError, Stage};
pub use report::{ReportData, ReportError, Usage};
