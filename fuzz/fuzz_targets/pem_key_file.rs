//! libFuzzer entry of the `pem_key_file` target: [`hsm_fuzz::pem_key_file`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::pem_key_file(data));
