//! cargo fuzz target `oidc_json`: the body is `fuzz_targets::oidc_json` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("oidc_json").expect("registered")(data));
