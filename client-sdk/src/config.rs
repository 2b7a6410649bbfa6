//! Loading and checking the client config file.
//!
//! The file is the TOML form of [`ClientConfig`] that `hsm-node init` and
//! `hsm-node dev` write: the cluster id, the cluster CA certificate, an
//! optional zone, and the nodes to contact first.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hsm_proto::client::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};

/// The environment variable that names the client config file.
pub const CONFIG_ENV: &str = "HSM_CLUSTER";

/// Reads, parses and checks the client config file at `path`.
///
/// # Errors
/// [`Error::Config`] if the file cannot be read, is not valid TOML of a
/// [`ClientConfig`], or fails [`validate_config`]. The message names the
/// file.
pub fn load_config(path: impl AsRef<Path>) -> Result<ClientConfig> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read client config {}: {e}", path.display())))?;
    parse_config(&text).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parses and checks a client config from TOML text.
///
/// # Errors
/// [`Error::Config`] if the text is not a valid [`ClientConfig`] or fails
/// [`validate_config`].
pub fn parse_config(text: &str) -> Result<ClientConfig> {
    let config: ClientConfig =
        toml::from_str(text).map_err(|e| Error::Config(format!("not a client config: {e}")))?;
    validate_config(&config)?;
    Ok(config)
}

/// The client config file named by [`CONFIG_ENV`], read and checked.
///
/// # Errors
/// [`Error::Config`] if the variable is unset or empty, or as
/// [`load_config`].
pub fn load_config_from_env() -> Result<ClientConfig> {
    load_config(config_path(std::env::var_os(CONFIG_ENV))?)
}

fn config_path(value: Option<OsString>) -> Result<PathBuf> {
    match value {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(Error::Config(format!(
            "{CONFIG_ENV} is not set: expected the path of the cluster's client config file"
        ))),
    }
}

/// Checks a config: a 16-byte hex cluster id, at least one CA certificate,
/// at least one node, unique node ids, and `host:port` addresses.
///
/// # Errors
/// [`Error::Config`] naming the first problem found.
pub fn validate_config(config: &ClientConfig) -> Result<()> {
    let id = &config.cluster_id;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "cluster_id {id:?} is not 32 hex digits"
        )));
    }
    ca_certificates(&config.ca_cert_pem)?;
    if config.nodes.is_empty() {
        return Err(Error::Config(
            "no nodes listed: expected at least one".into(),
        ));
    }
    let mut ids = BTreeSet::new();
    for node in &config.nodes {
        if !ids.insert(node.id) {
            return Err(Error::Config(format!("node id {} listed twice", node.id)));
        }
        check_address(&node.address)
            .map_err(|m| Error::Config(format!("node {}: {m}", node.id)))?;
    }
    if config.zone.as_deref() == Some("") {
        return Err(Error::Config("zone is empty: omit it or name one".into()));
    }
    Ok(())
}

fn check_address(address: &str) -> std::result::Result<(), String> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if port_ok {
        Ok(())
    } else {
        Err(format!("address {address:?} is not host:port"))
    }
}

/// The certificates in a PEM text.
///
/// # Errors
/// [`Error::Config`] if a PEM block is malformed or there is none.
pub(crate) fn ca_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("ca_cert_pem: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(
            "ca_cert_pem holds no certificate: expected the cluster CA in PEM".into(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Any well-formed PEM certificate block parses here; it is checked as
    // a certificate only when TLS uses it.
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    fn text(cluster_id: &str, nodes: &str) -> String {
        format!("cluster_id = \"{cluster_id}\"\nca_cert_pem = \"\"\"\n{PEM}\"\"\"\n{nodes}")
    }

    const ID: &str = "00112233445566778899aabbccddeeff";
    const NODE: &str = "[[nodes]]\nid = 1\naddress = \"127.0.0.1:4000\"\nzone = \"a\"\n\
        transport_key = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n";

    fn message(r: Result<ClientConfig>) -> String {
        match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_config_parses() {
        let c = parse_config(&format!("zone = \"a\"\n{}", text(ID, NODE))).expect("valid");
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.zone.as_deref(), Some("a"));
    }

    #[test]
    fn config_errors_say_what_was_expected() {
        assert!(message(parse_config("not toml [")).contains("not a client config"));
        assert!(message(parse_config(&text("xyz", NODE))).contains("32 hex digits"));
        assert!(message(parse_config(&text(ID, "nodes = []\n"))).contains("no nodes"));
        assert!(message(parse_config(&text(ID, ""))).contains("nodes"));
        let twice = format!("{NODE}{NODE}");
        assert!(message(parse_config(&text(ID, &twice))).contains("listed twice"));
        let no_port = NODE.replace("127.0.0.1:4000", "127.0.0.1");
        assert!(message(parse_config(&text(ID, &no_port))).contains("host:port"));
        let no_ca = format!("cluster_id = \"{ID}\"\nca_cert_pem = \"\"\n{NODE}");
        assert!(message(parse_config(&no_ca)).contains("no certificate"));
        let unknown = format!("colour = \"blue\"\n{}", text(ID, NODE));
        assert!(message(parse_config(&unknown)).contains("colour"));
        let short_pin = NODE.replace("eeff\"", "\"");
        assert!(message(parse_config(&text(ID, &short_pin))).contains("64 hex digits"));
        let no_pin = NODE.lines().take(4).collect::<Vec<_>>().join("\n") + "\n";
        assert!(message(parse_config(&text(ID, &no_pin))).contains("transport_key"));
    }

    #[test]
    fn files_are_read_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.toml");
        assert!(message(load_config(&path)).contains("cannot read client config"));
        std::fs::write(&path, text("bad", NODE)).expect("write");
        let m = message(load_config(&path));
        assert!(m.contains("cluster.toml") && m.contains("hex"), "{m}");
        std::fs::write(&path, text(ID, NODE)).expect("write");
        assert_eq!(load_config(&path).expect("valid").cluster_id, ID);
    }

    #[test]
    fn the_env_var_names_the_file() {
        match config_path(None) {
            Err(Error::Config(m)) => assert!(m.contains(CONFIG_ENV), "{m}"),
            other => panic!("expected a config error, got {other:?}"),
        }
        assert!(config_path(Some(OsString::new())).is_err());
        assert_eq!(
            config_path(Some("/etc/hsm/cluster.toml".into())).expect("set"),
            PathBuf::from("/etc/hsm/cluster.toml")
        );
    }
}
