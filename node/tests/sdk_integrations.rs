//! The SDK's integrations for keys that never leave the HSM, against three
//! real `hsm-node` processes:
//!
//! - TLS offload: rustls servers whose private keys (EC P-256, P-384,
//!   RSA-2048 with PSS and PKCS#1, Ed25519) are in the HSM, with
//!   certificates issued by a CA key in the HSM, are fetched from by a real
//!   rustls client that trusts only that CA, and by `openssl s_client`;
//! - a small CA: certificates issued by CA keys in the HSM verify with
//!   `openssl verify`;
//! - envelope encryption (TDE): blobs sealed under a data key sealed by a
//!   master key in the HSM open again, tampering is refused, and the data
//!   key is nowhere in what is stored.

mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hsm_client::ca::HsmCaKey;
use hsm_client::envelope::{
    open_envelope, parse_envelope, rewrap_data_key, seal_envelope, unwrap_data_key, EnvelopeBox,
    EnvelopeError,
};
use hsm_client::offload::{certified_key, server_config, HsmSigningKey};
use hsm_client::{Client, ErrorKind, RemoteKeyError};
use hsm_proto::mechanism::{DigestAlgorithm, SignMechanism};
use hsm_proto::{KeyAttributes, KeyId, KeySpec, Role};
use procs::{openssl, user, Cluster};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{ProtocolVersion, SignatureAlgorithm, SignatureScheme, SupportedProtocolVersion};

const APP_PASSWORD: &str = "app-password-1";
const BODY: &str = "hello from a key that never left the hsm";

/// One cluster at a time: each test starts three node processes, and
/// several clusters starting at once on a small machine can take longer to
/// answer than the harness waits.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An activated cluster and a crypto user's client.
async fn cluster_with_crypto_user() -> (Cluster, Client) {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate("admin-password-1").await;
    admin
        .create_user(user("app"), Role::Cu, APP_PASSWORD)
        .await
        .expect("create crypto user");
    let app = cluster.client().await;
    app.login(user("app"), APP_PASSWORD).await.expect("login");
    (cluster, app)
}

/// A key pair in the HSM that signs and whose private half cannot leave.
async fn signing_key(client: &Client, spec: KeySpec, label: &str) -> KeyId {
    client
        .generate_key(
            spec,
            KeyAttributes {
                label: label.into(),
                sign: true,
                verify: true,
                extractable: false,
                ..KeyAttributes::default()
            },
            true,
        )
        .await
        .expect("generate key")
        .id
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn server_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

/// rustls and rcgen call the HSM synchronously: run them on a blocking
/// thread, outside the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

// ---------------------------------------------------------------- TLS

/// Wraps the HSM key to record which scheme each handshake chose.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn SigningKey>,
    chosen: Arc<Mutex<Vec<SignatureScheme>>>,
}

impl SigningKey for Recording {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let signer = self.inner.choose_scheme(offered)?;
        self.chosen.lock().expect("lock").push(signer.scheme());
        Some(signer)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// Accepts one connection, reads one HTTP request and answers it.
fn serve_once(config: Arc<rustls::ServerConfig>) -> (SocketAddr, JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || -> Result<(), String> {
        let (mut sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls
                .read(&mut buf)
                .map_err(|e| format!("server read: {e}"))?;
            if n == 0 {
                return Err("client closed before a request".into());
            }
            request.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        tls.write_all(response.as_bytes())
            .map_err(|e| format!("server write: {e}"))?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| format!("server flush: {e}"))?;
        Ok(())
    });
    (addr, server)
}

