//! The HR header definition: one proposed from a sample export (each column's likely field
//! and date format, and what could not be placed), and the one in force, both as TOML to edit
//! and import.

use crate::error::{Error, Result};
use hr::dates::Evidence;
use hr::{header_key, Encoding, Field, HeaderDefinition};
use std::collections::BTreeSet;
use std::fmt::Write;

/// What each field's column is called in the exports of common HR systems (Workday,
/// BambooHR, Personio, ADP, SuccessFactors), compared by `header_key`.
const NAMES: [(&str, &[&str]); 19] = [
    (
        "employee_id",
        &[
            "employeeid",
            "employee#",
            "emp#",
            "eid",
            "employeenumber",
            "employeeno",
            "workerid",
            "personnelnumber",
            "personalnummer",
            "empid",
            "associateid",
            "personid",
            "userid",
            "id",
        ],
    ),
    ("first_name", &["firstname", "legalfirstname", "givenname", "vorname", "forename", "first"]),
    ("last_name", &["lastname", "legallastname", "familyname", "surname", "nachname", "last"]),
    ("preferred_name", &["preferredname", "preferredfirstname", "nickname", "knownas", "rufname"]),
    (
        "work_email",
        &["workemail", "workemailaddress", "businessemail", "primaryworkemail", "email", "emailaddress", "emailwork"],
    ),
    ("title", &["jobtitle", "businesstitle", "positiontitle", "title", "position", "jobprofile", "jobname"]),
    (
        "department",
        &["department", "departmentname", "dept", "jobfamily", "supervisoryorganization", "abteilung", "team"],
    ),
    ("division", &["division", "businessunit", "subsidiary"]),
    ("location", &["location", "worklocation", "locationname", "office", "site", "standort", "workplace"]),
    ("cost_center", &["costcenter", "costcentre", "costcentername", "kostenstelle"]),
    (
        "manager_id",
        &[
            "managerid",
            "supervisoreid",
            "manager#",
            "managereid",
            "manageremployeeid",
            "supervisorid",
            "supervisoremployeeid",
            "reportstoid",
            "managerworkerid",
            "reportstoemployeeid",
            "managerpersonnelnumber",
        ],
    ),
    (
        "employment_type",
        &["employmenttype", "workertype", "employeetype", "contracttype", "workersubtype", "employmentstatus"],
    ),
    ("status", &["status", "workerstatus", "employeestatus", "employmentstatus", "activestatus"]),
    ("leave_type", &["leavetype", "leavereason", "absencetype", "leaveofabsencetype"]),
    (
        "hire_date",
        &[
            "hiredate",
            "startdate",
            "dateofhire",
            "originalhiredate",
            "entrydate",
            "eintrittsdatum",
            "hiredon",
            "mostrecenthiredate",
        ],
    ),
    (
        "termination_date",
        &[
            "terminationdate",
            "enddate",
            "lastdayofwork",
            "exitdate",
            "austrittsdatum",
            "separationdate",
            "terminatedon",
            "contractenddate",
        ],
    ),
    ("leave_start", &["leavestart", "leavestartdate", "leavebegin", "absencestart"]),
    ("leave_end", &["leaveend", "leaveenddate", "returndate", "expectedreturndate", "absenceend"]),
    ("time_zone", &["timezone", "tz", "worktimezone", "zeitzone"]),
];

const STATUS_WORDS: [&str; 12] = [
    "active",
    "terminated",
    "inactive",
    "leave",
    "on leave",
    "separated",
    "former",
    "onboarding",
    "employed",
    "loa",
    "suspended",
    "retired",
];

/// How well a header names a field: 3 exactly, 2 when it contains one of the names.
fn score(header: &str, names: &[&str]) -> u8 {
    let k = header_key(header);
    if names.contains(&k.as_str()) {
        3
    } else if names.iter().any(|n| n.len() >= 5 && k.contains(n)) {
        2
    } else {
        0
    }
}

