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
//! What is here so far: the history format and the checkers for lost
//! acknowledged writes, deleted keys used, ratchets going back,
//! revocation (unshare, password change) and lockout, and convergence,
//! with `hsm-chaos check DIR`. The runner that builds hosts in network
//! namespaces, injects faults and records the history is issue 12's next
//! step.

#![forbid(unsafe_code)]

pub mod check;
pub mod history;
