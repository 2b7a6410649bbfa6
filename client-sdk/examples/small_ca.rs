//! A small certificate authority whose signing key never leaves the HSM.
//!
//! ```sh
//! export HSM_CLUSTER=hsm-dev/client.toml HSM_USER=app HSM_PASSWORD=<app's password>
//! cargo run -p hsm-client --features rcgen --example small_ca -- out/            # a leaf for a key in the HSM
//! cargo run -p hsm-client --features rcgen --example small_ca -- out/ req.csr    # a leaf for a CSR
//! openssl verify -CAfile out/ca.pem out/leaf.pem
//! ```
//!
//! Finds (or generates) an EC P-384 key labelled `small-ca` in the HSM,
//! self-signs the CA certificate with it, and issues a leaf certificate:
//! for the PEM certificate signing request given as the second argument,
//! or else for an EC P-256 key labelled `small-ca-leaf` that it generates
//! in the HSM too. Writes `ca.pem` and `leaf.pem` into the directory given
//! first (default `.`). The user must be a crypto user (see
//! `quickstart.rs`).

use std::path::PathBuf;

use hsm_client::ca::HsmCaKey;
use hsm_client::{Client, ClientOptions, KeyAttributes, KeyFilter, KeyId, KeySpec, Username};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

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

/// The caller's signing key labelled `label`, generated when missing.
async fn signing_key(client: &Client, label: &str, spec: KeySpec) -> Result<KeyId, Error> {
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
        .push(DnType::CommonName, "HSM Small CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "hsm-cluster example");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let csr_path = args.next().map(PathBuf::from);
    std::fs::create_dir_all(&out)?;

    let client = login().await?;
    let ca_id = signing_key(&client, "small-ca", KeySpec::EcP384).await?;
    let ca_key = HsmCaKey::new(&client, ca_id).await?;
    println!(
        "CA key {ca_id} ({:?}) signs with {}",
        ca_key.spec(),
        ca_key.mechanism()
    );

    // What the leaf certifies: a requester's CSR, or a key in the HSM.
    let leaf_key = match &csr_path {
        Some(_) => None,
        None => {
            let id = signing_key(&client, "small-ca-leaf", KeySpec::EcP256).await?;
            println!("leaf key {id} is in the HSM");
            Some(HsmCaKey::new(&client, id).await?)
        }
    };
    let csr_pem = match &csr_path {
        Some(path) => Some(std::fs::read_to_string(path)?),
        None => None,
    };

    // rcgen signs synchronously, each signature a call to the HSM: run it
    // on a blocking thread.
    let (ca_pem, leaf_pem) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let leaf = match (csr_pem, leaf_key) {
            (Some(csr), _) => {
                CertificateSigningRequestParams::from_pem(&csr)?.signed_by(&issuer)?
            }
            (None, Some(leaf_key)) => {
                let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, "localhost");
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.use_authority_key_identifier_extension = true;
                params.signed_by(&leaf_key, &issuer)?
            }
            (None, None) => return Err("nothing to certify".into()),
        };
        Ok((ca_cert.pem(), leaf.pem()))
    })
    .await??;

    std::fs::write(out.join("ca.pem"), ca_pem)?;
    std::fs::write(out.join("leaf.pem"), leaf_pem)?;
    println!(
        "wrote {0}/ca.pem and {0}/leaf.pem; check with: openssl verify -CAfile {0}/ca.pem {0}/leaf.pem",
        out.display()
    );
    Ok(())
}
