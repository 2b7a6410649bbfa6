//! The C boundary: every PKCS#11 function the module exports.
//!
//! Each function reads the caller's pointers into Rust values (checked
//! for null and bounded in length), calls [`crate::module`], and writes
//! the results back under PKCS#11's conventions (a null output buffer
//! asks the length; a short one gets `CKR_BUFFER_TOO_SMALL` and the
//! length). Each body runs under `catch_unwind`: a panic becomes
//! `CKR_GENERAL_ERROR`, never an unwind into C.
//!
//! Safety: the functions are called by PKCS#11 applications, which
//! promise what the standard requires of them: every pointer is null or
//! valid for the length given beside it, for the length of the call.
//! Nothing here keeps a caller's pointer past the call, and inputs are
//! copied before anything is written (a caller may pass one buffer as
//! both).
#![allow(clippy::missing_safety_doc)]
#![allow(missing_docs)]
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::mechanisms::Param;
use crate::module::{self, Out};
use crate::objects::Unreadable;
use crate::rv::Rv;
use crate::templates::Attr;

/// Longest attribute value or data buffer read from a caller.
const MAX_INPUT: usize = module::MAX_GATHERED;
/// Most attributes in one template.
const MAX_TEMPLATE: usize = 1024;

/// Runs `f`, turning its error or a panic into the return value.
fn guard(f: impl FnOnce() -> Result<(), Rv>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(Rv(rv))) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

fn len_of(n: CK_ULONG) -> Result<usize, Rv> {
    usize::try_from(n).map_err(|_| Rv(CKR_ARGUMENTS_BAD))
}

/// The caller's input buffer.
unsafe fn input<'a>(p: *const u8, n: CK_ULONG) -> Result<&'a [u8], Rv> {
    let n = len_of(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    if n > MAX_INPUT {
        return Err(Rv(CKR_DATA_LEN_RANGE));
    }
    Ok(std::slice::from_raw_parts(p, n))
}

/// Writes `value` to a non-null output pointer.
unsafe fn put<T>(p: *mut T, value: T) -> Result<(), Rv> {
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    p.write(value);
    Ok(())
}

/// The capacity of an output buffer: `None` for a null buffer (a length
/// query).
unsafe fn capacity(out: *const u8, out_len: *const CK_ULONG) -> Result<Option<usize>, Rv> {
    if out_len.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    if out.is_null() {
        Ok(None)
    } else {
        Ok(Some(len_of(*out_len)?))
    }
}

/// Writes an operation's output as PKCS#11 says.
unsafe fn deliver(o: Out, out: *mut u8, out_len: *mut CK_ULONG) -> Result<(), Rv> {
    match o {
        Out::Len(n) => put(out_len, n as CK_ULONG),
        Out::TooSmall(n) => {
            put(out_len, n as CK_ULONG)?;
            Err(Rv(CKR_BUFFER_TOO_SMALL))
        }
        Out::Bytes(bytes) => {
            if !bytes.is_empty() {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
            }
            put(out_len, bytes.len() as CK_ULONG)
        }
    }
}

/// A caller's template, copied.
unsafe fn template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Vec<Attr>, Rv> {
    let n = len_of(n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    if n > MAX_TEMPLATE {
        return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
    }
    std::slice::from_raw_parts(p, n)
        .iter()
        .map(|a| {
            Ok((
                a.type_,
                input(a.pValue as *const u8, a.ulValueLen)?.to_vec(),
            ))
        })
        .collect()
}

/// Zeroes the copied values of a template (it may hold key material).
fn scrub(template: &mut [Attr]) {
    for (_, v) in template {
        zeroize::Zeroize::zeroize(v);
    }
}

/// The caller's parameter as a `T`, if it is exactly one.
unsafe fn param_as<T: Copy>(m: &CK_MECHANISM) -> Option<T> {
    if m.pParameter.is_null() || len_of(m.ulParameterLen).ok()? != std::mem::size_of::<T>() {
        return None;
    }
    Some((m.pParameter as *const T).read_unaligned())
}

/// A caller's mechanism and its parameter, copied.
unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<(CK_MECHANISM_TYPE, Param), Rv> {
    if p.is_null() {
        return Err(Rv(CKR_ARGUMENTS_BAD));
    }
    let m = &*p;
    let bad = Rv(CKR_MECHANISM_PARAM_INVALID);
    let param = match m.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let pss: CK_RSA_PKCS_PSS_PARAMS = param_as(m).ok_or(bad)?;
            Param::Pss {
                hash: pss.hashAlg,
                mgf: pss.mgf,
                salt_len: pss.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            let oaep: CK_RSA_PKCS_OAEP_PARAMS = param_as(m).ok_or(bad)?;
            Param::Oaep {
                hash: oaep.hashAlg,
                mgf: oaep.mgf,
                source: oaep.source,
                label: input(oaep.pSourceData as *const u8, oaep.ulSourceDataLen)?.to_vec(),
            }
        }
        CKM_AES_GCM => {
            let gcm: CK_GCM_PARAMS = param_as(m).ok_or(bad)?;
            let iv_len = len_of(gcm.ulIvLen)?;
            let iv = input(gcm.pIv, gcm.ulIvLen)?.to_vec();
            Param::Gcm {
                iv_len,
                iv,
                aad: input(gcm.pAAD, gcm.ulAADLen)?.to_vec(),
                tag_bits: gcm.ulTagBits,
            }
        }
        CKM_ECDH1_DERIVE => {
            let ecdh: CK_ECDH1_DERIVE_PARAMS = param_as(m).ok_or(bad)?;
            Param::Ecdh {
                kdf: ecdh.kdf,
                shared: input(ecdh.pSharedData, ecdh.ulSharedDataLen)?.to_vec(),
                public: input(ecdh.pPublicData, ecdh.ulPublicDataLen)?.to_vec(),
            }
        }
        _ if m.pParameter.is_null() || m.ulParameterLen == 0 => Param::None,
        _ => Param::Other(input(m.pParameter as *const u8, m.ulParameterLen)?.to_vec()),
    };
    Ok((m.mechanism, param))
}

/// `text` in a blank-padded fixed field.
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, b) in out.iter_mut().zip(text.bytes()) {
        *o = b;
    }
    out
}

