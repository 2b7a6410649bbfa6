//! Every fuzz target's committed corpus (`fuzz/corpus/<target>`: the seeds
//! and what fuzzing campaigns kept) replayed as an ordinary test, on the
//! stable toolchain in every build: an input that once crashed a decoder
//! stays fixed.

use std::path::PathBuf;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, run) in hsm_fuzz::TARGETS {
        let dir = corpus.join(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(
            inputs.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
            "{target}: no seeds (cargo run -p hsm-fuzz --example seeds -- fuzz/corpus)"
        );
        for input in &inputs {
            let data = std::fs::read(input).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", input.display());
        }
        println!("{target}: {} inputs", inputs.len());
    }
}

#[test]
fn every_target_has_a_libfuzzer_entry() {
    let targets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets");
    for (target, _) in hsm_fuzz::TARGETS {
        let file = targets.join(format!("{target}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("hsm_fuzz::{target}(")),
            "{} does not run hsm_fuzz::{target}",
            file.display()
        );
    }
}
