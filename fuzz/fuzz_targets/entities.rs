//! libFuzzer entry of the `entities` target: [`hsm_fuzz::entities`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::entities(data));
