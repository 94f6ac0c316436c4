//! cargo fuzz target `sitecheck_input`: the body is `fuzz_targets::sitecheck_input` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("sitecheck_input").expect("registered")(data));
