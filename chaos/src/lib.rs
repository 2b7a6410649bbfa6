//! `hsm-chaos`: the chaos harness's history and checkers.
//!
//! A chaos run records every client operation with its invoke and complete
//! times and its outcome ([`history`]); the [`check`] module's checkers read
//! that history (and what each node reported at the end) and say whether a
//! correct cluster could have produced it. They are independent of the
//! transport and of how faults are made, so a simulated cluster can reuse
//! them. Each checker has known-bad histories in its tests that it must
//! flag.
//!
//! [`workload`] is one client process's operations through the SDK, and
//! [`run`] the runner (`hsm-chaos run`): hosts in network namespaces, the
//! cluster and clients inside them, the seeded faults, and the verdict.
//! docs/chaos.md says what a run does and what is not there yet.
//! [`deploy`] (`hsm-chaos deploy`) is the operator guide's deployment on
//! such hosts across zones, with its checks.

#![forbid(unsafe_code)]

pub mod check;
pub mod deploy;
pub mod history;
pub mod run;
pub mod timeline;
pub mod workload;
