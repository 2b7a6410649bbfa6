//! The parts of the `hsm` command line that other crates reach: the reader
//! of private key files (`hsm key import`), which the fuzz target
//! `pem_key_file` drives. The command itself is `src/main.rs`.

#![forbid(unsafe_code)]

pub mod pem;
