//! libFuzzer entry of the `node_config` target: [`hsm_fuzz::node_config`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::node_config(data));
