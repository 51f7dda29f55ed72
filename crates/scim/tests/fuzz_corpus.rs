//! Replays every saved input of the fuzz target (fuzz/corpus, and crash files in
//! fuzz/artifacts once the fuzzer has found any) through the same checks the fuzzer runs.

use std::path::Path;

#[test]
fn fuzz_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus/filter_patch", "artifacts/filter_patch"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| scim::fuzzing::filter_and_patch(&data));
            assert!(r.is_ok(), "fuzz input {} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 20, "the corpus has only {n} inputs");
}
