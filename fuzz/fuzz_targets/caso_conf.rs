//! cargo fuzz target `caso_conf`: the body is `fuzz_targets::caso_conf` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("caso_conf").expect("registered")(data));
