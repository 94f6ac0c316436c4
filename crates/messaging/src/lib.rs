//! Delivery: the dirq QueueSimple spool (`dirq`), S/MIME signing/verification (`smime`),
//! the AMS REST client (`ams`), SSM's sender.cfg/receiver.cfg (`config`), the sender
//! (`sender`) and its quarantine directory (`quarantine`) and the receiver with its stores (`receiver`) (issue #4).

pub mod dirq;
pub mod smime;
pub mod ams;
pub mod config;
pub mod sender;
pub mod quarantine;
pub mod receiver;
