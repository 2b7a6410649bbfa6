//! python-pkcs11 (from PyPI) drives the operations a PKCS#11 throughput
//! comparison runs — RSA-2048, P-256 and Ed25519 signatures, AES-256-GCM
//! of 1 KiB (with the token's IV), AES, EC and RSA key generation as
//! session objects, random — and wraps an AES key under an AES key (KWP)
//! and an RSA key (OAEP) and unwraps it, agrees AES keys between two P-256
//! pairs (ECDH with the raw secret and with X9.63), and checks each result
//! (`pkcs11/tests/python/drive.py check`); then loads the module as a
//! PKCS#11 3.0 application does and logs in with `C_LoginUser`
//! (`pkcs11/tests/python/v3.py`, ctypes).

mod common;

use std::path::{Path, PathBuf};

use common::{module, run, Cluster, PASSWORD, PIN, USER};

/// The virtual environment `./x test` makes with python-pkcs11 in it:
/// `<target dir>/pkcs11-python`.
fn python() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target directory");
    let python = target.join("pkcs11-python/bin/python3");
    assert!(
        python.is_file(),
        "{} is missing: `./x test` makes it (python3 -m venv, then pip install python-pkcs11)",
        python.display()
    );
    python
}

#[test]
fn python_pkcs11_runs_every_operation_of_the_comparison() {
    let c = Cluster::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/drive.py");
    let out = run(c
        .command(python())
        .arg(script)
        .arg("check")
        .env("PKCS11_MODULE", module())
        .env("PKCS11_PIN", PIN));
    for op in [
        "rsa-sign",
        "ec-sign",
        "ed-sign",
        "aes-gcm-1k",
        "keygen-aes",
        "keygen-ec",
        "keygen-rsa",
        "random-16",
        "wrap-unwrap",
    ] {
        assert!(out.contains(&format!("{op}: ok")), "{op}:\n{out}");
    }
    assert!(out.contains("all operations ok"), "{out}");

    // The same module loaded as a PKCS#11 3.0 application loads it
    // (C_GetInterface), logged in with C_LoginUser.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/v3.py");
    let out = run(c
        .command(python())
        .arg(script)
        .env("PKCS11_MODULE", module())
        .env("PKCS11_USER", USER)
        .env("PKCS11_PASSWORD", PASSWORD));
    for check in [
        "C_GetInterface default: ok",
        "C_GetInterface 2.40: ok",
        "C_LoginUser wrong password: ok",
        "C_LoginUser: ok",
        "C_FindObjects after cancel: ok",
        "C_LoginUser without a username: ok",
    ] {
        assert!(out.contains(check), "{check}:\n{out}");
    }
    assert!(out.contains("v3 ok"), "{out}");
}
