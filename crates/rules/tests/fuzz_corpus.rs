//! Replays the formula fuzz target's corpus (and any crash files) through the same checks.

#[test]
fn formula_fuzz_corpus_replays_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus/formula", "artifacts/formula"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| rules::formula::fuzz_check(&data));
            assert!(r.is_ok(), "fuzz input {} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 20, "the corpus has only {n} inputs");
}
