//! cargo fuzz target `apel_message`: the body is `fuzz_targets::apel_message` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("apel_message").expect("registered")(data));
