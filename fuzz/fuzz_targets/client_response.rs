//! libFuzzer entry of the `client_response` target: [`hsm_fuzz::client_response`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::client_response(data));
