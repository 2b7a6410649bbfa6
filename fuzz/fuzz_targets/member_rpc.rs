//! libFuzzer entry of the `member_rpc` target: [`hsm_fuzz::member_rpc`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::member_rpc(data));
