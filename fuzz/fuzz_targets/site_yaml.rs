//! cargo fuzz target `site_yaml`: the body is `fuzz_targets::site_yaml` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("site_yaml").expect("registered")(data));
