//! cargo fuzz target `ssm_cfg`: the body is `fuzz_targets::ssm_cfg` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("ssm_cfg").expect("registered")(data));
