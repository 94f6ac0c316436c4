//! Delivery: the dirq QueueSimple spool (`dirq`), S/MIME signing/verification (`smime`),
//! the AMS REST client (`ams`); later the sender and receiver (issue #4).

pub mod dirq;
pub mod smime;
pub mod ams;
