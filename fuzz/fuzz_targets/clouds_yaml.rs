//! cargo fuzz target `clouds_yaml`: the body is `fuzz_targets::clouds_yaml` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("clouds_yaml").expect("registered")(data));
