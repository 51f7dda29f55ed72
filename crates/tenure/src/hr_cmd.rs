//! `tenure hr validate`: checks an HR file against its header definition and reports, without
//! changing anything.

use clap::Subcommand;
use hr::{Encoding, HeaderDefinition};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum HrCommand {
    /// Check a CSV file (or JSON / JSON Lines, by extension); the last line is
    /// `rows: N, accepted: A, quarantined: Q`. Exit code 0
    /// when every row is accepted, 2 when rows were quarantined, 1 when the file is rejected.
    Validate {
        file: PathBuf,
        /// The full report as JSON.
        #[arg(long)]
        json: bool,
        /// utf-8 (default, with or without BOM) or windows-1252.
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        /// The field separator.
        #[arg(long, default_value = ",")]
        delimiter: char,
        /// Date formats to accept, in order (strftime style); default %m/%d/%Y and %Y-%m-%d.
        #[arg(long = "date-format")]
        date_formats: Vec<String>,
    },
    /// Write a realistic data set (accented names, namesakes, leaves, future hires and
    /// terminations); `--next-day` writes the following day's file too.
    Generate {
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the next day's file (movers, leavers, rehires, hires) here.
        #[arg(long)]
        next_day: Option<PathBuf>,
    },
}

/// Runs the command; the exit code says how the file fared.
pub fn run(cmd: HrCommand) -> Result<u8, String> {
    match cmd {
        HrCommand::Validate { file, json, encoding, delimiter, date_formats } => {
            validate(file, json, &encoding, delimiter, date_formats)
        }
        HrCommand::Generate { count, seed, out, next_day } => {
            let rows = hr::generate::generate(count, seed);
            let write = |path: Option<&PathBuf>, bytes: Vec<u8>| match path {
                Some(p) => std::fs::write(p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display())),
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes).map_err(|e| e.to_string())
                }
            };
            write(out.as_ref(), hr::generate::to_csv(&rows))?;
            if let Some(p) = next_day {
                write(Some(&p), hr::generate::to_csv(&hr::generate::next_day(&rows, seed)))?;
            }
            Ok(0)
        }
    }
}

fn validate(
    file: PathBuf,
    json: bool,
    encoding: &str,
    delimiter: char,
    date_formats: Vec<String>,
) -> Result<u8, String> {
    let encoding = match encoding.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => Encoding::Utf8,
        "windows-1252" | "cp1252" | "latin1" => Encoding::Windows1252,
        other => return Err(format!("unknown encoding {other:?}: use utf-8 or windows-1252")),
    };
    let delimiter =
        u8::try_from(delimiter).ok().filter(u8::is_ascii).ok_or("the delimiter must be one ASCII character")?;
    let mut def = HeaderDefinition { encoding, delimiter, ..HeaderDefinition::default() };
    if !date_formats.is_empty() {
        def.date_formats = date_formats;
    }
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.display().to_string();
    // JSON and JSON Lines by their extension; CSV otherwise.
    let is_json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "json" | "jsonl" | "ndjson"));
    let parsed = if is_json { hr::parse_json(&name, &bytes, &def) } else { hr::parse_csv(&name, &bytes, &def) };
    let report = match parsed {
        Ok(r) => r,
        Err(rejected) => {
            if json {
                println!("{}", serde_json::json!({"rejected": rejected}));
            } else {
                println!("{rejected}");
            }
            println!("rows: 0, accepted: 0, quarantined: 0 (file rejected)");
            return Ok(1);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        for q in &report.quarantined {
            for p in &q.problems {
                println!(
                    "{name}: row {} (line {}), column {}, value {:?}: {}",
                    q.row, q.line, p.column, p.value, p.reason
                );
            }
        }
    }
    println!("rows: {}, accepted: {}, quarantined: {}", report.rows, report.accepted.len(), report.quarantined.len());
    Ok(if report.quarantined.is_empty() { 0 } else { 2 })
}
