//! Realistic HR data for demos, tests and benchmarks: Unicode and accented names, namesakes,
//! managers, leaves, past and future-dated terminations, future hires. Deterministic per seed;
//! `next_day` makes the following day's file with movers, leavers, hires and rehires.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIRST: &[&str] = &[
    "Amélie",
    "José",
    "Zoë",
    "Søren",
    "Łukasz",
    "Chloé",
    "Björn",
    "Núria",
    "Yūki",
    "Mei",
    "Oluwaseun",
    "Siobhán",
    "François",
    "Ana",
    "John",
    "Maria",
    "Wei",
    "Priya",
    "Mohammed",
    "Fatima",
    "Jean",
    "Hana",
    "Carlos",
    "Ines",
    "Dmitri",
    "Aisha",
    "Lars",
    "Noémie",
    "Kofi",
    "Elif",
];
const LAST: &[&str] = &[
    "Durand",
    "García López",
    "Ñúñez",
    "Øster",
    "Müller",
    "Kowalski",
    "Nakamura",
    "O'Brien",
    "Smith",
    "Li",
    "Sharma",
    "Martin",
    "Kobayashi",
    "Silva",
    "Nguyen",
    "Haddad",
    "Andersson",
    "Moreau",
    "Okafor",
    "Yılmaz",
];
const DEPARTMENTS: &[(&str, &[&str])] = &[
    ("Engineering", &["Engineer", "Senior Engineer", "Staff Engineer", "Engineering Manager"]),
    ("Sales", &["Account Executive", "Sales Engineer", "Sales Manager"]),
    ("Support", &["Support Agent", "Support Lead"]),
    ("Design", &["Product Designer", "Design Lead"]),
    ("Finance", &["Accountant", "Controller"]),
];
const PLACES: &[(&str, &str)] = &[
    ("Paris", "Europe/Paris"),
    ("New York", "America/New_York"),
    ("São Paulo", "America/Sao_Paulo"),
    ("Tokyo", "Asia/Tokyo"),
    ("London", "Europe/London"),
    ("Los Angeles", "America/Los_Angeles"),
    ("Sydney", "Australia/Sydney"),
];
pub const HEADER: &[&str] = &[
    "employee_id",
    "first_name",
    "last_name",
    "work_email",
    "title",
    "department",
    "location",
    "manager_id",
    "employment_type",
    "status",
    "leave_type",
    "hire_date",
    "termination_date",
    "leave_start",
    "time_zone",
];

/// Letters as plain ASCII for e-mail addresses.
fn ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        let m = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
            'ú' | 'ù' | 'û' | 'ü' | 'ū' => "u",
            'ñ' => "n",
            'ç' => "c",
            'ł' => "l",
            'ß' => "ss",
            'a'..='z' | '0'..='9' => {
                out.push(c);
                continue;
            }
            _ => "",
        };
        out.push_str(m);
    }
    out
}

fn date(rng: &mut StdRng, from_year: i16, to_year: i16) -> String {
    format!("{}-{:02}-{:02}", rng.gen_range(from_year..=to_year), rng.gen_range(1..=12), rng.gen_range(1..=28))
}

/// `count` workers, as rows in `HEADER` order.
pub fn generate(count: usize, seed: u64) -> Vec<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let id = 100_000 + i;
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            let (dept, titles) = DEPARTMENTS[rng.gen_range(0..DEPARTMENTS.len())];
            let (place, tz) = PLACES[rng.gen_range(0..PLACES.len())];
            let manager = if i < 10 { String::new() } else { (100_000 + rng.gen_range(0..10.min(i))).to_string() };
            let kind = match rng.gen_range(0..100) {
                0..=79 => "employee",
                80..=91 => "contractor",
                92..=96 => "intern",
                _ => "temporary",
            };
            let roll = rng.gen_range(0..1000);
            let (status, leave_type, term, leave_start, hire) = match roll {
                0..=59 => ("terminated", "", date(&mut rng, 2023, 2026), "", date(&mut rng, 2010, 2022)),
                60..=109 => {
                    let t = ["fmla", "long_term", "legal", "security", "discipline"][rng.gen_range(0..5)];
                    ("leave", t, String::new(), "2026-10-01", date(&mut rng, 2010, 2025))
                }
                // Leaving soon: still active, termination date ahead.
                110..=129 => ("active", "", date(&mut rng, 2027, 2027), "", date(&mut rng, 2010, 2025)),
                // Joining soon.
                130..=149 => ("active", "", String::new(), "", date(&mut rng, 2027, 2027)),
                _ => ("active", "", String::new(), "", date(&mut rng, 2010, 2026)),
            };
            vec![
                id.to_string(),
                first.to_string(),
                last.to_string(),
                format!("{}.{}.{id}@acme.example", ascii(first), ascii(last)),
                titles[rng.gen_range(0..titles.len())].to_string(),
                dept.to_string(),
                place.to_string(),
                manager,
                kind.to_string(),
                status.to_string(),
                leave_type.to_string(),
                hire,
                term,
                leave_start.to_string(),
                tz.to_string(),
            ]
        })
        .collect()
}

/// The next day's file: about 1% movers (new title), 0.5% leavers, 3% of former workers
/// rehired, and 0.5% new hires appended.
pub fn next_day(rows: &[Vec<String>], seed: u64) -> Vec<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut out: Vec<Vec<String>> = rows.to_vec();
    for r in out.iter_mut() {
        let roll = rng.gen_range(0..1000);
        if r[9] == "terminated" {
            // About 3% of those who left come back.
            if roll < 30 {
                r[9] = "active".into();
                r[12] = String::new();
                r[11] = "2026-12-01".into();
            }
            continue;
        }
        match roll {
            0..=9 => r[4] = format!("{} II", r[4]),
            // Leavers among those already hired (ISO dates compare as text).
            10..=14 if r[9] == "active" && r[11].as_str() < "2026-11-30" => {
                r[9] = "terminated".into();
                r[12] = "2026-11-30".into();
            }
            _ => {}
        }
    }
    let extra = generate(rows.len() / 200 + 1, seed.wrapping_add(1));
    let base = 100_000 + rows.len();
    for (k, mut r) in extra.into_iter().enumerate() {
        r[0] = (base + k).to_string();
        r[3] = format!("new.{}@acme.example", base + k);
        r[9] = "active".into();
        r[12] = String::new();
        out.push(r);
    }
    out
}

/// Rows as CSV text with the header.
pub fn to_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(HEADER).expect("writing to memory");
    for r in rows {
        // As every CSV tenure writes: no cell a spreadsheet would run as a formula.
        w.write_record(r.iter().map(|v| crate::csv_safe(v).into_owned())).expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}
