//! openraft's own storage test suite, run against the RocksDB store.

use hsm_raft_store::{create, LogStore, StateMachineStore, StorageKey, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<hsm_proto::NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = create(dir.path(), &StorageKey::generate()).expect("store created");
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
