//! cargo fuzz target `gocdb_xml`: the body is `fuzz_targets::gocdb_xml` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("gocdb_xml").expect("registered")(data));
