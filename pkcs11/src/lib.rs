//! The PKCS#11 module of the HSM cluster: `libhsm_pkcs11.so`.
//!
//! Software that keeps its keys in an HSM through PKCS#11 (OpenSSL's
//! engine and providers, nginx, Java's SunPKCS11, pkcs11-tool, p11-kit)
//! loads this module and sees each configured cluster as a token: one slot
//! per cluster, logged in with `C_Login(CKU_USER, "username:password")`.
//! Every call goes through the Rust SDK, so it is balanced across the
//! nodes, and a node that fails mid-session is retried elsewhere within
//! the call's deadline instead of surfacing as an error. See
//! `docs/pkcs11.md` for configuration, functions, mechanisms and the
//! attribute mapping.
//!
//! Layout: the pure parts ([`objects`]: keys as PKCS#11 objects and their
//! attributes; [`templates`]: what a caller's template asks for;
//! [`mechanisms`]: what each mechanism becomes; [`public`]: public keys
//! and ECDSA signatures in PKCS#11's formats) are tested on their own.
//! [`module`] holds the state (sessions, operations, login) and the
//! functions in safe Rust; [`token`] is one cluster through the SDK; `ffi`
//! is the C boundary, the one place `unsafe` is allowed.
//!
//! Invariants: nothing panics across the C boundary (each function runs
//! under `catch_unwind`); no key material or password is written, logged
//! or kept past its use (the login's password is kept in memory, zeroized,
//! only to log in again when the cluster ends a session); the cluster's
//! rules (roles, key usage, one-way attributes) are the node's, never
//! re-decided here.

pub mod config;
pub mod driver;
#[allow(unsafe_code)]
mod ffi;
pub mod import;
pub mod mechanisms;
pub mod module;
pub mod objects;
pub mod public;
pub mod rv;
pub mod templates;
pub mod token;
