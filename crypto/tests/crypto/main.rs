//! Tests of `hsm-crypto`: round trips, published vectors, interoperability
//! with the OpenSSL 3 command line, and error behaviour. One binary, so
//! each RSA key size is generated once.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod errors;
mod fuzz;
mod interop;
mod roundtrip;
mod separation;
mod vectors;
