//! One module per subcommand.

pub mod accounting;
pub mod demo;
pub mod inventory;
pub mod receive;
pub mod report;
pub mod send;
pub mod serve;
pub mod sim;
pub mod spool;
