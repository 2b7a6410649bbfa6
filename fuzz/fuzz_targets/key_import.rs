//! libFuzzer entry of the `key_import` target: [`hsm_fuzz::key_import`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::key_import(data));
