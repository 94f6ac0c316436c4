//! One module per subcommand.

pub mod accounting;
pub mod demo;
pub mod inventory;
pub mod sim;
