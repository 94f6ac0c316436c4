//! The ledger: SQLite (default) or PostgreSQL store of runs, per-project
//! checkpoints, record snapshots and message states, shared by extraction
//! and delivery. Filled in by issues #3 and #4.
