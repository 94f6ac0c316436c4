//! The `fedsite` command line: parses arguments and wires the library
//! crates together. PLACEHOLDER: being written.

fn main() {}
