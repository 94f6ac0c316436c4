//! One module per subcommand.

pub mod demo;
pub mod inventory;
pub mod sim;
