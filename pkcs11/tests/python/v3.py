#!/usr/bin/env python3
"""Load the hsm-cluster PKCS#11 module with ctypes as a PKCS#11 3.0
application does (C_GetInterfaceList, C_GetInterface), and use the 3.0
functions it serves: C_LoginUser and C_SessionCancel.

Environment: PKCS11_MODULE (the module), PKCS11_USER, PKCS11_PASSWORD,
and the module's own (HSM_CLUSTER). Prints one line per check and
"v3 ok" at the end; exits non-zero at the first failure.
"""
import ctypes as C
import os
import sys

ULONG = C.c_ulong

# The PKCS#11 3.0 function list, in the standard's order.
FUNCTIONS = """Initialize Finalize GetInfo GetFunctionList GetSlotList GetSlotInfo
GetTokenInfo GetMechanismList GetMechanismInfo InitToken InitPIN SetPIN
OpenSession CloseSession CloseAllSessions GetSessionInfo GetOperationState
SetOperationState Login Logout CreateObject CopyObject DestroyObject
GetObjectSize GetAttributeValue SetAttributeValue FindObjectsInit FindObjects
FindObjectsFinal EncryptInit Encrypt EncryptUpdate EncryptFinal DecryptInit
Decrypt DecryptUpdate DecryptFinal DigestInit Digest DigestUpdate DigestKey
DigestFinal SignInit Sign SignUpdate SignFinal SignRecoverInit SignRecover
VerifyInit Verify VerifyUpdate VerifyFinal VerifyRecoverInit VerifyRecover
DigestEncryptUpdate DecryptDigestUpdate SignEncryptUpdate DecryptVerifyUpdate
GenerateKey GenerateKeyPair WrapKey UnwrapKey DeriveKey SeedRandom
GenerateRandom GetFunctionStatus CancelFunction WaitForSlotEvent
GetInterfaceList GetInterface LoginUser SessionCancel MessageEncryptInit
EncryptMessage EncryptMessageBegin EncryptMessageNext MessageEncryptFinal
MessageDecryptInit DecryptMessage DecryptMessageBegin DecryptMessageNext
MessageDecryptFinal MessageSignInit SignMessage SignMessageBegin
SignMessageNext MessageSignFinal MessageVerifyInit VerifyMessage
VerifyMessageBegin VerifyMessageNext MessageVerifyFinal""".split()

CKR_OK = 0
CKR_ARGUMENTS_BAD = 0x7
CKR_FUNCTION_NOT_SUPPORTED = 0x54
CKR_OPERATION_NOT_INITIALIZED = 0x91
CKR_PIN_INCORRECT = 0xA0
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_USER_NOT_LOGGED_IN = 0x101
CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKF_FIND_OBJECTS = 0x40
CKU_USER = 1


class Version(C.Structure):
    _fields_ = [("major", C.c_ubyte), ("minor", C.c_ubyte)]


class FunctionList(C.Structure):
    _fields_ = [("version", Version)] + [(n, C.c_void_p) for n in FUNCTIONS]


class Interface(C.Structure):
    _fields_ = [("name", C.c_char_p), ("functions", C.c_void_p), ("flags", ULONG)]


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def expect(what, rv, want):
    if rv != want:
        fail(f"{what}: 0x{rv:x}, expected 0x{want:x}")
    print(f"{what}: ok")


def function(functions, name, *argtypes):
    f = C.CFUNCTYPE(ULONG, *argtypes)(getattr(functions, name))
    return f


