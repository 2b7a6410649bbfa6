//! One cached QUIC connection per node, made again when it closed, and the
//! exchange of one request on one stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hsm_proto::client::Response;
use hsm_proto::{codec, NodeId};

use crate::frame::{read_frame, write_frame, FrameError, MAX_RESPONSE_BYTES};
use crate::tls::{key_pin_of_cert, server_name};
use rustls_pki_types::CertificateDer;

/// Why one attempt on one node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttemptError {
    /// The node could not be reached or the exchange broke off: try
    /// another node.
    Transport(String),
    /// The node answered bytes the protocol does not allow.
    Protocol(String),
    /// The node is up but does not speak the client protocol version the
    /// operation needs (an earlier build): try another, without counting
    /// this one as failed.
    Unsupported(String),
}

impl AttemptError {
    /// What went wrong, in words.
    pub(crate) fn reason(self) -> String {
        match self {
            AttemptError::Transport(r)
            | AttemptError::Protocol(r)
            | AttemptError::Unsupported(r) => r,
        }
    }
}

/// A node's cached connection.
#[derive(Debug)]
struct NodeConn {
    address: String,
    /// The key its certificate must carry.
    pin: [u8; 32],
    cached: Mutex<Option<quinn::Connection>>,
    /// Held while connecting, so concurrent callers wait for one handshake
    /// instead of each making their own.
    connecting: tokio::sync::Mutex<()>,
}