const VERSION: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
const LIBRARY_VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };
const MANUFACTURER: &str = "hsm-cluster";

pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        if !args.is_null() {
            let a = &*(args as *const CK_C_INITIALIZE_ARGS);
            if !a.pReserved.is_null() {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
            let fns = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            if fns.iter().any(|f| *f) && !fns.iter().all(|f| *f) {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
            // The module locks with the OS's primitives whatever the
            // application offers: it is thread safe either way, and the
            // application's own functions (offered without
            // CKF_OS_LOCKING_OK, as GnuTLS and p11-kit do) would add
            // nothing but calls back into it.
            // Without threads of its own the module runs its cluster calls
            // on the calling thread (GnuTLS asks for this).
            if a.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0 {
                return module::initialize(false);
            }
        }
        module::initialize(true)
    })
}

pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        module::finalize()
    })
}

pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    get_info(info, VERSION)
}

/// `C_GetInfo` as the PKCS#11 3.0 function list has it: the interface's
/// version.
unsafe extern "C" fn C_GetInfo_3_0(info: *mut CK_INFO) -> CK_RV {
    get_info(info, CK_VERSION { major: 3, minor: 0 })
}

unsafe fn get_info(info: *mut CK_INFO, version: CK_VERSION) -> CK_RV {
    guard(|| {
        module::get()?;
        put(
            info,
            CK_INFO {
                cryptokiVersion: version,
                manufacturerID: padded(MANUFACTURER),
                flags: 0,
                libraryDescription: padded("hsm-cluster PKCS#11 module"),
                libraryVersion: LIBRARY_VERSION,
            },
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| put(list, std::ptr::addr_of!(FUNCTIONS) as *mut CK_FUNCTION_LIST))
}

/// The interfaces `C_GetInterfaceList` names: PKCS#11 3.0 first (the
/// default), then 2.40; the same functions behind both.
struct Interfaces([CK_INTERFACE; 2]);

// The pointers are to statics that live as long as the module and are
// never written through.
unsafe impl Sync for Interfaces {}

/// The interface name PKCS#11 3.0 gives its own functions.
const INTERFACE_NAME: &[u8] = b"PKCS 11\0";

static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: std::ptr::addr_of!(FUNCTIONS_3_0) as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: std::ptr::addr_of!(FUNCTIONS) as *mut c_void,
        flags: 0,
    },
]);

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let all = &INTERFACES.0;
        if count.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if list.is_null() {
            return put(count, all.len() as CK_ULONG);
        }
        if len_of(*count)? < all.len() {
            put(count, all.len() as CK_ULONG)?;
            return Err(Rv(CKR_BUFFER_TOO_SMALL));
        }
        std::ptr::copy_nonoverlapping(all.as_ptr(), list, all.len());
        put(count, all.len() as CK_ULONG)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        if interface.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if !name.is_null() {
            let asked = std::ffi::CStr::from_ptr(name as *const std::ffi::c_char);
            if asked.to_bytes_with_nul() != INTERFACE_NAME {
                return Err(Rv(CKR_ARGUMENTS_BAD));
            }
        }
        let wanted = (!version.is_null()).then(|| *version);
        let found = INTERFACES.0.iter().find(|i| {
            let list_version = *(i.pFunctionList as *const CK_VERSION);
            i.flags & flags == flags
                && wanted
                    .is_none_or(|v| v.major == list_version.major && v.minor == list_version.minor)
        });
        match found {
            Some(i) => put(interface, i as *const CK_INTERFACE as *mut CK_INTERFACE),
            None => Err(Rv(CKR_ARGUMENTS_BAD)),
        }
    })
}

