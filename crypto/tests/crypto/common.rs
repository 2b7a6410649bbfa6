//! Shared keys and the OpenSSL harness.

use hsm_crypto::{digest, DigestAlgorithm, KeyMaterial, KeySpec, LoadedKey, SignMechanism};
use hsm_proto::{CarriedAttributes, KeyAttributes, KeyProvenance};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One spec of every key type and size the cluster supports.
pub const SPECS: [KeySpec; 12] = [
    KeySpec::Aes { bits: 128 },
    KeySpec::Aes { bits: 192 },
    KeySpec::Aes { bits: 256 },
    KeySpec::GenericSecret { bytes: 32 },
    KeySpec::EcP256,
    KeySpec::EcP384,
    KeySpec::EcSecp256k1,
    KeySpec::Ed25519,
    KeySpec::X25519,
    KeySpec::Rsa { bits: 2048 },
    KeySpec::Rsa { bits: 3072 },
    KeySpec::Rsa { bits: 4096 },
];

pub const RSA_2048: KeySpec = KeySpec::Rsa { bits: 2048 };
pub const AES_256: KeySpec = KeySpec::Aes { bits: 256 };

/// A key of `spec`, generated once per test binary (RSA keys are slow to
/// make, RSA-4096 especially).
pub fn key(spec: KeySpec) -> &'static LoadedKey {
    static KEYS: [OnceLock<LoadedKey>; 12] = [const { OnceLock::new() }; 12];
    let index = SPECS
        .iter()
        .position(|s| *s == spec)
        .expect("spec in SPECS");
    KEYS[index].get_or_init(|| LoadedKey::generate(spec).expect("generate"))
}

/// What a mechanism signs for `message`: the message itself, or for the
/// forms over a caller's hash, the hash the whole-message form would use
/// (SHA-256 for ECDSA's; the DigestInfo of SHA-256 for PKCS#1 v1.5's),
/// made here from RFC 8017's DER independently of the crate.
pub fn sign_input(mechanism: SignMechanism, message: &[u8]) -> Vec<u8> {
    use SignMechanism as M;
    let sha256 = || digest(DigestAlgorithm::Sha256, message);
    match mechanism {
        M::EcdsaPrehashed | M::RsaPssSha256Prehashed => sha256(),
        M::RsaPssSha384Prehashed => digest(DigestAlgorithm::Sha384, message),
        M::RsaPssSha512Prehashed => digest(DigestAlgorithm::Sha512, message),
        M::RsaPkcs1v15Raw => {
            let mut info = vec![
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ];
            info.extend(sha256());
            info
        }
        _ => message.to_vec(),
    }
}

/// What a wrapping of `target` carries: default attributes, generated.
pub fn carried(target: &KeyMaterial) -> CarriedAttributes {
    let attributes = KeyAttributes::default();
    CarriedAttributes {
        spec: target.spec(),
        provenance: KeyProvenance::generated(&attributes),
        attributes,
    }
}

/// A temporary directory to run the OpenSSL 3 command line in.
pub struct Ossl {
    dir: tempfile::TempDir,
}

impl Ossl {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write");
        path_str(&path)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read openssl output")
    }

    /// Runs `openssl args...` in the directory; returns (success, stdout,
    /// stderr).
    pub fn try_run(&self, args: &[&str]) -> (bool, Vec<u8>, String) {
        let out = Command::new(openssl())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl (OpenSSL 3 CLI must be installed)");
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `openssl args...` and panics with its stderr if it fails.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let (ok, stdout, stderr) = self.try_run(args);
        assert!(ok, "openssl {args:?} failed: {stderr}");
        stdout
    }
}

fn openssl() -> &'static str {
    if Path::new("/usr/bin/openssl").exists() {
        "/usr/bin/openssl"
    } else {
        "openssl"
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 temp path").to_owned()
}

pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex")
}
