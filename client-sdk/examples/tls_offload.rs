//! TLS offload: a rustls server whose private key stays in the HSM, with a
//! certificate issued by a CA key that stays in the HSM too.
//!
//! ```sh
//! export HSM_CLUSTER=hsm-dev/client.toml HSM_USER=app HSM_PASSWORD=<app's password>
//! cargo run -p hsm-client --features rustls,rcgen --example tls_offload
//! # or serve one request to another client:
//! TLS_OFFLOAD_LISTEN=127.0.0.1:8443 cargo run -p hsm-client --features rustls,rcgen --example tls_offload
//! curl --cacert tls-offload-ca.pem https://localhost:8443/
//! ```
//!
//! Finds (or generates) two EC P-256 keys in the HSM, `tls-offload-ca` and
//! `tls-offload-server`; self-signs a CA certificate with the first (written
//! to `tls-offload-ca.pem`) and issues a certificate for `localhost` to the
//! second; then serves one HTTPS request, each handshake signed by the
//! HSM. Without `TLS_OFFLOAD_LISTEN` it fetches that request itself with a
//! rustls client that trusts only the CA. The user must be a crypto user
//! (see `quickstart.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use hsm_client::ca::HsmCaKey;
use hsm_client::offload::{server_config, HsmSigningKey};
use hsm_client::{Client, ClientOptions, KeyAttributes, KeyFilter, KeyId, KeySpec, Username};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};

type Error = Box<dyn std::error::Error + Send + Sync>;

const BODY: &str = "hello over TLS; the server's private key is in the HSM\n";

/// Logs in as `HSM_USER` with `HSM_PASSWORD`.
async fn login() -> Result<Client, Error> {
    let client = Client::connect_env(ClientOptions::default()).await?;
    let username = std::env::var("HSM_USER").map_err(|_| "set HSM_USER to a crypto user")?;
    let password = std::env::var("HSM_PASSWORD").map_err(|_| "set HSM_PASSWORD")?;
    client
        .login(Username::new(&username)?, password.as_str())
        .await?;
    Ok(client)
}

/// The caller's P-256 signing key labelled `label`, generated when missing.
async fn signing_key(client: &Client, label: &str) -> Result<KeyId, Error> {
    let spec = KeySpec::EcP256;
    let filter = KeyFilter {
        label: Some(label.into()),
        spec: Some(spec),
        ..KeyFilter::default()
    };
    if let Some(key) = client.list_keys(filter).await?.first() {
        return Ok(key.id);
    }
    let attributes = KeyAttributes {
        label: label.into(),
        sign: true,
        verify: true,
        extractable: false,
        ..KeyAttributes::default()
    };
    Ok(client.generate_key(spec, attributes, true).await?.id)
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "TLS offload example CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Accepts one connection and answers one request.
fn serve_one(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Result<(), Error> {
    let (mut sock, peer) = listener.accept()?;
    let mut conn = rustls::ServerConnection::new(config)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Err("the client closed before sending a request".into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let first_line = String::from_utf8_lossy(&request);
    println!(
        "server: {peer} asked {:?}",
        first_line.lines().next().unwrap_or_default()
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    tls.write_all(response.as_bytes())?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// Fetches `/` trusting only `ca`.
fn fetch(addr: std::net::SocketAddr, ca: CertificateDer<'static>) -> Result<String, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost")?)?;
    let mut sock = TcpStream::connect(addr)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    tls.read_to_string(&mut response)?;
    println!(
        "client: {:?} with {:?}",
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|s| s.suite())
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = login().await?;
    let ca_id = signing_key(&client, "tls-offload-ca").await?;
    let server_id = signing_key(&client, "tls-offload-server").await?;
    let ca_key = HsmCaKey::new(&client, ca_id).await?;
    let server_public = HsmCaKey::new(&client, server_id).await?;

    // Certificates, signed by the HSM (rcgen is synchronous: a blocking
    // thread).
    let (ca_der, ca_pem, chain_pem) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&server_public, &issuer)?;
        Ok((ca_cert.der().clone(), ca_cert.pem(), leaf.pem()))
    })
    .await??;
    std::fs::write("tls-offload-ca.pem", &ca_pem)?;
    println!("CA key {ca_id} and server key {server_id} are in the HSM; wrote tls-offload-ca.pem");

    // The server: rustls asks the HSM for each handshake signature.
    let key = HsmSigningKey::new(&client, server_id).await?;
    let config = Arc::new(server_config(&chain_pem, key)?);
    let external = std::env::var("TLS_OFFLOAD_LISTEN").ok();
    let listener = TcpListener::bind(external.as_deref().unwrap_or("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    println!("serving one request on https://localhost:{}/", addr.port());
    // TLS runs on blocking threads: the HSM signer waits there, while the
    // runtime's workers carry the HSM call.
    let server = tokio::task::spawn_blocking(move || serve_one(listener, config));
    if external.is_none() {
        let response = tokio::task::spawn_blocking(move || fetch(addr, ca_der)).await??;
        print!("client got:\n{response}");
    }
    server.await??;
    Ok(())
}