/// tenure's employment type for an export's own word, when it can tell.
fn type_guess(v: &str) -> Option<&'static str> {
    let l = v.to_lowercase();
    match hr::EmploymentType::parse(v) {
        hr::EmploymentType::Employee => Some("employee"),
        hr::EmploymentType::Contractor => Some("contractor"),
        hr::EmploymentType::Intern => Some("intern"),
        hr::EmploymentType::Temporary => Some("temporary"),
        hr::EmploymentType::Other(_) => {
            if ["regular", "salaried", "hourly", "staff", "internal", "employee"].iter().any(|w| l.contains(w)) {
                Some("employee")
            } else if ["contingent", "contract", "external", "freelance", "vendor", "consult"]
                .iter()
                .any(|w| l.contains(w))
            {
                Some("contractor")
            } else if ["intern", "apprentice", "trainee", "working student", "werkstudent"]
                .iter()
                .any(|w| l.contains(w))
            {
                Some("intern")
            } else if ["temp", "seasonal", "fixed term", "fixed-term"].iter().any(|w| l.contains(w)) {
                Some("temporary")
            } else {
                None
            }
        }
    }
}

/// How well a column's values fit a field (0 to 9), and what was seen, in words: what decides
/// between two columns whose headers both fit (a Workday export has "Worker Type" and "Worker
/// Sub-Type", "Job Family" and "Supervisory Organization").
fn value_fit(field: &str, values: &[String]) -> (u8, String) {
    match field {
        "employment_type" => {
            let mut kinds: Vec<&str> = values.iter().filter_map(|v| type_guess(v)).collect();
            kinds.sort();
            kinds.dedup();
            let unknown = values.iter().filter(|v| type_guess(v).is_none()).count();
            let fit = (kinds.len() as u8 * 2).saturating_sub(unknown.min(9) as u8).min(9);
            (fit, format!("{} of tenure's types ({})", kinds.len(), kinds.join(", ")))
        }
        "department" => {
            // An organisation's units ("Engineering (Org)", "Sales > EMEA") are a hierarchy,
            // not the department a rule names.
            let org = values
                .iter()
                .filter(|v| v.contains('(') || v.contains('>') || v.contains('/') || v.to_lowercase().ends_with(" org"))
                .count();
            if values.is_empty() || org * 2 > values.len() {
                (0, format!("{org} of {} values read as organisation units", values.len()))
            } else {
                (5, format!("{} distinct names", values.len()))
            }
        }
        _ => (5, String::new()),
    }
}

fn status_like(values: &[String]) -> bool {
    !values.is_empty() && values.iter().all(|v| STATUS_WORDS.iter().any(|w| v.to_lowercase().contains(w)))
}

/// tenure's reading of an export's own status value, when it can tell.
fn status_guess(v: &str) -> Option<&'static str> {
    let l = v.to_lowercase();
    if l.contains("leave") || l == "loa" || l.contains("absence") {
        Some("leave")
    } else if ["term", "inactive", "separat", "former", "retired", "left", "exit"].iter().any(|w| l.contains(w)) {
        Some("terminated")
    } else if ["active", "employed", "onboard", "current"].iter().any(|w| l.contains(w)) {
        Some("active")
    } else {
        None
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}

