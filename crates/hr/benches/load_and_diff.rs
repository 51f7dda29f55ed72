//! A 100,000-row CSV parsed, validated and diffed against a 100,000-worker snapshot.
//!
//! cargo bench -p hr --bench load_and_diff        (BENCH_ROWS, default 100000)

use hr::generate::{generate, next_day, to_csv};
use hr::{detect, parse_csv, HeaderDefinition, LifecycleConfig};
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
    let rows = generate(n, 42);
    let day1 = to_csv(&rows);
    let day2 = to_csv(&next_day(&rows, 42));
    let def = HeaderDefinition::default();
    let snapshot =
        parse_csv("day1.csv", &day1, &def).unwrap().accepted.into_iter().map(|w| (w.id.clone(), w)).collect();
    let now = "2026-11-29T12:00:00Z".parse().unwrap();
    let mut times = vec![];
    let mut summary = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let report = parse_csv("day2.csv", &day2, &def).unwrap();
        let parsed = t.elapsed();
        let events = detect(&snapshot, &report.accepted, true, now, &LifecycleConfig::default());
        let total = t.elapsed();
        times.push(total);
        summary = format!(
            "{} rows ({:.1} MiB) -> {} accepted, {} quarantined, {} events; parse+validate {:.0} ms, diff {:.0} ms",
            report.rows,
            day2.len() as f64 / (1 << 20) as f64,
            report.accepted.len(),
            report.quarantined.len(),
            events.len(),
            parsed.as_secs_f64() * 1000.0,
            (total - parsed).as_secs_f64() * 1000.0
        );
    }
    times.sort();
    println!("{summary}");
    println!(
        "parse + validate + diff against a {n}-worker snapshot: best {:.0} ms, median {:.0} ms of 5 [bar: under 2000 ms]",
        times[0].as_secs_f64() * 1000.0,
        times[2].as_secs_f64() * 1000.0
    );
    println!(
        "peak RSS of the whole process (both files, snapshot, one load): {:.0} MiB [bar: under 500 MiB]",
        peak_rss_mib()
    );
}