pub unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let slots = module::get()?.slots();
        if count.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if list.is_null() {
            return put(count, slots.len() as CK_ULONG);
        }
        if len_of(*count)? < slots.len() {
            put(count, slots.len() as CK_ULONG)?;
            return Err(Rv(CKR_BUFFER_TOO_SMALL));
        }
        std::ptr::copy_nonoverlapping(slots.as_ptr(), list, slots.len());
        put(count, slots.len() as CK_ULONG)
    })
}

pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let status = module::get()?.token_status(slot)?;
        put(
            info,
            CK_SLOT_INFO {
                slotDescription: padded(&format!("hsm-cluster {}", status.cluster_id)),
                manufacturerID: padded(MANUFACTURER),
                flags: CKF_TOKEN_PRESENT | CKF_HW_SLOT,
                hardwareVersion: LIBRARY_VERSION,
                firmwareVersion: LIBRARY_VERSION,
            },
        )
    })
}

pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let status = module::get()?.token_status(slot)?;
        put(
            info,
            CK_TOKEN_INFO {
                label: padded(&status.label),
                manufacturerID: padded(MANUFACTURER),
                model: padded("raft cluster"),
                serialNumber: padded(status.cluster_id.get(..16).unwrap_or(&status.cluster_id)),
                flags: CKF_RNG
                    | CKF_LOGIN_REQUIRED
                    | CKF_USER_PIN_INITIALIZED
                    | CKF_TOKEN_INITIALIZED,
                ulMaxSessionCount: module::MAX_SESSIONS as CK_ULONG,
                ulSessionCount: status.sessions as CK_ULONG,
                ulMaxRwSessionCount: module::MAX_SESSIONS as CK_ULONG,
                ulRwSessionCount: status.rw_sessions as CK_ULONG,
                // "user:password": a user name (up to 64) and a password.
                ulMaxPinLen: 1024,
                ulMinPinLen: 3,
                ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
                ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
                ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
                ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
                hardwareVersion: LIBRARY_VERSION,
                firmwareVersion: LIBRARY_VERSION,
                utcTime: padded(""),
            },
        )
    })
}

pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let all = module::get()?.mechanisms(slot)?;
        if count.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if list.is_null() {
            return put(count, all.len() as CK_ULONG);
        }
        if len_of(*count)? < all.len() {
            put(count, all.len() as CK_ULONG)?;
            return Err(Rv(CKR_BUFFER_TOO_SMALL));
        }
        std::ptr::copy_nonoverlapping(all.as_ptr(), list, all.len());
        put(count, all.len() as CK_ULONG)
    })
}

pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        let i = module::get()?.mechanism_info(slot, mechanism)?;
        put(
            info,
            CK_MECHANISM_INFO {
                ulMinKeySize: i.min_key,
                ulMaxKeySize: i.max_key,
                flags: i.flags,
            },
        )
    })
}

pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        if session.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let handle = module::get()?.open_session(slot, flags)?;
        put(session, handle)
    })
}