pub fn infer(file: &str, bytes: &[u8], encoding: Option<Encoding>, delimiter: Option<u8>) -> Result<String> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (text, encoding) = match (encoding, std::str::from_utf8(body)) {
        (Some(Encoding::Windows1252), _) | (None, Err(_)) => {
            (encoding_rs::WINDOWS_1252.decode_without_bom_handling(body).0.into_owned(), Encoding::Windows1252)
        }
        (_, Ok(t)) => (t.to_string(), Encoding::Utf8),
        (Some(Encoding::Utf8), Err(e)) => {
            return Err(Error::input(format!("{file}: not valid UTF-8 at byte {}", e.valid_up_to())))
        }
    };
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = delimiter.unwrap_or_else(|| {
        [b',', b';', b'\t', b'|'].into_iter().max_by_key(|d| first_line.matches(*d as char).count()).unwrap_or(b',')
    });
    let mut rd = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| Error::input(format!("{file}: cannot read the header row: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    // A sample is enough to place columns; every row for the dates, whose order one row may tell.
    let mut samples: Vec<Vec<String>> = vec![vec![]; headers.len()];
    let mut evidence = vec![Evidence::default(); headers.len()];
    let mut rows = 0;
    for rec in rd.records() {
        let rec = rec.map_err(|e| Error::input(format!("{file}: malformed CSV: {e}")))?;
        rows += 1;
        for (i, v) in rec.iter().enumerate().take(headers.len()) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            evidence[i].see(rows, v);
            if samples[i].len() < 50 && !samples[i].iter().any(|s| s == v) {
                samples[i].push(v.to_string());
            }
        }
    }

    // Best column for each field, strongest match first; a column feeds one field.
    let mut candidates: Vec<(u8, usize, usize)> = vec![]; // (score, field, column)
    for (c, h) in headers.iter().enumerate() {
        for (f, (name, names)) in NAMES.iter().enumerate() {
            let mut s = score(h, names);
            // "Employment Status" is a type in some systems and a status in others: the values say.
            if s > 0 && (*name == "status" || *name == "employment_type") && header_key(h) == "employmentstatus" {
                let st = status_like(&samples[c]);
                if (*name == "status") != st {
                    s = 0;
                }
            }
            if s > 0 {
                candidates.push((s, f, c));
            }
        }
    }
    // Where headers fit a field equally, the values decide.
    let rank = |&(s, f, c): &(u8, usize, usize)| s as u32 * 10 + value_fit(NAMES[f].0, &samples[c]).0 as u32;
    candidates.sort_by(|a, b| rank(b).cmp(&rank(a)).then(a.2.cmp(&b.2)));
    // The columns weighed for the fields whose values decide, to show beside the choice.
    let weighed = |f: usize| -> Vec<(usize, u32)> {
        let mut v: Vec<(usize, u32)> = candidates.iter().filter(|(_, g, _)| *g == f).map(|x| (x.2, rank(x))).collect();
        v.dedup_by_key(|x| x.0);
        v
    };
    let mut field_col: Vec<Option<usize>> = vec![None; NAMES.len()];
    let mut taken = BTreeSet::new();
    let mut also: Vec<(usize, &str)> = vec![];
    for &(_, f, c) in &candidates {
        if taken.contains(&c) {
            continue;
        }
        if field_col[f].is_none() {
            field_col[f] = Some(c);
            taken.insert(c);
        } else {
            also.push((c, NAMES[f].0));
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Proposed from {file} ({} columns, {rows} rows). Check every line: tenure guessed from the\n\
         # headers and values. Paste it into tenure.toml, try it with\n\
         # `tenure hr validate {file} --config tenure.toml`, then `tenure config import tenure.toml`.",
        headers.len()
    );
    let _ = writeln!(out, "[hr.definition]");
    let d = if delimiter == b'\t' { "tab".to_string() } else { (delimiter as char).to_string() };
    let _ = writeln!(out, "delimiter = {}", q(&d));
    let _ = writeln!(out, "encoding = {}", q(if encoding == Encoding::Utf8 { "utf-8" } else { "windows-1252" }));
    // Dates: one format for the file when its date columns agree; detection otherwise.
    let mut notes = vec![];
    let mut fixed: BTreeSet<String> = BTreeSet::new();
    let mut ambiguous = vec![];
    for (f, (name, _)) in NAMES.iter().enumerate() {
        let Some(c) = field_col[f] else { continue };
        if !Field::builtin(name).is_some_and(|f| f.is_date()) {
            continue;
        }
        match evidence[c].decide(&headers[c]) {
            Ok((Some(o), said)) => {
                fixed.insert(o.format(evidence[c].sep.unwrap_or('/')));
                notes.push(format!("# {:?}: {said}", headers[c]));
            }
            Ok((None, said)) => notes.push(format!("# {:?}: {said}", headers[c])),
            Err(why) => ambiguous.push(why),
        }
    }
    for n in &notes {
        let _ = writeln!(out, "{n}");
    }
    if !ambiguous.is_empty() && fixed.is_empty() {
        for a in &ambiguous {
            let _ = writeln!(out, "# {a}");
        }
        let _ = writeln!(out, "# date_formats = [\"%m/%d/%Y\"]   # or [\"%d/%m/%Y\"]: say which, or loads are refused");
    } else if fixed.len() == 1 {
        let _ = writeln!(out, "date_formats = [{}, \"%Y-%m-%d\"]", q(fixed.iter().next().expect("one")));
    }
    let _ = writeln!(out, "\n[hr.definition.columns]");
    // Beside a choice between several columns: each one weighed, with a few of its values, and
    // a word when two were equal (a person must look).
    let weigh = |out: &mut String, f: usize, chosen: usize| {
        let w = weighed(f);
        if w.len() < 2 {
            return;
        }
        for (c, _) in &w {
            let eg: Vec<String> =
                samples[*c].iter().take(4).map(|s| q(&s.chars().take(30).collect::<String>())).collect();
            let (_, seen) = value_fit(NAMES[f].0, &samples[*c]);
            let mark = if *c == chosen { "chosen" } else { "weighed" };
            let seen = if seen.is_empty() { String::new() } else { format!("; {seen}") };
            let eg = if eg.is_empty() { "empty in every row".to_string() } else { format!("e.g. {}", eg.join(", ")) };
            let _ = writeln!(out, "#   {mark}: {} ({eg}{seen})", q(&headers[*c]));
        }
        if w[0].1 == w[1].1 {
            let _ = writeln!(
                out,
                "#   unsure: {} and {} fit {} as well as each other; the first was taken, check",
                q(&headers[w[0].0]),
                q(&headers[w[1].0]),
                NAMES[f].0
            );
        }
    };
    for (f, (name, _)) in NAMES.iter().enumerate() {
        let needed = Field::builtin(name).is_some_and(|f| f.needed());
        match field_col[f] {
            Some(c) if *name == "status" => {
                let mut values = vec![];
                for v in &samples[c] {
                    let own = matches!(v.to_lowercase().as_str(), "active" | "leave" | "terminated");
                    if !own {
                        match status_guess(v) {
                            Some(g) => values.push(format!("{} = {}", q(v), q(g))),
                            None => notes.push(format!(
                                "# status value {v:?}: tenure cannot tell what it means; add it to values"
                            )),
                        }
                    }
                }
                if values.is_empty() {
                    let _ = writeln!(out, "status = {}", q(&headers[c]));
                } else {
                    let _ = writeln!(
                        out,
                        "status = {{ header = {}, values = {{ {} }} }}",
                        q(&headers[c]),
                        values.join(", ")
                    );
                }
            }
            Some(c) if *name == "employment_type" => {
                let mut values = vec![];
                for v in &samples[c] {
                    match type_guess(v) {
                        Some(g) if v.to_lowercase() != g => values.push(format!("{} = {}", q(v), q(g))),
                        Some(_) => {}
                        None => notes.push(format!(
                            "# employment type value {v:?}: tenure keeps it as given; map it in values if it is one of \
                             employee, contractor, intern, temporary"
                        )),
                    }
                }
                if values.is_empty() {
                    let _ = writeln!(out, "employment_type = {}", q(&headers[c]));
                } else {
                    let _ = writeln!(
                        out,
                        "employment_type = {{ header = {}, values = {{ {} }} }}",
                        q(&headers[c]),
                        values.join(", ")
                    );
                }
                weigh(&mut out, f, c);
            }
            Some(c) => {
                let eg = samples[c]
                    .first()
                    .map(|s| format!("   # e.g. {}", q(&s.chars().take(40).collect::<String>())))
                    .unwrap_or_default();
                let _ = writeln!(out, "{name} = {}{eg}", q(&headers[c]));
                weigh(&mut out, f, c);
            }
            None if *name == "employment_type" => {
                let _ = writeln!(out, "employment_type = {{ default = \"employee\" }}   # no such column found: everyone is an employee; check");
            }
            None if *name == "status" => {
                let _ = writeln!(out, "status = {{ default = \"active\" }}   # no such column found: a leaver must then be given a termination date; check");
            }
            None if needed => {
                let _ = writeln!(out, "# {name} = \"?\"   # REQUIRED and no column found: name the export's column");
            }
            None => {}
        }
    }
    for n in notes.iter().filter(|n| n.starts_with("# status value") || n.starts_with("# employment type value")) {
        let _ = writeln!(out, "{n}");
    }
    let unplaced: Vec<usize> = (0..headers.len()).filter(|c| !taken.contains(c)).collect();
    if !unplaced.is_empty() {
        let _ = writeln!(
            out,
            "\n# Not placed ({}): ignored when loading. To carry one, add it to [hr] custom_fields and name it\n\
             # here (my_field = \"Its Header\"), then use it as custom.my_field in roles and mappings.",
            unplaced.len()
        );
        for c in unplaced {
            let hint =
                also.iter().find(|(a, _)| *a == c).map(|(_, f)| format!(" (also looks like {f})")).unwrap_or_default();
            let eg = samples[c]
                .first()
                .map(|s| format!(", e.g. {}", q(&s.chars().take(30).collect::<String>())))
                .unwrap_or_default();
            let _ = writeln!(out, "#   {}{hint}{eg}", q(&headers[c]));
        }
    }
    Ok(out.trim_end().to_string())
}

/// The definition in force, as TOML.
pub fn describe(def: &HeaderDefinition, configured: bool) -> String {
    let mut out = String::new();
    if !configured {
        let _ = writeln!(out, "# tenure's own header (no [hr.definition] saved); other columns are ignored");
    }
    let _ = writeln!(out, "[hr.definition]");
    let d = if def.delimiter == b'\t' { "tab".to_string() } else { (def.delimiter as char).to_string() };
    let _ = writeln!(out, "delimiter = {}", q(&d));
    let _ = writeln!(out, "encoding = {}", q(if def.encoding == Encoding::Utf8 { "utf-8" } else { "windows-1252" }));
    if def.date_formats.is_empty() {
        let _ = writeln!(out, "# date_formats: found per column; ambiguous month/day columns are refused");
    } else {
        let fs: Vec<String> = def.date_formats.iter().map(|f| q(f)).collect();
        let _ = writeln!(out, "date_formats = [{}]", fs.join(", "));
    }
    if def.strict {
        let _ = writeln!(out, "strict = true");
    }
    let _ = writeln!(out, "max_field_bytes = {}", def.max_field_bytes);
    let _ = writeln!(out, "\n[hr.definition.columns]");
    for c in &def.columns {
        let mut parts = vec![format!("header = {}", q(&c.name))];
        if !c.aliases.is_empty() {
            parts.push(format!("aliases = [{}]", c.aliases.iter().map(|a| q(a)).collect::<Vec<_>>().join(", ")));
        }
        parts.push(format!("required = {}", c.required));
        if let Some(d) = &c.default {
            parts.push(format!("default = {}", q(d)));
        }
        if !c.values.is_empty() {
            let v: Vec<String> = c.values.iter().map(|(a, b)| format!("{} = {}", q(a), q(b))).collect();
            parts.push(format!("values = {{ {} }}", v.join(", ")));
        }
        let _ = writeln!(out, "{} = {{ {} }}", c.field.name(), parts.join(", "));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example exports: infer chooses the columns their definitions name for the
    /// fields rules depend on most, and the choice reads those files as the definitions do.
    #[test]
    fn the_example_exports_get_the_shipped_definitions_choices() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/exports");
        for (csv, toml) in [
            ("workday_workers.csv", "workday.toml"),
            ("bamboohr_employees.csv", "bamboohr.toml"),
            ("personio_employees.csv", "personio.toml"),
        ] {
            let bytes = std::fs::read(format!("{dir}/{csv}")).unwrap();
            let proposed = infer(csv, &bytes, None, None).unwrap();
            let shipped = rules::Config::from_toml(toml, &std::fs::read_to_string(format!("{dir}/{toml}")).unwrap())
                .unwrap()
                .hr
                .header_definition()
                .unwrap();
            let ours =
                rules::Config::from_toml("proposed", &proposed).unwrap_or_else(|e| panic!("{csv}: {e:?}\n{proposed}"));
            let ours = ours.hr.header_definition().unwrap();
            for field in [Field::EmploymentType, Field::Department, Field::Status] {
                let name = |d: &HeaderDefinition| d.columns.iter().find(|c| c.field == field).map(|c| c.name.clone());
                assert_eq!(name(&ours), name(&shipped), "{csv}: {field:?}\n{proposed}");
            }
            // Read with the proposal, every worker's employment type is the shipped one's.
            let types = |d: &HeaderDefinition| -> Vec<String> {
                hr::parse_csv(csv, &bytes, d)
                    .unwrap()
                    .accepted
                    .iter()
                    .map(|w| format!("{:?}", w.employment_type))
                    .collect()
            };
            assert_eq!(types(&ours), types(&shipped), "{csv}\n{proposed}");
        }
        let workday =
            infer("w.csv", &std::fs::read(format!("{dir}/workday_workers.csv")).unwrap(), None, None).unwrap();
        // The columns weighed, with their values, and why one was taken.
        assert!(
            workday.contains(
                "#   weighed: \"Worker Type\" (e.g. \"Employee\", \"Contingent Worker\"; 2 of tenure's types"
            ),
            "{workday}"
        );
        assert!(workday.contains("#   weighed: \"Supervisory Organization\" (e.g. \"Engineering (Org)\""), "{workday}");
        assert!(
            workday
                .contains("#   unsure: \"Hire Date\" and \"Original Hire Date\" fit hire_date as well as each other"),
            "{workday}"
        );
    }

    #[test]
    fn a_workday_like_header_is_placed() {
        let csv = "Employee ID,Legal First Name,Legal Last Name,Work Email Address,Worker Status,Hire Date,Pay Grade\n\
                   1,Ana,Lopez,ana@x.example,On Leave,25/01/2020,G7\n2,Bo,Li,bo@x.example,Active,01/02/2021,G2\n";
        let t = infer("w.csv", csv.as_bytes(), None, None).unwrap();
        assert!(t.contains("employee_id = \"Employee ID\""), "{t}");
        assert!(t.contains("first_name = \"Legal First Name\""), "{t}");
        assert!(t.contains("work_email = \"Work Email Address\""), "{t}");
        assert!(t.contains("\"On Leave\" = \"leave\""), "{t}");
        assert!(t.contains("date_formats = [\"%d/%m/%Y\""), "{t}");
        assert!(t.contains("#   \"Pay Grade\""), "{t}");
        assert!(t.contains("employment_type = { default = \"employee\" }"), "{t}");
        // The proposal is a configuration tenure accepts as it stands.
        let cfg = rules::Config::from_toml("p", &t).unwrap();
        let def = cfg.hr.header_definition().unwrap();
        let r = hr::parse_csv("w.csv", csv.as_bytes(), &def).unwrap();
        assert_eq!(r.accepted.len(), 2, "{:?}", r.quarantined);
        assert_eq!(r.ignored_columns, vec!["Pay Grade".to_string()]);
    }
}
