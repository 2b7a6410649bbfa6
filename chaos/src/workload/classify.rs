//! What an SDK error means for the history: failed (the cluster certainly
//! did not apply it) or unknown (it may have, or may still).

use hsm_client::{Error, ErrorKind};

use crate::history::{Failure, Outcome};

/// What kind of operation a call was; it decides what an error means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A write through Raft: without an answer it may have applied (a
    /// lost answer), or may still (a proposal in the log).
    Write,
    /// A read or a signature: served from one replica, changes nothing.
    Read,
    /// A login: the attempt is written through Raft before the password
    /// is checked, and a success is written again (it resets the count of
    /// failures), so only a checked answer is certain.
    Login,
}

/// The message of a login whose password was checked and is wrong (or
/// whose user does not exist; this workload logs in only as users it
/// created).
const WRONG_PASSWORD: &str = "wrong user name or password";

/// The start of the message of the login whose wrong password locked the
/// user: it was checked, so it counts as a wrong password.
const WRONG_PASSWORD_NOW_LOCKED: &str = "wrong password;";

/// The outcome of a call of `class` that ended in `error`.
///
/// - A refusal naming a reason is failed: not found, permission denied,
///   locked, or other (conflict, invalid input, ...).
/// - A write refused as unauthenticated is unknown: the first attempt of a
///   password change may have applied, ending the very session its retry
///   then carries. An internal error of a write, and every error without an
///   answer (unavailable, deadline, protocol), are unknown too.
/// - A read that got no answer is failed (other): it changed nothing, and
///   no checker reads more into a read that failed.
/// - A login is a wrong password only when the node says it checked the
///   password: "wrong user name or password", or "wrong password; ... now
///   locked" (the fifth). Locked is failed; anything else (such as "the
///   account changed during login", after the success was written) is
///   unknown, because the failure count may have been reset.
pub(crate) fn outcome(class: Class, error: &Error) -> Outcome {
    let failed = |failure| Outcome::Failed { failure };
    let Error::Server(e) = error else {
        return match class {
            Class::Read => failed(Failure::Other(error.to_string())),
            Class::Write | Class::Login => Outcome::Unknown,
        };
    };
    let other = || failed(Failure::Other(format!("{}: {}", e.kind, e.message)));
    match (class, e.kind) {
        (Class::Login, ErrorKind::LoginFailed) if e.message == WRONG_PASSWORD => {
            failed(Failure::BadPassword)
        }
        (Class::Login, ErrorKind::Locked) if e.message.starts_with(WRONG_PASSWORD_NOW_LOCKED) => {
            failed(Failure::BadPassword)
        }
        (Class::Login, ErrorKind::Locked) => failed(Failure::Locked),
        (Class::Login, _) => Outcome::Unknown,
        (_, ErrorKind::NotFound) => failed(Failure::NotFound),
        (_, ErrorKind::PermissionDenied) => failed(Failure::Forbidden),
        (_, ErrorKind::Locked) => failed(Failure::Locked),
        (
            Class::Write,
            ErrorKind::Unauthenticated | ErrorKind::Unavailable | ErrorKind::Internal,
        ) => Outcome::Unknown,
        _ => other(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_client::ClientError;

    fn refused(kind: ErrorKind, message: &str) -> Error {
        Error::Server(ClientError::new(kind, message))
    }

    fn failure(outcome: Outcome) -> Option<Failure> {
        match outcome {
            Outcome::Failed { failure } => Some(failure),
            _ => None,
        }
    }

    #[test]
    fn refusals_fail_and_lost_answers_of_writes_are_unknown() {
        for class in [Class::Write, Class::Read] {
            let not_found = refused(ErrorKind::NotFound, "key 0x1 not found");
            assert_eq!(failure(outcome(class, &not_found)), Some(Failure::NotFound));
            let denied = refused(ErrorKind::PermissionDenied, "not the owner");
            assert_eq!(failure(outcome(class, &denied)), Some(Failure::Forbidden));
            let invalid = refused(ErrorKind::InvalidInput, "already shared");
            assert!(matches!(
                failure(outcome(class, &invalid)),
                Some(Failure::Other(m)) if m == "invalid-input: already shared"
            ));
        }
        for lost in [
            Error::DeadlineExceeded,
            Error::Unavailable { tried: Vec::new() },
            Error::Protocol("bad frame".into()),
            refused(ErrorKind::Unauthenticated, "session ended"),
            refused(ErrorKind::Internal, "disk"),
        ] {
            assert_eq!(outcome(Class::Write, &lost), Outcome::Unknown, "{lost}");
        }
        assert!(matches!(
            failure(outcome(Class::Read, &Error::DeadlineExceeded)),
            Some(Failure::Other(_))
        ));
        assert!(matches!(
            failure(outcome(
                Class::Read,
                &refused(ErrorKind::Unauthenticated, "session ended")
            )),
            Some(Failure::Other(_))
        ));
    }

    #[test]
    fn a_login_is_a_wrong_password_only_when_the_password_was_checked() {
        let wrong = refused(ErrorKind::LoginFailed, WRONG_PASSWORD);
        assert_eq!(
            failure(outcome(Class::Login, &wrong)),
            Some(Failure::BadPassword)
        );
        let fifth = refused(
            ErrorKind::Locked,
            "wrong password; user p1-lock0 is now locked",
        );
        assert_eq!(
            failure(outcome(Class::Login, &fifth)),
            Some(Failure::BadPassword)
        );
        let locked = refused(
            ErrorKind::Locked,
            "user p1-lock0 is locked after too many failed logins; a crypto officer must unlock it",
        );
        assert_eq!(
            failure(outcome(Class::Login, &locked)),
            Some(Failure::Locked)
        );
        let changed = refused(
            ErrorKind::LoginFailed,
            "the account changed during login; try again",
        );
        assert_eq!(outcome(Class::Login, &changed), Outcome::Unknown);
        assert_eq!(
            outcome(Class::Login, &Error::DeadlineExceeded),
            Outcome::Unknown
        );
    }
}
