//! From a fresh cluster to a verified signature.
//!
//! ```sh
//! ./x dev                                   # in one terminal; note the admin password
//! export HSM_CLUSTER=hsm-dev/client.toml    # in another
//! HSM_ADMIN_PASSWORD=<printed password> cargo run -p hsm-client --example quickstart
//! ```
//!
//! Activates the cluster (the unactivated `admin` sets a new password, here
//! `HSM_NEW_ADMIN_PASSWORD` or a default), creates a crypto user, generates
//! an Ed25519 key in the HSM, signs a message and verifies the signature,
//! and prints the public key as PEM. Running it again skips what exists.

use hsm_client::{Client, ClientOptions, ErrorKind, KeyAttributes, KeySpec, Role, Username};
use hsm_proto::mechanism::SignMechanism;

fn name(n: &str) -> Result<Username, Box<dyn std::error::Error>> {
    Ok(Username::new(n)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let initial = std::env::var("HSM_ADMIN_PASSWORD").unwrap_or_default();
    let admin_password =
        std::env::var("HSM_NEW_ADMIN_PASSWORD").unwrap_or_else(|_| "change-me-admin-1".into());
    let user_password = "crypto-user-password-1";

    let admin = Client::connect_env(ClientOptions::default()).await?;
    let info = admin.cluster_info().await?;
    println!(
        "cluster {} with {} nodes, leader {:?}",
        info.cluster_id.map(|c| c.to_string()).unwrap_or_default(),
        info.members.len(),
        info.leader
    );
    if !info.activated {
        admin.login(name("admin")?, initial.as_str()).await?;
        admin
            .change_own_password(initial.as_str(), admin_password.as_str())
            .await?;
        println!("activated: admin is now a crypto officer");
    }
    admin.login(name("admin")?, admin_password.as_str()).await?;
    match admin
        .create_user(name("app")?, Role::Cu, user_password)
        .await
    {
        Ok(()) => println!("created crypto user app"),
        Err(e) if e.kind() == Some(ErrorKind::Conflict) => println!("crypto user app exists"),
        Err(e) => return Err(e.into()),
    }

    let app = Client::connect_env(ClientOptions::default()).await?;
    app.login(name("app")?, user_password).await?;
    let key = app
        .generate_key(
            KeySpec::Ed25519,
            KeyAttributes {
                label: "quickstart".into(),
                sign: true,
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await?;
    let message = b"hello from the HSM".to_vec();
    let signature = app
        .sign(key.id, SignMechanism::Ed25519, message.clone())
        .await?;
    let valid = app
        .verify(key.id, SignMechanism::Ed25519, message, signature.clone())
        .await?;
    let (_, pem) = app.export_public_key(key.id).await?;
    println!(
        "key {} signed {} bytes; verified: {valid}",
        key.id,
        signature.len()
    );
    print!("{pem}");
    Ok(())
}
