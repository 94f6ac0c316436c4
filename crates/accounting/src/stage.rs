//! The stages of an accounting run, as the names of the tracing spans that cover them, so a
//! caller can tell where the CPU goes (`fedsite bench` charges thread CPU time to these spans).
//! A stage nested in another counts for itself only.

/// Reading OpenStack: requests, and decoding the listings as their pages arrive.
pub const LISTING: &str = "listing";
/// Building the records from what was read.
pub const BUILDING: &str = "building";
/// Comparing the records with the ledger and committing them.
pub const LEDGER: &str = "ledger";
/// Rendering the messages to spool and writing them.
pub const SPOOL: &str = "spool";

/// Every stage, in the order of a run.
pub const ALL: [&str; 4] = [LISTING, BUILDING, LEDGER, SPOOL];

/// The environment variable naming the file a run writes its CPU seconds by stage to
/// (`{"stage": seconds}`, fedsite's `stages` layer); `fedsite-bench` sets it on the runs it measures.
pub const CPU_ENV: &str = "FEDSITE_CPU_STAGES";
