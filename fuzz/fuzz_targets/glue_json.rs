//! cargo fuzz target `glue_json`: the body is `fuzz_targets::glue_json` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("glue_json").expect("registered")(data));
