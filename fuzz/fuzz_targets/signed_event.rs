//! libFuzzer entry of the `signed_event` target: [`hsm_fuzz::signed_event`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::signed_event(data));
