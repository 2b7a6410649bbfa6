//! Read-your-writes: the highest log index this client has seen applied.

use std::sync::atomic::{AtomicU64, Ordering};

/// The highest `applied_index` seen in any response. Sent as `min_index`
/// so every node serves a request only once it has applied everything this
/// client has seen. Only grows.
#[derive(Debug, Default)]
pub(crate) struct AppliedIndex(AtomicU64);

impl AppliedIndex {
    /// Records an index from a response.
    pub(crate) fn observe(&self, index: u64) {
        self.0.fetch_max(index, Ordering::AcqRel);
    }

    /// The highest index seen.
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_only_grows() {
        let i = AppliedIndex::default();
        assert_eq!(i.current(), 0);
        i.observe(7);
        i.observe(3);
        assert_eq!(i.current(), 7);
        i.observe(12);
        assert_eq!(i.current(), 12);
    }

    #[test]
    fn concurrent_observers_keep_the_maximum() {
        let i = std::sync::Arc::new(AppliedIndex::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let i = i.clone();
                std::thread::spawn(move || {
                    for n in 0..1000 {
                        i.observe(n * 4 + t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(i.current(), 3999);
    }
}
