//! Return values: the SDK's errors as the `CKR_*` codes PKCS#11 names for
//! each situation.

use cryptoki_sys::*;
use hsm_client::Error;
use hsm_proto::client::ErrorKind;

/// A `CK_RV` other than `CKR_OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rv(pub CK_RV);

impl From<CK_RV> for Rv {
    fn from(rv: CK_RV) -> Rv {
        Rv(rv)
    }
}

/// What a failed cluster call was doing, which decides its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// Using a key (sign, verify, encrypt, decrypt).
    KeyUse,
    /// Reading, changing or destroying an object.
    Object,
    /// Making a key (generate, import).
    Making,
    /// Anything else (random, listing).
    Other,
}

impl Rv {
    /// The code of a failed cluster call.
    pub fn of(e: &Error, doing: Doing) -> Rv {
        let Some(kind) = e.kind() else {
            // Unreachable, out of time, or an answer that makes no sense:
            // the device failed this call.
            return Rv(CKR_DEVICE_ERROR);
        };
        Rv(match (kind, doing) {
            (ErrorKind::Unauthenticated, _) => CKR_USER_NOT_LOGGED_IN,
            (ErrorKind::LoginFailed, _) => CKR_PIN_INCORRECT,
            (ErrorKind::Locked, _) => CKR_PIN_LOCKED,
            (ErrorKind::NotActivated, _) => CKR_USER_PIN_NOT_INITIALIZED,
            (ErrorKind::PermissionDenied, Doing::KeyUse) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            (ErrorKind::PermissionDenied, Doing::Object) => CKR_ACTION_PROHIBITED,
            (ErrorKind::PermissionDenied, _) => CKR_USER_TYPE_INVALID,
            (ErrorKind::NotFound, Doing::KeyUse) => CKR_KEY_HANDLE_INVALID,
            (ErrorKind::NotFound, _) => CKR_OBJECT_HANDLE_INVALID,
            (ErrorKind::Conflict | ErrorKind::InvalidInput, Doing::Making) => {
                CKR_TEMPLATE_INCONSISTENT
            }
            (ErrorKind::InvalidInput, Doing::KeyUse) => CKR_DATA_INVALID,
            (ErrorKind::InvalidInput, Doing::Object) => CKR_ATTRIBUTE_VALUE_INVALID,
            (ErrorKind::Conflict | ErrorKind::InvalidInput, _) => CKR_FUNCTION_FAILED,
            (ErrorKind::Unavailable | ErrorKind::Damaged | ErrorKind::Internal, _) => {
                CKR_DEVICE_ERROR
            }
        })
    }

    /// The code of a failed login.
    pub fn of_login(e: &Error) -> Rv {
        Rv::of(e, Doing::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_proto::client::ClientError;

    fn server(kind: ErrorKind) -> Error {
        Error::Server(ClientError::new(kind, "x"))
    }

    #[test]
    fn refusals_become_the_codes_pkcs11_names() {
        assert_eq!(
            Rv::of(&server(ErrorKind::PermissionDenied), Doing::KeyUse),
            Rv(CKR_KEY_FUNCTION_NOT_PERMITTED)
        );
        assert_eq!(
            Rv::of(&server(ErrorKind::NotFound), Doing::KeyUse),
            Rv(CKR_KEY_HANDLE_INVALID)
        );
        assert_eq!(
            Rv::of(&server(ErrorKind::NotFound), Doing::Object),
            Rv(CKR_OBJECT_HANDLE_INVALID)
        );
        assert_eq!(
            Rv::of_login(&server(ErrorKind::LoginFailed)),
            Rv(CKR_PIN_INCORRECT)
        );
        assert_eq!(Rv::of_login(&server(ErrorKind::Locked)), Rv(CKR_PIN_LOCKED));
        assert_eq!(
            Rv::of(&Error::DeadlineExceeded, Doing::KeyUse),
            Rv(CKR_DEVICE_ERROR)
        );
        assert_eq!(
            Rv::of(&Error::Unavailable { tried: Vec::new() }, Doing::Other),
            Rv(CKR_DEVICE_ERROR)
        );
    }
}
