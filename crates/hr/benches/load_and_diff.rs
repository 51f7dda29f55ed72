//! A 100,000-row CSV parsed, validated and diffed against a 100,000-worker snapshot: tenure's
//! own 19-column header, then a 60-column export shaped like a Workday report (its own
//! header names, US dates found per column, 41 columns the definition ignores).
//!
//! cargo bench -p hr --bench load_and_diff        (BENCH_ROWS, default 100000)

use hr::generate::{generate, next_day, to_csv};
use hr::{detect, parse_csv, Column, Field, HeaderDefinition, LifecycleConfig, BUILTIN};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The export's own names for the fields, as a Workday report writes them.
const EXPORT_NAMES: [(&str, &str); 19] = [
    ("employee_id", "Employee ID"),
    ("first_name", "Legal First Name"),
    ("last_name", "Legal Last Name"),
    ("preferred_name", "Preferred First Name"),
    ("work_email", "Work Email Address"),
    ("title", "Business Title"),
    ("department", "Job Family"),
    ("division", "Division"),
    ("location", "Location"),
    ("cost_center", "Cost Center"),
    ("manager_id", "Manager Employee ID"),
    ("employment_type", "Worker Sub-Type"),
    ("status", "Worker Status"),
    ("leave_type", "Leave Type"),
    ("hire_date", "Hire Date"),
    ("termination_date", "Termination Date"),
    ("leave_start", "Leave Start Date"),
    ("leave_end", "Estimated Leave End Date"),
    ("time_zone", "Time Zone"),
];

fn export_name(field: &str) -> &'static str {
    EXPORT_NAMES.iter().find(|(f, _)| *f == field).map(|(_, e)| *e).expect("every field has an export name")
}

/// The file as a 60-column export: the same rows under the export's names, dates written
/// month-first, and enough columns of the kind tenure does not read to make 60.
fn as_export(csv: &[u8]) -> Vec<u8> {
    let mut r = csv::Reader::from_reader(csv);
    let own: Vec<String> = r.headers().unwrap().iter().map(|h| export_name(h).to_string()).collect();
    let fill = 60 - own.len();
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(own.iter().cloned().chain((1..=fill).map(|i| format!("Report Field {i}")))).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let cells = rec.iter().map(|v| {
            // 2024-03-05 as 03/05/2024.
            let b = v.as_bytes();
            if v.len() == 10 && b[4] == b'-' && b[7] == b'-' {
                format!("{}/{}/{}", &v[5..7], &v[8..10], &v[..4])
            } else {
                v.to_string()
            }
        });
        let filler = (1..=fill).map(|i| format!("value {i} {}", &rec[0]));
        w.write_record(cells.chain(filler)).unwrap();
    }
    w.into_inner().unwrap()
}

fn export_definition() -> HeaderDefinition {
    let def = HeaderDefinition {
        columns: BUILTIN.iter().map(|(n, f)| Column::new(export_name(n), f.clone(), f.needed())).collect(),
        ..Default::default()
    };
    assert!(def.columns.iter().any(|c| c.field == Field::HireDate));
    def
}

fn main() {
    let n: usize = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    // BENCH_ONLY=export measures the 60-column export alone, so its peak RSS is its own.
    let only_export = std::env::var("BENCH_ONLY").as_deref() == Ok("export");
    let rows = generate(n, 42);
    let day1 = to_csv(&rows);
    let day2 = to_csv(&next_day(&rows, 42));
    drop(rows);
    let def = HeaderDefinition::default();
    let snapshot =
        parse_csv("day1.csv", &day1, &def).unwrap().accepted.into_iter().map(|w| (w.id.clone(), w)).collect();
    let now = "2026-11-29T12:00:00Z".parse().unwrap();
    let mut times = vec![];
    let mut summary = String::new();
    for _ in 0..if only_export { 0 } else { 5 } {
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
    if !only_export {
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
    if std::env::var("BENCH_ONLY").as_deref() == Ok("own") {
        return;
    }
    // The 60-column export: a process of its own would be fairer for RSS; this one has the
    // 19-column files too, so its peak is an upper bound.
    drop(day1);
    let export = as_export(&day2);
    drop(day2);
    let def = export_definition();
    let mut times = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        let report = parse_csv("export.csv", &export, &def).unwrap();
        let parsed = t.elapsed();
        let events = detect(&snapshot, &report.accepted, true, now, &LifecycleConfig::default());
        let total = t.elapsed();
        times.push(total);
        summary = format!(
            "60-column export: {} rows ({:.1} MiB), {} columns ignored, dates read as {:?} -> {} accepted, {} \
             quarantined, {} events; parse+validate {:.0} ms, diff {:.0} ms",
            report.rows,
            export.len() as f64 / (1 << 20) as f64,
            report.ignored_columns.len(),
            report.date_formats.get("Hire Date"),
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
        "60-column export, parse + validate + diff: best {:.0} ms, median {:.0} ms of 5 [bar: under 2000 ms]",
        times[0].as_secs_f64() * 1000.0,
        times[2].as_secs_f64() * 1000.0
    );
    println!("peak RSS after the 60-column export: {:.0} MiB [bar: under 500 MiB]", peak_rss_mib());
}