/// A rustls client trusting only `ca`, speaking `versions`, and offering
/// only `schemes` for the server's handshake signature when given.
fn tls_client(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    schemes: Option<&[SignatureScheme]>,
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(only) = schemes {
        let algs = provider.signature_verification_algorithms;
        let mapping: Vec<_> = algs
            .mapping
            .iter()
            .filter(|(s, _)| only.contains(s))
            .cloned()
            .collect();
        provider.signature_verification_algorithms = WebPkiSupportedAlgorithms {
            all: algs.all,
            mapping: Box::leak(mapping.into_boxed_slice()),
        };
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("trust the CA");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Fetches `/` over TLS; the response and the version negotiated.
fn fetch(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<(String, ProtocolVersion), String> {
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("client write: {e}"))?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .map_err(|e| format!("client read: {e}"))?;
    let version = conn
        .protocol_version()
        .ok_or("no protocol version after the handshake")?;
    Ok((response, version))
}

struct Case {
    spec: KeySpec,
    versions: &'static [&'static SupportedProtocolVersion],
    offered: Option<&'static [SignatureScheme]>,
    expect: &'static [SignatureScheme],
}

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const PSS: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
];

fn cases() -> Vec<Case> {
    vec![
        Case {
            spec: KeySpec::EcP256,
            versions: TLS13,
            offered: None,
            expect: &[SignatureScheme::ECDSA_NISTP256_SHA256],
        },
        Case {
            spec: KeySpec::EcP256,
            versions: TLS12,
            offered: None,
            expect: &[SignatureScheme::ECDSA_NISTP256_SHA256],
        },
        Case {
            spec: KeySpec::EcP384,
            versions: TLS13,
            offered: None,
            expect: &[SignatureScheme::ECDSA_NISTP384_SHA384],
        },
        Case {
            spec: KeySpec::Rsa { bits: 2048 },
            versions: TLS13,
            offered: None,
            expect: PSS,
        },
        Case {
            spec: KeySpec::Rsa { bits: 2048 },
            versions: TLS12,
            offered: Some(&[SignatureScheme::RSA_PKCS1_SHA256]),
            expect: &[SignatureScheme::RSA_PKCS1_SHA256],
        },
        Case {
            spec: KeySpec::Rsa { bits: 2048 },
            versions: TLS12,
            offered: Some(&[SignatureScheme::RSA_PKCS1_SHA384]),
            expect: &[SignatureScheme::RSA_PKCS1_SHA384],
        },
        Case {
            spec: KeySpec::Ed25519,
            versions: TLS13,
            offered: None,
            expect: &[SignatureScheme::ED25519],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_servers_with_hsm_keys_serve_a_real_tls_client() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (cluster, app) = cluster_with_crypto_user().await;

    // The CA: its key in the HSM, its certificate self-signed by the HSM.
    // Signed here on a runtime worker (the bridge steps aside with
    // block_in_place), the rest on blocking threads.
    let ca_id = signing_key(&app, KeySpec::EcP256, "tls-ca").await;
    let ca_key = HsmCaKey::new(&app, ca_id).await.expect("ca key");
    let ca_cert = ca_params("hsm tls test ca")
        .self_signed(&ca_key)
        .expect("self-signed by the hsm");
    let ca_der = ca_cert.der().clone();
    let ca_pem = ca_cert.pem();
    let issuer = Arc::new(Issuer::new(ca_params("hsm tls test ca"), ca_key));

    let mut leaves = std::collections::BTreeMap::new();
    for case in cases() {
        let spec = case.spec;
        let (leaf_id, chain_pem) = match leaves.get(&format!("{spec:?}")) {
            Some(found) => Clone::clone(found),
            None => {
                let leaf_id = signing_key(&app, spec, &format!("tls-{spec:?}")).await;
                let leaf_public = HsmCaKey::new(&app, leaf_id).await.expect("leaf public key");
                let issuer = issuer.clone();
                let chain_pem = blocking(move || {
                    server_params("localhost")
                        .signed_by(&leaf_public, &*issuer)
                        .expect("issued by the hsm ca")
                        .pem()
                })
                .await;
                leaves.insert(format!("{spec:?}"), (leaf_id, chain_pem.clone()));
                (leaf_id, chain_pem)
            }
        };

        let key = HsmSigningKey::new(&app, leaf_id).await.expect("tls key");
        assert_eq!(key.spec(), spec);
        let certified = certified_key(&chain_pem, key).expect("certificate matches the key");
        let chosen = Arc::new(Mutex::new(Vec::new()));
        let recording = Recording {
            inner: certified.key.clone(),
            chosen: chosen.clone(),
        };
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
            certified.cert.clone(),
            Arc::new(recording),
        ))));
        let (addr, server) = serve_once(Arc::new(config));
        let client = tls_client(&ca_der, case.versions, case.offered);
        let fetched = blocking(move || fetch(addr, client)).await;
        let served = server.join().expect("server thread");
        let label = format!("{spec:?} over {:?}", case.versions[0].version);
        let (response, version) =
            fetched.unwrap_or_else(|e| panic!("{label}: client: {e}; server: {served:?}"));
        served.unwrap_or_else(|e| panic!("{label}: server: {e}"));
        assert!(
            response.starts_with("HTTP/1.1 200 OK"),
            "{label}: {response}"
        );
        assert!(response.ends_with(BODY), "{label}: {response}");
        assert_eq!(version, case.versions[0].version, "{label}");
        let chosen = chosen.lock().expect("lock").clone();
        assert_eq!(
            chosen.len(),
            1,
            "{label}: one handshake signature: {chosen:?}"
        );
        assert!(
            case.expect.contains(&chosen[0]),
            "{label}: chose {:?}, expected one of {:?}",
            chosen[0],
            case.expect
        );
    }

    // The plain helper, and OpenSSL's client as a second implementation.
    let (p256, chain_pem) = leaves.get("EcP256").cloned().expect("p-256 leaf");
    let key = HsmSigningKey::new(&app, p256).await.expect("tls key");
    let config = Arc::new(server_config(&chain_pem, key).expect("server config"));
    let (addr, server) = serve_once(config.clone());
    let (response, _) = blocking(move || fetch(addr, tls_client(&ca_der, TLS13, None)))
        .await
        .expect("fetch through server_config");
    server.join().expect("server").expect("served");
    assert!(response.ends_with(BODY), "{response}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write ca");
    let (addr, server) = serve_once(config);
    let out = blocking({
        let dir = dir.path().to_owned();
        move || openssl_fetch(&dir, addr)
    })
    .await;
    let served = server.join().expect("server");
    assert!(
        out.contains(BODY) && out.contains("Verify return code: 0 (ok)"),
        "openssl s_client: {out}\nserver: {served:?}"
    );

    // A client that trusts another CA refuses the server.
    let other_ca = KeyPair::generate().expect("key");
    let other_ca = ca_params("another ca").self_signed(&other_ca).expect("ca");
    let (addr, server) = serve_once(Arc::new(
        server_config(
            &chain_pem,
            HsmSigningKey::new(&app, p256).await.expect("tls key"),
        )
        .expect("server config"),
    ));
    let other = tls_client(other_ca.der(), TLS13, None);
    let refused = blocking(move || fetch(addr, other)).await;
    assert!(refused.is_err(), "{refused:?}");
    let _ = server.join();

    // A certificate for another key, and keys that cannot sign handshakes,
    // are refused before any handshake.
    let (rsa, _) = leaves.get("Rsa { bits: 2048 }").cloned().expect("rsa leaf");
    let rsa_key = HsmSigningKey::new(&app, rsa).await.expect("tls key");
    assert!(
        matches!(
            certified_key(&chain_pem, rsa_key),
            Err(RemoteKeyError::Certificate(_))
        ),
        "a p-256 certificate for an rsa key"
    );
    let aes = app
        .generate_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                encrypt: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("aes key");
    assert!(matches!(
        HsmSigningKey::new(&app, aes.id).await,
        Err(RemoteKeyError::UnsuitableKey { .. })
    ));
    let verify_only = app
        .generate_key(
            KeySpec::EcP256,
            KeyAttributes {
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("verify-only key");
    assert!(matches!(
        HsmSigningKey::new(&app, verify_only.id).await,
        Err(RemoteKeyError::UnsuitableKey { .. })
    ));
    drop(cluster);
}

/// `openssl s_client` trusting only `ca.pem` in `dir`: sends one request
/// and returns everything it printed.
fn openssl_fetch(dir: &Path, addr: SocketAddr) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(addr.to_string())
        .args([
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            "ca.pem",
            "-verify_return_error",
            "-ign_eof",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl (./x installs it)");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    }
    let out = child.wait_with_output().expect("openssl output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// rustls calls the signer from inside a task on a runtime with a single
/// worker: the bridge must hand the worker over rather than deadlock.
#[test]
fn tls_signing_inside_a_task_of_a_one_worker_runtime_completes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
        let (cluster, app) = cluster_with_crypto_user().await;
        for spec in [KeySpec::EcP256, KeySpec::Ed25519] {
            let id = signing_key(&app, spec, &format!("one-worker-{spec:?}")).await;
            let key = HsmSigningKey::new(&app, id).await.expect("tls key");
            let (signature, scheme) = tokio::spawn(async move {
                let signer = key.choose_scheme(&key.schemes()).expect("a scheme");
                (signer.sign(b"handshake transcript"), signer.scheme())
            })
            .await
            .expect("task");
            let signature = signature.expect("signed");
            let mechanism = match scheme {
                SignatureScheme::ED25519 => SignMechanism::Ed25519,
                _ => SignMechanism::EcdsaSha256,
            };
            assert!(app
                .verify(id, mechanism, b"handshake transcript".to_vec(), signature)
                .await
                .expect("verify"));
        }
        drop(cluster);
    });
}

// ---------------------------------------------------------------- CA

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_issued_by_hsm_ca_keys_verify_with_openssl() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (cluster, app) = cluster_with_crypto_user().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (KeySpec::EcP256, None, "ecdsa-with-SHA256"),
        (KeySpec::EcP384, None, "ecdsa-with-SHA384"),
        (KeySpec::Ed25519, None, "ED25519"),
        (KeySpec::Rsa { bits: 2048 }, None, "sha256WithRSAEncryption"),
        (
            KeySpec::Rsa { bits: 2048 },
            Some(DigestAlgorithm::Sha512),
            "sha512WithRSAEncryption",
        ),
    ];
    for (i, (spec, rsa_hash, algorithm)) in cases.into_iter().enumerate() {
        let label = format!("{spec:?} {rsa_hash:?}");
        let ca_id = signing_key(&app, spec, &format!("ca-{i}")).await;
        let mut ca_key = HsmCaKey::new(&app, ca_id).await.expect("ca key");
        if let Some(hash) = rsa_hash {
            ca_key = ca_key.with_rsa_hash(hash).expect("rsa hash");
        }
        // A leaf for a CSR (its key local), and a leaf for a key that is
        // itself in the HSM.
        let leaf_id = signing_key(&app, KeySpec::EcP256, &format!("leaf-{i}")).await;
        let hsm_leaf = HsmCaKey::new(&app, leaf_id).await.expect("leaf public key");
        let name = format!("CA {i}");
        let (ca_pem, csr_leaf_pem, hsm_leaf_pem) = blocking(move || {
            let ca_cert = ca_params(&name).self_signed(&ca_key).expect("ca cert");
            let issuer = Issuer::new(ca_params(&name), &ca_key);
            let requester = KeyPair::generate().expect("requester key");
            let mut request = server_params("service.example");
            // An issuer's key id is the CA's to add, not the requester's.
            request.use_authority_key_identifier_extension = false;
            let csr = request
                .serialize_request(&requester)
                .expect("csr")
                .pem()
                .expect("csr pem");
            let csr_leaf = CertificateSigningRequestParams::from_pem(&csr)
                .expect("parse csr")
                .signed_by(&issuer)
                .expect("issue for csr");
            let hsm_leaf = server_params("hsm.example")
                .signed_by(&hsm_leaf, &issuer)
                .expect("issue for hsm key");
            (ca_cert.pem(), csr_leaf.pem(), hsm_leaf.pem())
        })
        .await;
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write");
        std::fs::write(dir.path().join("csr-leaf.pem"), &csr_leaf_pem).expect("write");
        std::fs::write(dir.path().join("hsm-leaf.pem"), &hsm_leaf_pem).expect("write");
        for leaf in ["csr-leaf.pem", "hsm-leaf.pem"] {
            let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", leaf]);
            assert!(ok && out.contains(": OK"), "{label} {leaf}: {out}");
            let (_, text) = openssl(dir.path(), &["x509", "-in", leaf, "-noout", "-text"]);
            assert!(
                text.contains(&format!("Signature Algorithm: {algorithm}")),
                "{label} {leaf}: {text}"
            );
        }
        let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "ca.pem"]);
        assert!(ok, "{label}: self-signed ca: {out}");
        // The previous CA's certificate does not verify this CA's leaf.
        if i > 0 {
            let (ok, out) = openssl(
                dir.path(),
                &["verify", "-CAfile", "previous-ca.pem", "csr-leaf.pem"],
            );
            assert!(!ok, "{label}: verified under another ca: {out}");
        }
        std::fs::rename(
            dir.path().join("ca.pem"),
            dir.path().join("previous-ca.pem"),
        )
        .expect("rename");
    }

    // Keys that cannot sign certificates are refused up front.
    let x25519 = app
        .generate_key(
            KeySpec::X25519,
            KeyAttributes {
                derive: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("x25519 key");
    assert!(matches!(
        HsmCaKey::new(&app, x25519.id).await,
        Err(RemoteKeyError::UnsuitableKey { .. })
    ));
    drop(cluster);
}

// ---------------------------------------------------------------- TDE

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn aes_master(client: &Client, label: &str) -> KeyId {
    client
        .generate_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                label: label.into(),
                encrypt: true,
                decrypt: true,
                extractable: false,
                ..KeyAttributes::default()
            },
            true,
        )
        .await
        .expect("master key")
        .id
}

