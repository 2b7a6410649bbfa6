//! The cluster's time: the leader's wall clock, wherever it is read.
//!
//! The leader stamps its clock into every event, so the replicated state
//! already lives on that one clock. Sessions must live on it too: a token
//! is issued at, and refused from, a time on the leader's clock, whichever
//! node issues or checks it. Otherwise a member whose clock is an hour
//! behind honours a session an hour past its end, and one an hour ahead
//! refuses every session the others issue and issues its own an hour too
//! long.
//!
//! A node learns the leader's time with the read index it takes before
//! serving any request (`service::barrier`): the leader stamps its answer
//! with its clock, and the node adds what its own *monotonic* clock
//! measured since it asked ([`leader_time_ms`]). A follower's wall clock
//! is never read for this. On the leader, its own wall clock is the
//! cluster's.
//!
//! What this assumes: monotonic clocks of members run at the same rate to
//! within a few parts per million (an estimate is used for at most a
//! request's deadline, so the error is a fraction of a millisecond), and
//! the leader's wall clock does not jump. If it does (an operator sets it,
//! or leadership moves to a member whose clock is off), the whole cluster
//! moves with it, as event timestamps already do.

use std::time::Duration;

use tokio::time::Instant;

/// The latest time the leader's clock can show now, given the time
/// `stamped_ms` it put on its answer to a question this node asked
/// `since_asked` ago (by this node's monotonic clock).
///
/// The leader answered after the question left, so at most `since_asked`
/// has passed on its clock since it stamped the answer. Judging by the
/// latest time it can be, a node refuses a session no later than the
/// leader would (at most one round trip earlier), never after.
pub fn leader_time_ms(stamped_ms: u64, since_asked: Duration) -> u64 {
    let since_ms = u64::try_from(since_asked.as_millis()).unwrap_or(u64::MAX);
    stamped_ms.saturating_add(since_ms)
}

/// Where a node gets the cluster's time for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterTime {
    /// This node leads: its own wall clock is the cluster's.
    Leading,
    /// The leader stamped `leader_ms` on its answer to a read-index
    /// question this node asked at `asked_at` (monotonic).
    Asked {
        /// The leader's wall clock when it answered, ms since the epoch.
        leader_ms: u64,
        /// When this node sent the question.
        asked_at: Instant,
    },
}

impl ClusterTime {
    /// The cluster's time now, ms since the Unix epoch: this node's wall
    /// clock when it leads, else [`leader_time_ms`] from the leader's
    /// stamp and the monotonic time since the question was asked.
    pub fn now_ms(&self) -> u64 {
        self.at_ms(Instant::now(), crate::service::now_ms())
    }

    /// [`ClusterTime::now_ms`] when the monotonic clock reads `now` and
    /// this node's wall clock `wall_ms` (read only when this node leads).
    pub fn at_ms(&self, now: Instant, wall_ms: u64) -> u64 {
        match *self {
            ClusterTime::Leading => wall_ms,
            ClusterTime::Asked {
                leader_ms,
                asked_at,
            } => leader_time_ms(leader_ms, now.saturating_duration_since(asked_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{leader_time_ms, ClusterTime};
    use crate::secrets::session::{issue, verify, SessionClaims, SessionError};
    use crate::secrets::DomainKey;

    /// A leader's clock.
    const LEADER_MS: u64 = 1_700_000_000_000;
    /// A follower's wall clock, two hours behind the leader's.
    const FOLLOWER_WALL_MS: u64 = LEADER_MS - 7_200_000;

    #[test]
    fn the_leaders_time_is_its_stamp_plus_the_time_since_the_question_left() {
        assert_eq!(leader_time_ms(LEADER_MS, Duration::ZERO), LEADER_MS);
        assert_eq!(
            leader_time_ms(LEADER_MS, Duration::from_millis(250)),
            LEADER_MS + 250
        );
        assert_eq!(
            leader_time_ms(LEADER_MS, Duration::from_micros(1_999)),
            LEADER_MS + 1
        );
        assert_eq!(
            leader_time_ms(LEADER_MS, Duration::from_secs(2 * 3600)),
            LEADER_MS + 7_200_000
        );
    }

    #[test]
    fn the_leaders_time_saturates_instead_of_wrapping() {
        assert_eq!(
            leader_time_ms(u64::MAX - 1, Duration::from_secs(1)),
            u64::MAX
        );
        assert_eq!(leader_time_ms(0, Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_follower_counts_on_from_the_leaders_stamp_never_from_its_wall_clock() {
        let asked_at = Instant::now();
        let time = ClusterTime::Asked {
            leader_ms: LEADER_MS,
            asked_at,
        };
        assert_eq!(time.at_ms(asked_at, FOLLOWER_WALL_MS), LEADER_MS);
        let later = asked_at + Duration::from_secs(90);
        assert_eq!(time.at_ms(later, FOLLOWER_WALL_MS), LEADER_MS + 90_000);
        assert_eq!(time.at_ms(later, u64::MAX), LEADER_MS + 90_000);
        // A monotonic reading from before the question counts as none.
        let before = ClusterTime::Asked {
            leader_ms: LEADER_MS,
            asked_at: later,
        };
        assert_eq!(before.at_ms(asked_at, FOLLOWER_WALL_MS), LEADER_MS);
    }

    #[test]
    fn the_leader_judges_by_its_own_wall_clock() {
        let now = Instant::now();
        assert_eq!(ClusterTime::Leading.at_ms(now, LEADER_MS), LEADER_MS);
        assert_eq!(
            ClusterTime::Leading.at_ms(now + Duration::from_secs(5), LEADER_MS + 1),
            LEADER_MS + 1
        );
    }

    /// A session the leader issued ends on the leader's time at a follower
    /// whose wall clock is two hours behind (or ahead).
    #[test]
    fn a_session_ends_on_the_leaders_time_at_a_follower_with_a_wrong_clock() {
        let dk = DomainKey::generate(0);
        let user = hsm_state::User::new(
            hsm_proto::Username::new("alice").expect("valid"),
            hsm_proto::Role::Cu,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            1,
        );
        let token = issue(
            &dk,
            &SessionClaims::new(&user, LEADER_MS, Duration::from_secs(60)),
        );
        // The follower's question left at `asked_at`; the leader stamped
        // `LEADER_MS` on its answer some time after.
        let asked_at = Instant::now();
        let time = ClusterTime::Asked {
            leader_ms: LEADER_MS,
            asked_at,
        };
        for wall_ms in [FOLLOWER_WALL_MS, LEADER_MS + 7_200_000] {
            let judged = |since_asked_ms: u64| {
                let now = asked_at + Duration::from_millis(since_asked_ms);
                verify(&dk, token.as_bytes(), time.at_ms(now, wall_ms))
            };
            assert!(judged(0).is_ok());
            assert!(judged(59_999).is_ok());
            // 60 s after the question left, which is at most 60 s after
            // the leader's stamp: refused up to a round trip early, never
            // late.
            assert_eq!(judged(60_000), Err(SessionError::Expired));
            assert_eq!(judged(7_200_000), Err(SessionError::Expired));
        }
    }
}
