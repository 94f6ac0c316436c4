//! cargo fuzz target `openstack_json`: the body is `fuzz_targets::openstack_json` (crates/fuzz-targets).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::target("openstack_json").expect("registered")(data));
