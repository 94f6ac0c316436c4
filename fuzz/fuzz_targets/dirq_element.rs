//! cargo fuzz target `dirq_element`: the body is `fuzz_targets::dirq_element` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("dirq_element").expect("registered")(data));
