//! cargo fuzz target `hepix_list`: the body is `fuzz_targets::hepix_list` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("hepix_list").expect("registered")(data));