pub unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.close_session(session))
}

pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| module::get()?.close_all_sessions(Some(slot)))
}

pub unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        let i = module::get()?.session_info(session)?;
        put(
            info,
            CK_SESSION_INFO {
                slotID: i.slot,
                state: i.state,
                flags: i.flags,
                ulDeviceError: 0,
            },
        )
    })
}

pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let pin = input(pin, pin_len)?;
        m.login(session, user_type, pin)
    })
}

pub unsafe extern "C" fn C_LoginUser(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    username: *mut CK_UTF8CHAR,
    username_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let pin = input(pin, pin_len)?;
        let username = input(username, username_len)?;
        m.login_user(session, user_type, pin, username)
    })
}

pub unsafe extern "C" fn C_SessionCancel(session: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    guard(|| module::get()?.cancel(session, flags))
}

pub unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.logout(session))
}

pub unsafe extern "C" fn C_SetPIN(
    session: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        m.set_pin(session, input(old, old_len)?, input(new, new_len)?)
    })
}

pub unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if object.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let mut t = template(attrs, count)?;
        let made = m.create_object(session, &t);
        scrub(&mut t);
        put(object, made?)
    })
}

pub unsafe extern "C" fn C_DestroyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| module::get()?.destroy(session, object))
}

pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let n = len_of(count)?;
        if n > 0 && attrs.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if n > MAX_TEMPLATE {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let attrs: &mut [CK_ATTRIBUTE] = if n == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(attrs, n)
        };
        let types: Vec<_> = attrs.iter().map(|a| a.type_).collect();
        let values = m.attributes(session, object, &types)?;
        // Every attribute is answered; the result is the last problem met
        // (PKCS#11 allows any of them).
        let mut result = Ok(());
        for (a, v) in attrs.iter_mut().zip(values) {
            match v {
                Err(why) => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Rv(match why {
                        Unreadable::Invalid => CKR_ATTRIBUTE_TYPE_INVALID,
                        Unreadable::Sensitive => CKR_ATTRIBUTE_SENSITIVE,
                    }));
                }
                Ok(bytes) if a.pValue.is_null() => a.ulValueLen = bytes.len() as CK_ULONG,
                Ok(bytes) if len_of(a.ulValueLen)? < bytes.len() => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Rv(CKR_BUFFER_TOO_SMALL));
                }
                Ok(bytes) => {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), a.pValue as *mut u8, bytes.len());
                    a.ulValueLen = bytes.len() as CK_ULONG;
                }
            }
        }
        result
    })
}

pub unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let t = template(attrs, count)?;
        m.set_attributes(session, object, &t)
    })
}

pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let t = template(attrs, count)?;
        m.find_init(session, &t)
    })
}

pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let max = len_of(max)?;
        if count.is_null() || (objects.is_null() && max > 0) {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let found = m.find(session, max)?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len());
        }
        put(count, found.len() as CK_ULONG)
    })
}

pub unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::get()?.find_final(session))
}

unsafe fn cipher_init(
    session: CK_SESSION_HANDLE,
    decrypt: bool,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let (mechanism, param) = mechanism(mech)?;
        m.cipher_init(session, decrypt, mechanism, &param, key)
    })
}

unsafe fn cipher(
    session: CK_SESSION_HANDLE,
    decrypt: bool,
    data: Option<Vec<u8>>,
    out: *mut u8,
    out_len: *mut CK_ULONG,
) -> Result<(), Rv> {
    let m = module::get()?;
    let cap = capacity(out, out_len)?;
    let o = m.cipher(session, decrypt, data.as_deref(), cap)?;
    deliver(o, out, out_len)
}

pub unsafe extern "C" fn C_EncryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    cipher_init(session, false, mech, key)
}

pub unsafe extern "C" fn C_Encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // Copied first: the output may be the same buffer (in place).
        let data = input(data, data_len)?.to_vec();
        cipher(session, false, Some(data), out, out_len)
    })
}

pub unsafe extern "C" fn C_EncryptUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    _out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if out_len.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        m.cipher_update(session, false, input(data, data_len)?)?;
        put(out_len, 0)
    })
}

pub unsafe extern "C" fn C_EncryptFinal(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| cipher(session, false, None, out, out_len))
}

pub unsafe extern "C" fn C_DecryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    cipher_init(session, true, mech, key)
}

