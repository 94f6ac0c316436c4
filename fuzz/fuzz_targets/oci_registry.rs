//! cargo fuzz target `oci_registry`: the body is `fuzz_targets::oci_registry` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("oci_registry").expect("registered")(data));