def main():
    lib = C.CDLL(os.environ["PKCS11_MODULE"])
    user = os.environ["PKCS11_USER"].encode()
    password = os.environ["PKCS11_PASSWORD"].encode()

    get_list = lib.C_GetInterfaceList
    get_list.argtypes = [C.POINTER(Interface), C.POINTER(ULONG)]
    get_list.restype = ULONG
    count = ULONG(0)
    expect("C_GetInterfaceList count", get_list(None, C.byref(count)), CKR_OK)
    if count.value < 1:
        fail("no interfaces")
    small = ULONG(0)
    expect("C_GetInterfaceList short buffer",
           get_list((Interface * 1)(), C.byref(small)), 0x150)
    interfaces = (Interface * count.value)()
    expect("C_GetInterfaceList", get_list(interfaces, C.byref(count)), CKR_OK)
    versions = []
    for i in interfaces:
        if i.name != b"PKCS 11":
            fail(f"interface name {i.name!r}")
        v = C.cast(i.functions, C.POINTER(Version)).contents
        versions.append((v.major, v.minor))
    print(f"interfaces: {versions}")
    if (3, 0) not in versions or (2, 40) not in versions:
        fail(f"versions {versions}")

    get = lib.C_GetInterface
    get.argtypes = [C.c_char_p, C.POINTER(Version), C.POINTER(C.POINTER(Interface)), ULONG]
    get.restype = ULONG
    found = C.POINTER(Interface)()
    expect("C_GetInterface default", get(None, None, C.byref(found), 0), CKR_OK)
    functions = C.cast(found.contents.functions, C.POINTER(FunctionList)).contents
    if (functions.version.major, functions.version.minor) != (3, 0):
        fail("the default interface is not 3.0")
    old = C.POINTER(Interface)()
    expect("C_GetInterface 2.40",
           get(b"PKCS 11", C.byref(Version(2, 40)), C.byref(old), 0), CKR_OK)
    v = C.cast(old.contents.functions, C.POINTER(Version)).contents
    if (v.major, v.minor) != (2, 40):
        fail("asked for 2.40, got another")
    expect("C_GetInterface unknown name",
           get(b"Vendor X", None, C.byref(old), 0), CKR_ARGUMENTS_BAD)
    expect("C_GetInterface unknown version",
           get(None, C.byref(Version(9, 9)), C.byref(old), 0), CKR_ARGUMENTS_BAD)

    p = C.c_void_p
    initialize = function(functions, "Initialize", p)
    finalize = function(functions, "Finalize", p)
    slots = function(functions, "GetSlotList", C.c_ubyte, C.POINTER(ULONG), C.POINTER(ULONG))
    open_session = function(functions, "OpenSession", ULONG, ULONG, p, p, C.POINTER(ULONG))
    login_user = function(functions, "LoginUser", ULONG, ULONG, C.c_char_p, ULONG,
                          C.c_char_p, ULONG)
    logout = function(functions, "Logout", ULONG)
    random = function(functions, "GenerateRandom", ULONG, C.c_char_p, ULONG)
    find_init = function(functions, "FindObjectsInit", ULONG, p, ULONG)
    find = function(functions, "FindObjects", ULONG, C.POINTER(ULONG), ULONG, C.POINTER(ULONG))
    cancel = function(functions, "SessionCancel", ULONG, ULONG)
    sign_message = function(functions, "MessageSignInit", ULONG, p, ULONG)

    expect("C_Initialize", initialize(None), CKR_OK)

    class Info(C.Structure):
        _fields_ = [("cryptoki", Version), ("manufacturer", C.c_char * 32),
                    ("flags", ULONG), ("description", C.c_char * 32), ("library", Version)]
    info = Info()
    expect("C_GetInfo", function(functions, "GetInfo", C.POINTER(Info))(C.byref(info)), CKR_OK)
    if (info.cryptoki.major, info.cryptoki.minor) != (3, 0):
        fail(f"the 3.0 list's C_GetInfo says {info.cryptoki.major}.{info.cryptoki.minor}")
    slot = ULONG(0)
    n = ULONG(1)
    expect("C_GetSlotList", slots(1, C.byref(slot), C.byref(n)), CKR_OK)
    session = ULONG(0)
    expect("C_OpenSession",
           open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, None, None, C.byref(session)),
           CKR_OK)
    buf = C.create_string_buffer(16)
    expect("C_GenerateRandom before login", random(session, buf, 16), CKR_USER_NOT_LOGGED_IN)
    expect("C_LoginUser wrong password",
           login_user(session, CKU_USER, b"not-the-password", 16, user, len(user)),
           CKR_PIN_INCORRECT)
    expect("C_LoginUser",
           login_user(session, CKU_USER, password, len(password), user, len(user)), CKR_OK)
    expect("C_GenerateRandom", random(session, buf, 16), CKR_OK)
    expect("C_LoginUser again",
           login_user(session, CKU_USER, password, len(password), user, len(user)),
           CKR_USER_ALREADY_LOGGED_IN)
    expect("C_FindObjectsInit", find_init(session, None, 0), CKR_OK)
    expect("C_SessionCancel", cancel(session, CKF_FIND_OBJECTS), CKR_OK)
    handle = ULONG(0)
    got = ULONG(0)
    expect("C_FindObjects after cancel", find(session, C.byref(handle), 1, C.byref(got)),
           CKR_OPERATION_NOT_INITIALIZED)
    expect("C_FindObjectsInit after cancel", find_init(session, None, 0), CKR_OK)
    expect("C_MessageSignInit", sign_message(session, None, 0), CKR_FUNCTION_NOT_SUPPORTED)
    expect("C_Logout", logout(session), CKR_OK)
    pin = user + b":" + password
    expect("C_LoginUser without a username",
           login_user(session, CKU_USER, pin, len(pin), None, 0), CKR_OK)
    expect("C_GenerateRandom", random(session, buf, 16), CKR_OK)
    expect("C_Finalize", finalize(None), CKR_OK)
    print("v3 ok")


if __name__ == "__main__":
    main()
