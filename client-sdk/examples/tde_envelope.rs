//! Envelope encryption of a database: the master key stays in the HSM,
//! a data key encrypts the pages (the TDE use case).
//!
//! ```sh
//! export HSM_CLUSTER=hsm-dev/client.toml HSM_USER=app HSM_PASSWORD=<app's password>
//! cargo run -p hsm-client --example tde_envelope
//! ```
//!
//! Finds (or generates) an AES-256 master key labelled `tde-master` in the
//! HSM, creates a data key sealed under it, encrypts a "database page"
//! locally, opens the database again from the stored sealed data key,
//! reads the page back, shows that a changed byte is refused, and rotates
//! the master key without re-encrypting the page. The user must be a
//! crypto user (see `quickstart.rs`).

use hsm_client::envelope::{rewrap_data_key, EnvelopeBox, BLOB_OVERHEAD};
use hsm_client::{Client, ClientOptions, KeyAttributes, KeyFilter, KeyId, KeySpec, Username};

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

/// The caller's AES-256 key labelled `label`, generated when missing.
async fn master_key(client: &Client, label: &str) -> Result<KeyId, Error> {
    let spec = KeySpec::Aes { bits: 256 };
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
        encrypt: true,
        decrypt: true,
        extractable: false,
        ..KeyAttributes::default()
    };
    Ok(client.generate_key(spec, attributes, true).await?.id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = login().await?;
    let master = master_key(&client, "tde-master").await?;
    let context = b"db=example".as_slice();
    println!("master key {master} stays in the HSM");

    // Creating the database: a data key from the HSM, sealed by it. Only
    // the sealed form is stored (say, in the database file header).
    let db = EnvelopeBox::create(&client, master, context).await?;
    let header = db.sealed_data_key().to_vec();
    println!("sealed data key ({} bytes): {}", header.len(), hex(&header));

    // Pages are encrypted locally, bound to their page number.
    let page_no = 42u64.to_be_bytes();
    let page = b"page 42: id=1 name=alice balance=100; id=2 name=bob balance=250".to_vec();
    let stored_page = db.encrypt(&page_no, &page)?;
    println!(
        "page of {} bytes stored as {} bytes ({BLOB_OVERHEAD} bytes overhead)",
        page.len(),
        stored_page.len()
    );
    drop(db);

    // Opening the database later: one HSM call unseals the data key.
    let db = EnvelopeBox::load(&client, master, context, &header).await?;
    let read = db.decrypt(&page_no, &stored_page)?;
    assert_eq!(read.expose(), page.as_slice());
    println!("read back: {}", String::from_utf8_lossy(read.expose()));

    let mut damaged = stored_page.clone();
    if let Some(last) = damaged.last_mut() {
        *last ^= 1;
    }
    match db.decrypt(&page_no, &damaged) {
        Err(e) => println!("a changed byte is refused: {e}"),
        Ok(_) => return Err("a damaged page opened".into()),
    }

    // Rotating the master key: re-seal the data key; pages stay as they are.
    let new_master = master_key(&client, "tde-master-next").await?;
    let new_header = rewrap_data_key(&client, master, new_master, context, &header).await?;
    let db = EnvelopeBox::load(&client, new_master, context, &new_header).await?;
    assert_eq!(
        db.decrypt(&page_no, &stored_page)?.expose(),
        page.as_slice()
    );
    println!("rotated to master key {new_master}; the page still opens");
    Ok(())
}
