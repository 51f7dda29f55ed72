//! Roles and mappings evaluated for 100,000 workers: the example configuration
//! (examples/tenure.toml: 4 roles, 7 mappings with a unique user name) on one connection;
//! then a load's per-field summary with its warnings, beside reading the same file.
//!
//! cargo bench -p rules --bench evaluate        (BENCH_ROWS, default 100000)

use hr::generate::{generate, to_csv};
use rules::{make_unique, worker_row, Config, Rules};
use std::collections::HashSet;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let n: usize = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let csv = to_csv(&generate(n, 42));
    let t = Instant::now();
    let workers = hr::parse_csv("w.csv", &csv, &hr::HeaderDefinition::default()).unwrap().accepted;
    let read = t.elapsed();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let t = Instant::now();
    let rules = Rules::compile(&Config::from_toml(path, &text).unwrap()).unwrap();
    let compile = t.elapsed();
    let today = jiff::civil::date(2026, 11, 29);
    let mut times = vec![];
    let mut summary = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut granted = 0;
        let mut names = Vec::with_capacity(workers.len());
        for w in &workers {
            let row = worker_row(w, rules.custom_fields());
            let d = rules.decide_with(0, &row, today, false);
            if d.grant.is_some() {
                granted += 1;
                if let Some(Ok(v)) = d.attributes.iter().find(|a| a.target == "userName").map(|a| &a.value) {
                    names.push(v.to_text());
                }
            }
        }
        let unique = make_unique(&names, &HashSet::new());
        let renamed = unique.iter().zip(&names).filter(|(a, b)| a != b).count();
        times.push(t.elapsed());
        summary = format!("{} workers: {granted} granted an account, {renamed} user names made unique", workers.len());
    }
    times.sort();
    println!("{summary}");
    println!("configuration compiled once in {:.2} ms", compile.as_secs_f64() * 1000.0);
    println!(
        "roles + mappings for {n} workers: best {:.0} ms, median {:.0} ms of 5 [bar: under 1000 ms]; peak RSS {:.0} MiB",
        times[0].as_secs_f64() * 1000.0,
        times[2].as_secs_f64() * 1000.0,
        peak_rss_mib()
    );
    let cfg = Config::from_toml(path, &text).unwrap();
    let of = rules::summary::SummaryRules::of(&cfg);
    let mut times = vec![];
    let mut said = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let s = rules::summary::summarize(&workers, &of, today);
        times.push(t.elapsed());
        said = format!("{} fields, {} warning(s)", s.fields.len(), s.unnamed.len());
    }
    times.sort();
    println!(
        "per-field summary of {n} workers ({said}): best {:.0} ms, median {:.0} ms of 5; reading the file: {:.0} ms \
         [bar: at most a quarter of reading it]",
        times[0].as_secs_f64() * 1000.0,
        times[2].as_secs_f64() * 1000.0,
        read.as_secs_f64() * 1000.0
    );
}
