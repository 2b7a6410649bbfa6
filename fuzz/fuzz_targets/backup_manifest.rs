//! libFuzzer entry of the `backup_manifest` target: [`hsm_fuzz::backup_manifest`].
#![no_main]
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hsm_fuzz::backup_manifest(data));
