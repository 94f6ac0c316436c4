//! One module per subcommand.

pub mod accounting;
pub mod check;
pub mod demo;
pub mod images;
pub mod info;
pub mod inventory;
pub mod keystone;
pub mod receive;
pub mod send;
pub mod sim;
pub mod spool;
