//! `hsm`: the command line of the HSM cluster, modelled on the AWS CloudHSM
//! CLI, built on the `hsm-client` SDK.
//!
//! Each invocation runs one command. Commands that need a session log in
//! first (user from `--username`/`HSM_USER`, password from `HSM_PASSWORD`
//! or a no-echo prompt in a terminal) and keep the token in memory only.
//! Output is JSON (`{"error_code": 0, "data": {...}}`) or, with
//! `--output table`, text for people. Exit codes: 0 ok, 1 other, 2 usage,
//! 3 authentication/permission/locked, 4 not found/conflict/invalid input,
//! 5 cluster unavailable.
//!
//! Invariant: a client only. It depends on the SDK and the wire types, never
//! on node, storage or consensus code; passwords, tokens and plaintext are
//! never printed except the plaintext a command was asked to output.

#![forbid(unsafe_code)]

mod approval;
mod args;
mod cmd;
mod error;
mod filter;
mod io;
mod keys;
mod output;
mod session;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::Cli;
use crate::error::{Class, CliError};
use crate::output::{print_error, print_success};
use crate::session::Context;

fn main() -> ExitCode {
    // clap prints usage mistakes itself and exits with code 2 (0 for
    // --help and --version).
    let cli = Cli::parse();
    let format = cli.output;
    let ctx = Context {
        cluster: cli.cluster.clone(),
        timeout: Duration::from_secs(cli.timeout_secs),
        username: cli.username.clone(),
        mfa_key: cli.mfa_key.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = CliError::new(
                Class::Other,
                "other",
                format!("cannot start the runtime: {e}"),
            );
            print_error(format, &err);
            return ExitCode::from(err.class.exit_code());
        }
    };
    let result = runtime.block_on(cmd::run(&ctx, cli.command));
    match result {
        Ok(outcome) => {
            print_success(format, &outcome);
            ExitCode::SUCCESS
        }
        Err(err) => {
            print_error(format, &err);
            ExitCode::from(err.class.exit_code())
        }
    }
}
