//! Tuning of a [`Client`](crate::Client).

use std::time::Duration;

/// How a [`Client`](crate::Client) behaves. Start from
/// [`ClientOptions::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use hsm_client::ClientOptions;
///
/// let options = ClientOptions::default()
///     .deadline(Duration::from_secs(3))
///     .max_in_flight(256)
///     .zone("eu-west-1a");
/// assert_eq!(options.max_in_flight, 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Time a call may take in all, from the wait for an in-flight slot to
    /// the last retry. Default 10 s. Override per call with
    /// [`Client::with_deadline`](crate::Client::with_deadline).
    pub deadline: Duration,
    /// Requests in flight at once over the whole client (all clones); more
    /// wait for a slot. Default 1024.
    pub max_in_flight: usize,
    /// The caller's zone: reads and crypto go to nodes in it while any is
    /// up (a call whose new connection in the zone is slow, over 250 ms
    /// for two more of its nodes, is served by the first node of any zone
    /// that connects). Default: the config file's `zone`, if any.
    pub zone: Option<String>,
    /// Time a QUIC connection to a node may take before the node is
    /// counted as failed. Other nodes are connected to alongside one that
    /// has not connected within 250 ms, so a call does not wait this long
    /// while others answer. Default 2 s.
    pub connect_timeout: Duration,
    /// Time one attempt may take (connecting, then the request and its
    /// answer) before the call moves on to another node; `None` (default):
    /// the rest of the call's deadline.
    pub attempt_timeout: Option<Duration>,
    /// How often the member list and leader are refreshed from the cluster
    /// while calls are made. Failures also trigger a refresh. Default 30 s.
    pub refresh_interval: Duration,
    /// Follow the cluster's membership: use nodes added after the config
    /// was written and stop using removed ones. When false, only the nodes
    /// the config lists are ever used (to talk to one node on purpose, for
    /// diagnostics). Default true.
    pub follow_membership: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            deadline: Duration::from_secs(10),
            max_in_flight: 1024,
            zone: None,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: None,
            refresh_interval: Duration::from_secs(30),
            follow_membership: true,
        }
    }
}

impl ClientOptions {
    /// Sets [`ClientOptions::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets [`ClientOptions::max_in_flight`].
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Sets [`ClientOptions::zone`].
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets [`ClientOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::attempt_timeout`].
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets [`ClientOptions::refresh_interval`].
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Sets [`ClientOptions::follow_membership`].
    pub fn follow_membership(mut self, follow: bool) -> Self {
        self.follow_membership = follow;
        self
    }

    /// Checks the values.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.deadline.is_zero() {
            return Err("deadline must be positive".into());
        }
        if self.max_in_flight == 0 || self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(format!(
                "max_in_flight {} is not between 1 and {}",
                self.max_in_flight,
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err("connect_timeout must be positive".into());
        }
        if self.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Err("attempt_timeout must be positive".into());
        }
        if self.zone.as_deref() == Some("") {
            return Err("zone is empty: leave it unset or name one".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        assert!(ClientOptions::default().validate().is_ok());
        assert!(ClientOptions::default()
            .max_in_flight(0)
            .validate()
            .is_err());
        assert!(ClientOptions::default()
            .deadline(Duration::ZERO)
            .validate()
            .is_err());
        assert!(ClientOptions::default()
            .attempt_timeout(Duration::ZERO)
            .validate()
            .is_err());
        assert!(ClientOptions::default().zone("").validate().is_err());
    }
}
