//! libFuzzer entry of the `client_config` target: [`hsm_fuzz::client_config`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::client_config(data));
