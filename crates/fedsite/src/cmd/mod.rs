//! One module per subcommand.

pub mod accounting;
pub mod bench;
pub mod demo;
pub mod inventory;
pub mod receive;
pub mod send;
pub mod sim;
pub mod spool;
