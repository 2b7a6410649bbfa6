//! `hsm-chaos check DIR` as an operator runs it: exit 0 and "valid" for a
//! correct history, exit 1 naming the checker for a bad one, exit 2 for a
//! directory without a history.

use std::process::Command;

use hsm_chaos::history::{write_jsonl, Entry, Failure, Op, Outcome};

fn entry(id: u64, op: Op, at: (u64, u64), outcome: Outcome) -> Entry {
    Entry {
        id,
        process: 1,
        actor: "alice".into(),
        node: None,
        op,
        invoke_ms: at.0,
        complete_ms: at.1,
        outcome,
    }
}

fn check(history: &[Entry]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(dir.path().join("history.jsonl")).expect("create");
    write_jsonl(history, file).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-chaos"))
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run hsm-chaos");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_says_valid_or_names_the_anomaly() {
    let created = entry(
        0,
        Op::CreateKey { label: "k".into() },
        (0, 10),
        Outcome::Ok {
            created: Some(7),
            seen: None,
        },
    );
    let signed = entry(1, Op::Sign { key: 7 }, (11, 12), Outcome::DONE);
    let (code, out) = check(&[created.clone(), signed]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: valid"), "{out}");

    let lost = entry(
        1,
        Op::ReadKey { key: 7 },
        (11, 12),
        Outcome::Failed {
            failure: Failure::NotFound,
        },
    );
    let (code, out) = check(&[created, lost]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("acknowledged-writes"), "{out}");
    assert!(out.contains("verdict: invalid"), "{out}");
}

#[test]
fn check_without_a_history_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-chaos"))
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run hsm-chaos");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("history.jsonl"));
}
