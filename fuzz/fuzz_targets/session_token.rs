//! libFuzzer entry of the `session_token` target: [`hsm_fuzz::session_token`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::session_token(data));
