//! cargo fuzz target `dirq_name`: the body is `fuzz_targets::dirq_name` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("dirq_name").expect("registered")(data));
