//! cargo fuzz target `fedsite_toml`: the body is `fuzz_targets::fedsite_toml` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("fedsite_toml").expect("registered")(data));
