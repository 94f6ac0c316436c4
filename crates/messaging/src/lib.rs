//! Delivery: the dirq QueueSimple spool (`dirq`), S/MIME signing/verification (the `smime`
//! crate, re-exported here),
//! the AMS REST client (`ams`), SSM's sender.cfg/receiver.cfg (`config`), the sender
//! (`sender`) and its quarantine directory (`quarantine`) and the receiver with its stores (`receiver`) (issue #4).

pub mod ams;
pub mod config;
pub mod dirq;
pub mod quarantine;
pub mod receiver;
pub mod sender;

/// S/MIME lives in its own crate (so image sync and the site check need not pull in AMS, dirq
/// and SQLite); re-exported for callers that still say `messaging::smime`.
pub use smime;
