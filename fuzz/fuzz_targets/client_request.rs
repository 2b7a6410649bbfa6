//! libFuzzer entry of the `client_request` target: [`hsm_fuzz::client_request`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::client_request(data));