pub unsafe extern "C" fn C_Decrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let data = input(data, data_len)?.to_vec();
        cipher(session, true, Some(data), out, out_len)
    })
}

pub unsafe extern "C" fn C_DecryptUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    _out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if out_len.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        m.cipher_update(session, true, input(data, data_len)?)?;
        put(out_len, 0)
    })
}

pub unsafe extern "C" fn C_DecryptFinal(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| cipher(session, true, None, out, out_len))
}

pub unsafe extern "C" fn C_DigestInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let (mechanism, param) = mechanism(mech)?;
        if param != Param::None {
            return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
        }
        m.digest_init(session, mechanism)
    })
}

pub unsafe extern "C" fn C_Digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let cap = capacity(out, out_len)?;
        let o = m.digest(session, Some(input(data, data_len)?), cap)?;
        deliver(o, out, out_len)
    })
}

pub unsafe extern "C" fn C_DigestUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    guard(|| module::get()?.digest_update(session, input(data, data_len)?))
}

pub unsafe extern "C" fn C_DigestFinal(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let cap = capacity(out, out_len)?;
        let o = m.digest(session, None, cap)?;
        deliver(o, out, out_len)
    })
}

unsafe fn sign_init(
    session: CK_SESSION_HANDLE,
    verify: bool,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let (mechanism, param) = mechanism(mech)?;
        m.sign_init(session, verify, mechanism, &param, key)
    })
}

pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    sign_init(session, false, mech, key)
}

pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let cap = capacity(out, out_len)?;
        let o = m.sign(session, Some(input(data, data_len)?), cap)?;
        deliver(o, out, out_len)
    })
}

pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    guard(|| module::get()?.sign_update(session, false, input(data, data_len)?))
}

pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let cap = capacity(out, out_len)?;
        let o = m.sign(session, None, cap)?;
        deliver(o, out, out_len)
    })
}

pub unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    sign_init(session, true, mech, key)
}

pub unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        m.verify(session, Some(input(data, data_len)?), input(sig, sig_len)?)
    })
}

pub unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    guard(|| module::get()?.sign_update(session, true, input(data, data_len)?))
}

pub unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| module::get()?.verify(session, None, input(sig, sig_len)?))
}

pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if key.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let (mechanism, _) = mechanism(mech)?;
        let t = template(attrs, count)?;
        put(key, m.generate_key(session, mechanism, &t)?)
    })
}

pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    public: *mut CK_ATTRIBUTE,
    public_count: CK_ULONG,
    private: *mut CK_ATTRIBUTE,
    private_count: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if public_key.is_null() || private_key.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let (mechanism, _) = mechanism(mech)?;
        let public = template(public, public_count)?;
        let private = template(private, private_count)?;
        let (pubh, privh) = m.generate_key_pair(session, mechanism, &public, &private)?;
        put(public_key, pubh)?;
        put(private_key, privh)
    })
}

pub unsafe extern "C" fn C_WrapKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let (mechanism, param) = mechanism(mech)?;
        let cap = capacity(out, out_len)?;
        let o = m.wrap_key(session, mechanism, &param, wrapping, key, cap)?;
        deliver(o, out, out_len)
    })
}

pub unsafe extern "C" fn C_UnwrapKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if key.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let (mechanism, param) = mechanism(mech)?;
        let wrapped = input(wrapped, wrapped_len)?;
        let t = template(attrs, count)?;
        put(
            key,
            m.unwrap_key(session, mechanism, &param, unwrapping, wrapped, &t)?,
        )
    })
}

pub unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        if key.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let (mechanism, param) = mechanism(mech)?;
        let t = template(attrs, count)?;
        put(key, m.derive_key(session, mechanism, &param, base, &t)?)
    })
}

pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    _seed: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        module::get()?.session_info(session)?;
        Err(Rv(CKR_RANDOM_SEED_NOT_SUPPORTED))
    })
}

pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module::get()?;
        let len = len_of(len)?;
        if len == 0 {
            return Ok(());
        }
        if out.is_null() {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        if len > MAX_INPUT {
            return Err(Rv(CKR_ARGUMENTS_BAD));
        }
        let bytes = m.random(session, len)?;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
        Ok(())
    })
}

