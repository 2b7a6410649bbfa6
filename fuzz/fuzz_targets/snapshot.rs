//! libFuzzer entry of the `snapshot` target: [`hsm_fuzz::snapshot`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::snapshot(data));
