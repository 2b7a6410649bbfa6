//! libFuzzer entry of the `sealed_value` target: [`hsm_fuzz::sealed_value`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::sealed_value(data));