pub unsafe extern "C" fn C_GetFunctionStatus(_session: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

pub unsafe extern "C" fn C_CancelFunction(_session: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

/// Functions the token does not offer: each answers
/// `CKR_FUNCTION_NOT_SUPPORTED` (after checking the module is
/// initialised).
macro_rules! not_supported {
    ($($name:ident($($ty:ty),*);)*) => {
        $(
            pub unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
                guard(|| {
                    module::get()?;
                    Err(Rv(CKR_FUNCTION_NOT_SUPPORTED))
                })
            }
        )*
    };
}

not_supported! {
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR);
    C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG);
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
    // PKCS#11 3.0's message-based functions (AEAD per message, signing
    // many messages under one init): the single-part functions do this.
    C_MessageEncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_EncryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_EncryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageEncryptFinal(CK_SESSION_HANDLE);
    C_MessageDecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_DecryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_DecryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageDecryptFinal(CK_SESSION_HANDLE);
    C_MessageSignInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_SignMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_MessageSignFinal(CK_SESSION_HANDLE);
    C_MessageVerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_VerifyMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_MessageVerifyFinal(CK_SESSION_HANDLE);
}

/// The two function lists PKCS#11 hands out from one list of the
/// functions both have: [`FUNCTIONS`] (2.40, `C_GetFunctionList`) and
/// `FUNCTIONS_3_0` (PKCS#11 3.0's, which adds `C_LoginUser`,
/// `C_SessionCancel` and the interface and message functions). Each
/// list's `C_GetInfo` says its own version.
macro_rules! function_lists {
    ($($f:ident,)*) => {
        static FUNCTIONS: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
            version: VERSION,
            C_GetInfo: Some(C_GetInfo),
            $($f: Some($f),)*
        };

        static FUNCTIONS_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
            version: CK_VERSION { major: 3, minor: 0 },
            C_GetInfo: Some(C_GetInfo_3_0),
            $($f: Some($f),)*
        C_GetInterfaceList: Some(C_GetInterfaceList),
        C_GetInterface: Some(C_GetInterface),
        C_LoginUser: Some(C_LoginUser),
        C_SessionCancel: Some(C_SessionCancel),
        C_MessageEncryptInit: Some(C_MessageEncryptInit),
        C_EncryptMessage: Some(C_EncryptMessage),
        C_EncryptMessageBegin: Some(C_EncryptMessageBegin),
        C_EncryptMessageNext: Some(C_EncryptMessageNext),
        C_MessageEncryptFinal: Some(C_MessageEncryptFinal),
        C_MessageDecryptInit: Some(C_MessageDecryptInit),
        C_DecryptMessage: Some(C_DecryptMessage),
        C_DecryptMessageBegin: Some(C_DecryptMessageBegin),
        C_DecryptMessageNext: Some(C_DecryptMessageNext),
        C_MessageDecryptFinal: Some(C_MessageDecryptFinal),
        C_MessageSignInit: Some(C_MessageSignInit),
        C_SignMessage: Some(C_SignMessage),
        C_SignMessageBegin: Some(C_SignMessageBegin),
        C_SignMessageNext: Some(C_SignMessageNext),
        C_MessageSignFinal: Some(C_MessageSignFinal),
        C_MessageVerifyInit: Some(C_MessageVerifyInit),
        C_VerifyMessage: Some(C_VerifyMessage),
        C_VerifyMessageBegin: Some(C_VerifyMessageBegin),
        C_VerifyMessageNext: Some(C_VerifyMessageNext),
        C_MessageVerifyFinal: Some(C_MessageVerifyFinal),
        };
    };
}

