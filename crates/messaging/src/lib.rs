//! Delivery: the dirq QueueSimple spool (`dirq`), and later S/MIME signing,
//! the AMS client, sender and receiver (issue #4).

pub mod dirq;
pub mod smime;
