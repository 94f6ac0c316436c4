//! cargo fuzz target `smime`: the body is `fuzz_targets::smime` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("smime").expect("registered")(data));
