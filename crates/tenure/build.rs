//! What `tenure --version` says beside the version: the commit it was built from and the day.
//! From git when the source is a checkout; TENURE_COMMIT and SOURCE_DATE_EPOCH win (a package
//! built from a tarball, a reproducible build).

use std::process::Command;

fn main() {
    let commit = std::env::var("TENURE_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let o = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    let dirty = commit.is_some()
        && std::env::var("TENURE_COMMIT").is_err()
        && Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    let commit = commit.map(|c| if dirty { format!("{c}-modified") } else { c }).unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    });
    println!("cargo:rustc-env=TENURE_COMMIT={commit}");
    println!("cargo:rustc-env=TENURE_BUILD_DATE={}", civil_date(epoch));
    // Built again when the checkout moves to another commit, not at every build.
    for f in ["../../.git/HEAD", "../../.git/refs/heads", "../../.git/index"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=TENURE_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}

/// YYYY-MM-DD of a Unix time (UTC), by the civil-from-days algorithm.
fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