impl NodeConn {
    fn live(&self) -> Option<quinn::Connection> {
        lock(&self.cached)
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client's QUIC endpoints (one per address family, made on first use)
/// and its connections.
#[derive(Debug)]
pub(crate) struct Connections {
    config: quinn::ClientConfig,
    v4: Mutex<Option<quinn::Endpoint>>,
    v6: Mutex<Option<quinn::Endpoint>>,
    nodes: Mutex<HashMap<NodeId, Arc<NodeConn>>>,
    /// Each node's key pin, from the config file and then from the
    /// cluster's member records (learned from pinned nodes only).
    pins: Mutex<HashMap<NodeId, [u8; 32]>>,
}

impl Connections {
    /// No connections yet; `config` is the TLS and transport configuration
    /// for every connection.
    pub(crate) fn new(config: quinn::ClientConfig) -> Connections {
        Connections {
            config,
            v4: Mutex::new(None),
            v6: Mutex::new(None),
            nodes: Mutex::new(HashMap::new()),
            pins: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the key pins of nodes; a node whose pin changed is connected
    /// to again.
    pub(crate) fn set_pins(&self, pins: impl IntoIterator<Item = (NodeId, [u8; 32])>) {
        let mut known = lock(&self.pins);
        for (id, pin) in pins {
            if known.insert(id, pin).is_some_and(|old| old != pin) {
                if let Some(n) = lock(&self.nodes).remove(&id) {
                    close(&n, b"node key changed");
                }
            }
        }
    }

    fn node(&self, id: NodeId, address: &str, pin: [u8; 32]) -> Arc<NodeConn> {
        let mut nodes = lock(&self.nodes);
        match nodes.get(&id) {
            Some(n) if n.address == address && n.pin == pin => n.clone(),
            _ => {
                let n = Arc::new(NodeConn {
                    address: address.to_string(),
                    pin,
                    cached: Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                });
                if let Some(old) = nodes.insert(id, n.clone()) {
                    close(&old, b"node moved");
                }
                n
            }
        }
    }

    /// Closes and forgets the connections of nodes not in `keep`.
    pub(crate) fn retain(&self, keep: &[(NodeId, String)]) {
        let mut nodes = lock(&self.nodes);
        nodes.retain(|id, n| {
            let stays = keep.iter().any(|(k, a)| k == id && *a == n.address);
            if !stays {
                close(n, b"node left");
            }
            stays
        });
    }

    /// Closes every connection and endpoint.
    pub(crate) fn close_all(&self) {
        for endpoint in [lock(&self.v4).take(), lock(&self.v6).take()]
            .into_iter()
            .flatten()
        {
            endpoint.close(0u32.into(), b"client closed");
        }
    }

    fn endpoint(&self, peer: SocketAddr) -> Result<quinn::Endpoint, String> {
        let (slot, bind): (_, SocketAddr) = if peer.is_ipv6() {
            (&self.v6, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
        } else {
            (&self.v4, (std::net::Ipv4Addr::UNSPECIFIED, 0).into())
        };
        let mut slot = lock(slot);
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| format!("cannot open a UDP socket on {bind}: {e}"))?;
        endpoint.set_default_client_config(self.config.clone());
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// The live connection to node `id` at `address` if one is cached
    /// (under the key pinned for it now).
    pub(crate) fn cached(&self, id: NodeId, address: &str) -> Option<quinn::Connection> {
        let pin = lock(&self.pins).get(&id).copied()?;
        let nodes = lock(&self.nodes);
        let node = nodes.get(&id)?;
        if node.address != address || node.pin != pin {
            return None;
        }
        node.live()
    }

    /// A live connection to node `id` at `address`: the cached one, or a
    /// new one made within `connect_timeout`.
    pub(crate) async fn connection(
        &self,
        id: NodeId,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<quinn::Connection, AttemptError> {
        let pin = lock(&self.pins)
            .get(&id)
            .copied()
            .ok_or_else(|| AttemptError::Transport(format!("no key is known for node {id}")))?;
        let node = self.node(id, address, pin);
        if let Some(c) = node.live() {
            return Ok(c);
        }
        let made = tokio::time::timeout(connect_timeout, async {
            let _one_at_a_time = node.connecting.lock().await;
            if let Some(c) = node.live() {
                return Ok(c);
            }
            let c = self.connect(id, address, pin).await?;
            *lock(&node.cached) = Some(c.clone());
            Ok(c)
        })
        .await;
        match made {
            Ok(r) => r.map_err(AttemptError::Transport),
            Err(_) => Err(AttemptError::Transport(format!(
                "no connection within {connect_timeout:?}"
            ))),
        }
    }

    /// Connects to node `id` at `address`: the CA must have issued its
    /// certificate for `n<id>.hsm-node` (checked in the handshake), and its
    /// key must be `pin`, the one its member record pins, so a node of
    /// another cluster on the same CA, or a removed member, is never
    /// spoken to (nor sent a password).
    async fn connect(
        &self,
        id: NodeId,
        address: &str,
        pin: [u8; 32],
    ) -> Result<quinn::Connection, String> {
        let peer = tokio::net::lookup_host(address)
            .await
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        let endpoint = self.endpoint(peer)?;
        let connecting = endpoint
            .connect(peer, &server_name(id))
            .map_err(|e| format!("cannot connect: {e}"))?;
        let conn = connecting
            .await
            .map_err(|e| crate::tls::handshake_failure(&e))?;
        let presented = conn
            .peer_identity()
            .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|certs| certs.first().and_then(key_pin_of_cert));
        if presented != Some(pin) {
            conn.close(0u32.into(), b"not the member");
            return Err(format!(
                "the node at {address} is not member {id} of this cluster: its TLS key is not \
                 the one the member record pins (another cluster on the same CA, or a removed \
                 member?)"
            ));
        }
        tracing::debug!(address, "connected");
        Ok(conn)
    }
}

fn close(node: &NodeConn, reason: &[u8]) {
    if let Some(c) = lock(&node.cached).take() {
        c.close(0u32.into(), reason);
    }
}

/// Sends one encoded request on a new stream of `conn` and reads the
/// response.
pub(crate) async fn exchange(
    conn: &quinn::Connection,
    request: &[u8],
) -> Result<Response, AttemptError> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| AttemptError::Transport(format!("connection lost: {e}")))?;
    write_frame(&mut send, request).await.map_err(|e| match e {
        FrameError::TooLarge { .. } => AttemptError::Protocol(e.to_string()),
        _ => AttemptError::Transport(format!("sending failed: {e}")),
    })?;
    let bytes = read_frame(&mut recv, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            FrameError::TooLarge { .. } => AttemptError::Protocol(format!("response refused: {e}")),
            FrameError::Truncated { .. } | FrameError::Stream(_) => {
                AttemptError::Transport(format!("no response: {e}"))
            }
        })?;
    codec::decode("response", &bytes).map_err(|e| AttemptError::Protocol(e.to_string()))
}