function_lists! {
    C_Initialize,
    C_Finalize,
    C_GetFunctionList,
    C_GetSlotList,
    C_GetSlotInfo,
    C_GetTokenInfo,
    C_GetMechanismList,
    C_GetMechanismInfo,
    C_InitToken,
    C_InitPIN,
    C_SetPIN,
    C_OpenSession,
    C_CloseSession,
    C_CloseAllSessions,
    C_GetSessionInfo,
    C_GetOperationState,
    C_SetOperationState,
    C_Login,
    C_Logout,
    C_CreateObject,
    C_CopyObject,
    C_DestroyObject,
    C_GetObjectSize,
    C_GetAttributeValue,
    C_SetAttributeValue,
    C_FindObjectsInit,
    C_FindObjects,
    C_FindObjectsFinal,
    C_EncryptInit,
    C_Encrypt,
    C_EncryptUpdate,
    C_EncryptFinal,
    C_DecryptInit,
    C_Decrypt,
    C_DecryptUpdate,
    C_DecryptFinal,
    C_DigestInit,
    C_Digest,
    C_DigestUpdate,
    C_DigestKey,
    C_DigestFinal,
    C_SignInit,
    C_Sign,
    C_SignUpdate,
    C_SignFinal,
    C_SignRecoverInit,
    C_SignRecover,
    C_VerifyInit,
    C_Verify,
    C_VerifyUpdate,
    C_VerifyFinal,
    C_VerifyRecoverInit,
    C_VerifyRecover,
    C_DigestEncryptUpdate,
    C_DecryptDigestUpdate,
    C_SignEncryptUpdate,
    C_DecryptVerifyUpdate,
    C_GenerateKey,
    C_GenerateKeyPair,
    C_WrapKey,
    C_UnwrapKey,
    C_DeriveKey,
    C_SeedRandom,
    C_GenerateRandom,
    C_GetFunctionStatus,
    C_CancelFunction,
    C_WaitForSlotEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe fn version_of(i: *mut CK_INTERFACE) -> (u8, u8) {
        let v = *((*i).pFunctionList as *const CK_VERSION);
        (v.major, v.minor)
    }

    #[test]
    fn interfaces_are_3_0_by_default_and_2_40_on_request() {
        unsafe {
            let mut found: *mut CK_INTERFACE = std::ptr::null_mut();
            assert_eq!(
                C_GetInterface(std::ptr::null_mut(), std::ptr::null_mut(), &mut found, 0),
                CKR_OK
            );
            assert_eq!(version_of(found), (3, 0));
            let mut name = *b"PKCS 11\0";
            let mut v240 = CK_VERSION {
                major: 2,
                minor: 40,
            };
            assert_eq!(
                C_GetInterface(name.as_mut_ptr(), &mut v240, &mut found, 0),
                CKR_OK
            );
            assert_eq!(version_of(found), (2, 40));
            // The 2.40 list is the one C_GetFunctionList hands out.
            let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
            assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
            assert_eq!((*found).pFunctionList, list as *mut c_void);

            let mut other = *b"PKCS 12\0";
            assert_eq!(
                C_GetInterface(other.as_mut_ptr(), std::ptr::null_mut(), &mut found, 0),
                CKR_ARGUMENTS_BAD
            );
            let mut v31 = CK_VERSION { major: 3, minor: 1 };
            assert_eq!(
                C_GetInterface(std::ptr::null_mut(), &mut v31, &mut found, 0),
                CKR_ARGUMENTS_BAD
            );
            // Not fork-safe in 3.0's sense: a child initializes again.
            assert_eq!(
                C_GetInterface(
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut found,
                    CKF_INTERFACE_FORK_SAFE
                ),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                C_GetInterface(
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    0
                ),
                CKR_ARGUMENTS_BAD
            );
        }
    }

    #[test]
    fn the_interface_list_asks_for_room_as_every_list_does() {
        unsafe {
            let mut n: CK_ULONG = 0;
            assert_eq!(C_GetInterfaceList(std::ptr::null_mut(), &mut n), CKR_OK);
            assert_eq!(n, 2);
            let mut one = [CK_INTERFACE {
                pInterfaceName: std::ptr::null_mut(),
                pFunctionList: std::ptr::null_mut(),
                flags: 0,
            }; 2];
            let mut short: CK_ULONG = 1;
            assert_eq!(
                C_GetInterfaceList(one.as_mut_ptr(), &mut short),
                CKR_BUFFER_TOO_SMALL
            );
            assert_eq!(short, 2);
            assert_eq!(C_GetInterfaceList(one.as_mut_ptr(), &mut n), CKR_OK);
            for i in &one {
                let name = std::ffi::CStr::from_ptr(i.pInterfaceName as *const std::ffi::c_char);
                assert_eq!(name.to_bytes(), b"PKCS 11");
            }
            assert_eq!(
                C_GetInterfaceList(std::ptr::null_mut(), std::ptr::null_mut()),
                CKR_ARGUMENTS_BAD
            );
        }
    }
}