fn refused_by_hsm<T: std::fmt::Debug>(result: Result<T, EnvelopeError>) -> bool {
    match result {
        Err(EnvelopeError::Client(e)) => e.kind() == Some(ErrorKind::InvalidInput),
        other => panic!("expected the hsm to refuse, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tde_envelopes_open_only_untampered_and_never_hold_the_data_key() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (cluster, app) = cluster_with_crypto_user().await;
    let master = aes_master(&app, "orders-db-master").await;
    let context = b"db=orders".as_slice();

    // Create the database: a data key, sealed by the HSM; pages sealed
    // locally.
    let db = EnvelopeBox::create(&app, master, context)
        .await
        .expect("create");
    let stored_key = db.sealed_data_key().to_vec();
    let page: Vec<u8> = b"page 7: alice,100;bob,250;".repeat(100);
    let sealed_page = db.encrypt(&7u64.to_be_bytes(), &page).expect("seal page");
    drop(db);

    // Open it again, through another node: the HSM unseals the data key.
    let other_node = cluster.client_of(2).await;
    other_node
        .login(user("app"), APP_PASSWORD)
        .await
        .expect("login");
    let db = EnvelopeBox::load(&other_node, master, context, &stored_key)
        .await
        .expect("load");
    assert_eq!(
        db.decrypt(&7u64.to_be_bytes(), &sealed_page)
            .expect("open page")
            .expose(),
        page.as_slice()
    );
    // A page moved to another slot does not open.
    assert_eq!(
        db.decrypt(&8u64.to_be_bytes(), &sealed_page),
        Err(EnvelopeError::Authentication)
    );

    // Neither the data key nor the page is in what is stored.
    let data_key = unwrap_data_key(&app, master, context, &stored_key)
        .await
        .expect("unwrap");
    assert_eq!(data_key.len(), 32);
    for stored in [&stored_key, &sealed_page] {
        assert!(
            !contains(stored, data_key.expose()),
            "data key stored in clear"
        );
        assert!(!contains(stored, b"alice,100"), "page stored in clear");
    }

    // Every changed byte of the sealed data key is refused: its format
    // byte here, a version the master key does not have by the HSM, every
    // other byte by the HSM's authentication; so are another context and
    // another master key.
    for i in 0..stored_key.len() {
        let mut changed = stored_key.clone();
        changed[i] ^= 0x01;
        let loaded = EnvelopeBox::load(&app, master, context, &changed).await;
        match i {
            0 => assert!(
                matches!(loaded, Err(EnvelopeError::Malformed { .. })),
                "byte {i}"
            ),
            1..=4 => assert!(
                matches!(&loaded, Err(EnvelopeError::Client(e)) if e.kind() == Some(ErrorKind::NotFound)),
                "byte {i}: {loaded:?}"
            ),
            _ => assert!(refused_by_hsm(loaded), "byte {i}"),
        }
    }
    assert!(refused_by_hsm(
        EnvelopeBox::load(&app, master, b"db=payments", &stored_key).await
    ));
    let other_master = aes_master(&app, "payments-db-master").await;
    assert!(refused_by_hsm(
        EnvelopeBox::load(&app, other_master, context, &stored_key).await
    ));
    // Every changed byte of a sealed page is refused locally.
    for i in 0..sealed_page.len() {
        let mut changed = sealed_page.clone();
        changed[i] ^= 0x80;
        assert!(
            db.decrypt(&7u64.to_be_bytes(), &changed).is_err(),
            "page byte {i}"
        );
    }

    // Rotating the master key re-seals the data key; pages stay as they are.
    let rotated = rewrap_data_key(&app, master, other_master, context, &stored_key)
        .await
        .expect("rewrap");
    assert_ne!(rotated, stored_key);
    assert!(!contains(&rotated, data_key.expose()));
    let db = EnvelopeBox::load(&app, other_master, context, &rotated)
        .await
        .expect("load under the new master");
    assert_eq!(
        db.decrypt(&7u64.to_be_bytes(), &sealed_page)
            .expect("old page under the rotated key")
            .expose(),
        page.as_slice()
    );

    // Rotating the master key in place: the stored data key (version 1)
    // still opens; re-sealed, it names version 2; once the minimum
    // decryption version passes version 1, only the re-sealed one opens.
    let versions = app.rotate_key(master).await.expect("rotate the master");
    assert_eq!(versions.latest, 2);
    EnvelopeBox::load(&app, master, context, &stored_key)
        .await
        .expect("version 1 still opens");
    let resealed = rewrap_data_key(&app, master, master, context, &stored_key)
        .await
        .expect("re-seal under version 2");
    assert_eq!(&resealed[1..5], &2u32.to_be_bytes());
    app.set_min_decryption_version(master, 2)
        .await
        .expect("minimum 2");
    assert!(EnvelopeBox::load(&app, master, context, &stored_key)
        .await
        .is_err());
    let db = EnvelopeBox::load(&app, master, context, &resealed)
        .await
        .expect("the re-sealed data key opens");
    assert_eq!(
        db.decrypt(&7u64.to_be_bytes(), &sealed_page)
            .expect("the page still opens")
            .expose(),
        page.as_slice()
    );

    // Self-contained envelopes: seal, open, and refuse every tampering.
    let blob = b"customer table backup".to_vec();
    let envelope = seal_envelope(&app, master, context, &blob)
        .await
        .expect("seal envelope");
    let parts = parse_envelope(&envelope).expect("parse");
    assert_eq!(parts.master, master);
    let envelope_key = unwrap_data_key(&app, master, context, parts.sealed_data_key)
        .await
        .expect("unwrap");
    assert!(!contains(&envelope, envelope_key.expose()));
    assert!(!contains(&envelope, &blob));
    assert_eq!(
        open_envelope(&other_node, master, context, &envelope)
            .await
            .expect("open envelope")
            .expose(),
        blob.as_slice()
    );
    for i in 0..envelope.len() {
        let mut changed = envelope.clone();
        changed[i] ^= 0x01;
        assert!(
            open_envelope(&app, master, context, &changed)
                .await
                .is_err(),
            "envelope byte {i}"
        );
    }
    assert!(open_envelope(&app, other_master, context, &envelope)
        .await
        .is_err());
    drop(cluster);
}
