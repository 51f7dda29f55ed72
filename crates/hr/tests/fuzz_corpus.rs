//! Replays the CSV fuzz target's corpus (and any crash files) through the same checks.

#[test]
fn hr_csv_fuzz_corpus_replays_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus/hr_csv", "artifacts/hr_csv"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| hr::csv_source::fuzz_check(&data));
            assert!(r.is_ok(), "fuzz input {} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 4, "the corpus has only {n} inputs");
}
