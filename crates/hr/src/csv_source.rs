//! CSV feeds: a file whose headers do not match the definition is rejected whole; a row with a
//! problem is quarantined with the file, row, column, value and reason; the rest go on. Every
//! row ends up accepted or quarantined: rows = accepted + quarantined, always.

use crate::definition::{Encoding, Field, HeaderDefinition};
use crate::worker::*;
use jiff::civil::Date;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// One problem with one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    pub column: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedRow {
    /// 1-based data row (the header is not counted).
    pub row: usize,
    /// 1-based line in the file where the row starts.
    pub line: u64,
    /// The employee id, when the row has a readable one: such a worker is held back, not
    /// taken as absent from a full load.
    pub worker_id: Option<WorkerId>,
    pub problems: Vec<RowProblem>,
    /// The row as read, so nothing is lost.
    pub raw: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub file: String,
    /// SHA-256 of the bytes as received.
    pub checksum: String,
    pub rows: usize,
    pub accepted: Vec<Worker>,
    pub quarantined: Vec<QuarantinedRow>,
    /// Values that begin as a spreadsheet formula would (`=`, `+`, `-`, `@`): carried as data,
    /// neutralised in every CSV tenure writes (`csv_safe`), and listed here for HR to look at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<Flagged>,
}

/// A value that looks like a formula, where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flagged {
    pub row: usize,
    pub column: String,
    pub value: String,
}

/// Whether a spreadsheet would take this value for a formula (or a DDE call).
pub fn looks_like_formula(v: &str) -> bool {
    matches!(v.trim_start_matches([' ', '\t', '\r', '\n']).chars().next(), Some('=' | '+' | '-' | '@'))
        || v.starts_with(['\t', '\r'])
}

/// A value as a CSV cell a spreadsheet shows as text: a leading `'` before anything that
/// would start a formula. Every CSV tenure writes goes through this.
pub fn csv_safe(v: &str) -> std::borrow::Cow<'_, str> {
    if looks_like_formula(v) {
        format!("'{v}").into()
    } else {
        v.into()
    }
}

/// A field over the length cap: its row is quarantined with the length, and the value is not
/// kept whole (the file's checksum and archive keep the original).
fn over_cap(column: &str, v: &str, cap: usize) -> Option<RowProblem> {
    (v.len() > cap).then(|| RowProblem {
        column: column.to_string(),
        value: format!("{}… ({} bytes)", prefix(v, 40), v.len()),
        reason: format!("{} bytes, over the limit of {cap} bytes per field", v.len()),
    })
}

/// The first `n` bytes of `v`, cut at a character boundary.
fn prefix(v: &str, n: usize) -> &str {
    let mut end = n.min(v.len());
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

impl LoadReport {
    /// Workers whose row was quarantined: held back as they were, never taken as absent.
    pub fn held(&self) -> std::collections::HashSet<WorkerId> {
        self.quarantined.iter().filter_map(|q| q.worker_id.clone()).collect()
    }
}

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRejected {
    pub file: String,
    pub reason: String,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

impl std::fmt::Display for FileRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: rejected whole: {}", self.file, self.reason)
    }
}

fn reject(file: &str, reason: String) -> FileRejected {
    FileRejected { file: file.into(), reason, missing: vec![], unexpected: vec![] }
}

fn decode<'a>(file: &str, bytes: &'a [u8], enc: Encoding) -> Result<std::borrow::Cow<'a, str>, FileRejected> {
    match enc {
        Encoding::Utf8 => {
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            std::str::from_utf8(body).map(std::borrow::Cow::Borrowed).map_err(|e| {
                let at = e.valid_up_to();
                let line = body[..at].iter().filter(|b| **b == b'\n').count() + 1;
                reject(
                    file,
                    format!(
                        "not valid UTF-8 at byte {at} (line {line}); a file saved by Excel may be Windows-1252: say so with the encoding option"
                    ),
                )
            })
        }
        Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0),
    }
}

fn parse_date(s: &str, formats: &[String]) -> Result<Date, String> {
    for f in formats {
        if let Ok(d) = Date::strptime(f, s.trim()) {
            return Ok(d);
        }
    }
    Err(format!("not a date in any of the formats {}", formats.join(", ")))
}

fn parse_status(s: &str, leave_type: Option<&str>) -> Result<Status, String> {
    match s.trim().to_lowercase().replace(['-', '_'], " ").as_str() {
        "active" | "employed" => Ok(Status::Active),
        "leave" | "on leave" | "loa" | "leave of absence" => Ok(Status::Leave {
            kind: leave_type
                .filter(|t| !t.trim().is_empty())
                .map(LeaveKind::parse)
                .unwrap_or(LeaveKind::Other("unspecified".into())),
        }),
        "terminated" | "inactive" | "separated" => Ok(Status::Terminated),
        _ => Err("the status must be active, leave or terminated".into()),
    }
}

/// Parses and validates a CSV feed against its header definition.
pub fn parse_csv(file: &str, bytes: &[u8], def: &HeaderDefinition) -> Result<LoadReport, FileRejected> {
    let checksum = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = decode(file, bytes, def.encoding)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(def.delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| reject(file, format!("cannot read the header row: {e}")))?.clone();

    // Which field each column feeds; the file must match the definition exactly.
    let mut fields: Vec<Field> = Vec::with_capacity(headers.len());
    let mut unexpected = vec![];
    let mut seen: HashMap<String, String> = HashMap::new();
    for h in headers.iter() {
        match def.column_for(h) {
            Some(c) => {
                if let Some(first) = seen.insert(c.name.clone(), h.to_string()) {
                    return Err(reject(file, format!("columns {first:?} and {h:?} both mean {}", c.name)));
                }
                fields.push(c.field.clone());
            }
            None => unexpected.push(h.to_string()),
        }
    }
    let missing: Vec<String> =
        def.columns.iter().filter(|c| c.required && !seen.contains_key(&c.name)).map(|c| c.name.clone()).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut why = vec![];
        if !missing.is_empty() {
            why.push(format!("missing columns: {}", missing.join(", ")));
        }
        if !unexpected.is_empty() {
            why.push(format!("unexpected columns: {}", unexpected.join(", ")));
        }
        return Err(FileRejected {
            file: file.into(),
            reason: format!("the headers do not match the definition ({})", why.join("; ")),
            missing,
            unexpected,
        });
    }

    let mut report =
        LoadReport { file: file.into(), checksum, rows: 0, accepted: vec![], quarantined: vec![], flagged: vec![] };
    // Every row's id (when it has one), to quarantine ids that appear more than once.
    let mut ids: Vec<(QuarantinedRow, Option<WorkerId>, Option<Worker>)> = vec![];
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| reject(file, format!("malformed CSV: {e}")))?;
        let row = i + 1;
        let line = rec.position().map_or(0, |p| p.line());
        if let Some(why) = swallowed(&rec, line, headers.len(), def.delimiter) {
            // One stray quote would otherwise hide every later row (and, with --missing
            // terminate, make their workers leavers): the whole file is refused.
            return Err(reject(file, why));
        }
        report.rows += 1;
        let cap = def.max_field_bytes;
        let raw: Vec<String> = rec
            .iter()
            .map(|v| if v.len() > cap { format!("{}… ({} bytes)", prefix(v, cap), v.len()) } else { v.to_string() })
            .collect();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if looks_like_formula(v) {
                report.flagged.push(Flagged { row, column: h.to_string(), value: prefix(v, 80).to_string() });
            }
        }
        let mut q = QuarantinedRow { row, line, worker_id: None, problems: vec![], raw };
        if rec.len() != headers.len() {
            q.problems.push(RowProblem {
                column: "*".into(),
                value: String::new(),
                reason: format!("the row has {} fields, the header has {}", rec.len(), headers.len()),
            });
            ids.push((q, None, None));
            continue;
        }
        let (id, parsed) = parse_row(&headers, &fields, &rec, def);
        match parsed {
            Ok(w) => ids.push((q, id, Some(w))),
            Err(problems) => {
                q.problems = problems;
                ids.push((q, id, None));
            }
        }
    }

    Ok(finish(report, ids))
}

/// Whether a quoted field runs over lines that look like whole rows of their own: a quote
/// opened on `line` and not closed where it should have been. A quoted value may hold line
/// breaks (an address); one whose further lines carry as many delimiters as a row does, or
/// that never ends (the rest of the file), is a damaged file.
fn swallowed(rec: &csv::StringRecord, line: u64, columns: usize, delimiter: u8) -> Option<String> {
    let d = delimiter as char;
    for (i, f) in rec.iter().enumerate() {
        let mut rest = f.split('\n').skip(1);
        let rows_inside = rest.by_ref().filter(|l| l.matches(d).count() + 1 >= columns.max(2)).count();
        let lines = f.matches('\n').count();
        if rows_inside > 0 {
            return Some(format!(
                "line {line}, field {}: a quote opened here is not closed where it should be: it runs over the \
                 next {lines} line(s), {rows_inside} of them shaped like rows of their own. Nothing was loaded; fix the \
                 quote and load the file again",
                i + 1
            ));
        }
    }
    None
}

/// Accepts the rows that parsed, unless their employee id is on several rows; quarantines the
/// rest. Shared by every source.
fn finish(mut report: LoadReport, ids: Vec<(QuarantinedRow, Option<WorkerId>, Option<Worker>)>) -> LoadReport {
    let mut rows_of: BTreeMap<WorkerId, Vec<usize>> = BTreeMap::new();
    for (q, id, _) in &ids {
        if let Some(id) = id {
            rows_of.entry(id.clone()).or_default().push(q.row);
        }
    }
    for (mut q, id, worker) in ids {
        let dup = id.as_ref().and_then(|id| rows_of.get(id).filter(|rows| rows.len() > 1).map(|rows| (id, rows)));
        if let Some((id, rows)) = dup {
            q.problems.push(duplicate(id, rows));
        }
        match worker {
            Some(w) if q.problems.is_empty() => report.accepted.push(w),
            _ => {
                q.worker_id = id;
                report.quarantined.push(q)
            }
        }
    }
    report.quarantined.sort_by_key(|q| q.row);
    report
}

/// JSON sources: an array of worker objects, or JSON Lines (one object per line). Keys are the
/// header definition's column names or aliases. A record that is not an object, has a key the
/// definition lacks, or a line that is not JSON is quarantined; a whole document that is not
/// JSON is rejected, saying where.
pub fn parse_json(file: &str, bytes: &[u8], def: &HeaderDefinition) -> Result<LoadReport, FileRejected> {
    let checksum = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = decode(file, bytes, Encoding::Utf8)?;
    // (row, line, parsed record or the reason it is not one, raw text)
    let mut records: Vec<(usize, u64, Result<serde_json::Value, String>, String)> = vec![];
    if text.trim_start().starts_with('[') {
        let all: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| reject(file, format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column())))?;
        for (i, v) in all.into_iter().enumerate() {
            let raw = v.to_string();
            records.push((i + 1, 0, Ok(v), raw));
        }
    } else {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed =
                serde_json::from_str(line).map_err(|e| format!("malformed JSON at column {}: {e}", e.column()));
            records.push((records.len() + 1, i as u64 + 1, parsed, line.to_string()));
        }
    }
    let headers = csv::StringRecord::from(def.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>());
    let fields: Vec<Field> = def.columns.iter().map(|c| c.field.clone()).collect();
    let mut report = LoadReport {
        file: file.into(),
        checksum,
        rows: records.len(),
        accepted: vec![],
        quarantined: vec![],
        flagged: vec![],
    };
    let mut ids = vec![];
    for (row, line, parsed, raw) in records {
        let cap = def.max_field_bytes.max(1024);
        let raw = if raw.len() > cap * 32 { format!("{}… ({} bytes)", prefix(&raw, cap), raw.len()) } else { raw };
        let mut q = QuarantinedRow { row, line, worker_id: None, problems: vec![], raw: vec![raw] };
        let v = match parsed {
            Ok(v) => v,
            Err(reason) => {
                q.problems.push(RowProblem { column: "*".into(), value: String::new(), reason });
                ids.push((q, None, None));
                continue;
            }
        };
        for (k, x) in v.as_object().into_iter().flatten() {
            if let Some(text) = x.as_str().filter(|t| looks_like_formula(t)) {
                report.flagged.push(Flagged { row, column: k.clone(), value: prefix(text, 80).to_string() });
            }
        }
        let (id, parsed) = object_row(&v, def, &headers, &fields);
        match parsed {
            Ok(w) => ids.push((q, id, Some(w))),
            Err(problems) => {
                q.problems = problems;
                ids.push((q, id, None));
            }
        }
    }
    Ok(finish(report, ids))
}

/// One JSON object (a pushed change, a JSON Lines record) read against the definition: the
/// worker, or every problem found. Keys are column names or aliases.
pub fn worker_from_json(
    v: &serde_json::Value,
    def: &HeaderDefinition,
) -> (Option<WorkerId>, Result<Worker, Vec<RowProblem>>) {
    let headers = csv::StringRecord::from(def.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>());
    let fields: Vec<Field> = def.columns.iter().map(|c| c.field.clone()).collect();
    object_row(v, def, &headers, &fields)
}

fn object_row(
    v: &serde_json::Value,
    def: &HeaderDefinition,
    headers: &csv::StringRecord,
    fields: &[Field],
) -> (Option<WorkerId>, Result<Worker, Vec<RowProblem>>) {
    let problem = |column: &str, value: String, reason: String| RowProblem { column: column.into(), value, reason };
    let serde_json::Value::Object(obj) = v else {
        return (None, Err(vec![problem("*", v.to_string(), "a record must be a JSON object".into())]));
    };
    let mut problems = vec![];
    let mut values = vec![String::new(); def.columns.len()];
    for (k, v) in obj {
        let Some(i) = def.column_for(k).and_then(|c| def.columns.iter().position(|d| d.name == c.name)) else {
            problems.push(problem(k, v.to_string(), "the header definition has no such field".into()));
            continue;
        };
        values[i] = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
            other => {
                problems.push(problem(k, other.to_string(), "must be a single value, not a list or object".into()));
                String::new()
            }
        };
    }
    let (id, parsed) = parse_row(headers, fields, &csv::StringRecord::from(values), def);
    match parsed {
        Ok(w) if problems.is_empty() => (id, Ok(w)),
        Ok(_) => (id, Err(problems)),
        Err(mut more) => {
            problems.append(&mut more);
            (id, Err(problems))
        }
    }
}

fn duplicate(id: &WorkerId, rows: &[usize]) -> RowProblem {
    RowProblem {
        column: "employee_id".into(),
        value: id.to_string(),
        reason: format!(
            "employee id {id} appears on rows {}: none of them is taken until the file says which is right",
            rows.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Parses one row, collecting every problem rather than stopping at the first.
fn parse_row(
    headers: &csv::StringRecord,
    fields: &[Field],
    rec: &csv::StringRecord,
    def: &HeaderDefinition,
) -> (Option<WorkerId>, Result<Worker, Vec<RowProblem>>) {
    let mut problems = vec![];
    let mut get: HashMap<&Field, (&str, &str)> = HashMap::new();
    for ((h, f), v) in headers.iter().zip(fields).zip(rec.iter()) {
        problems.extend(over_cap(h, v, def.max_field_bytes));
        get.insert(f, (h, v));
    }
    let value = |f: &Field| get.get(f).map(|(_, v)| *v).filter(|v| !v.trim().is_empty());
    let header = |f: &Field| get.get(f).map(|(h, _)| h.to_string()).unwrap_or_else(|| format!("{f:?}"));
    macro_rules! check {
        ($field:expr, $parse:expr) => {{
            let f = $field;
            let v = value(&f).unwrap_or("");
            match $parse(v) {
                Ok(x) => Some(x),
                Err(reason) => {
                    problems.push(RowProblem { column: header(&f), value: v.to_string(), reason });
                    None
                }
            }
        }};
    }
    let optional = |f: &Field| value(f).map(|v| v.trim().to_string());
    let id = check!(Field::EmployeeId, WorkerId::parse);
    let first = check!(Field::FirstName, Name::parse);
    let last = check!(Field::LastName, Name::parse);
    let preferred = value(&Field::PreferredName).and_then(|v| Name::parse(v).ok());
    let email = match value(&Field::WorkEmail) {
        None => Some(None),
        Some(_) => check!(Field::WorkEmail, Email::parse).map(Some),
    };
    let manager = match value(&Field::ManagerId) {
        None => Some(None),
        Some(_) => check!(Field::ManagerId, WorkerId::parse).map(Some),
    };
    let employment = check!(Field::EmploymentType, |v: &str| if v.trim().is_empty() {
        Err("the employment type is empty".to_string())
    } else {
        Ok(EmploymentType::parse(v))
    });
    let leave_type = value(&Field::LeaveType);
    let status = check!(Field::Status, |v: &str| parse_status(v, leave_type));
    let date = |f: Field, required: bool, problems: &mut Vec<RowProblem>| -> Option<Option<Date>> {
        match value(&f) {
            None if required => {
                problems.push(RowProblem { column: header(&f), value: String::new(), reason: "required".into() });
                None
            }
            None => Some(None),
            Some(v) => match parse_date(v, &def.date_formats) {
                Ok(d) => Some(Some(d)),
                Err(reason) => {
                    problems.push(RowProblem { column: header(&f), value: v.to_string(), reason });
                    None
                }
            },
        }
    };
    let hire = date(Field::HireDate, true, &mut problems);
    let term = date(Field::TerminationDate, false, &mut problems);
    let leave_start = date(Field::LeaveStart, false, &mut problems);
    let leave_end = date(Field::LeaveEnd, false, &mut problems);
    let tz = match value(&Field::TimeZone) {
        None => Some(None),
        Some(_) => check!(Field::TimeZone, TimeZoneName::parse).map(Some),
    };
    if let (Some(Some(h)), Some(Some(t))) = (hire, term) {
        if t < h {
            problems.push(RowProblem {
                column: header(&Field::TerminationDate),
                value: t.to_string(),
                reason: format!("the termination date is before the hire date {h}"),
            });
        }
    }
    if let (Some(Some(s)), Some(Some(e))) = (leave_start, leave_end) {
        if e < s {
            problems.push(RowProblem {
                column: header(&Field::LeaveEnd),
                value: e.to_string(),
                reason: format!("the leave ends before it starts ({s})"),
            });
        }
    }
    let mut custom = BTreeMap::new();
    for c in &def.columns {
        if let Field::Custom(name) = &c.field {
            match value(&c.field) {
                Some(v) => {
                    custom.insert(name.clone(), v.trim().to_string());
                }
                None if c.required => problems.push(RowProblem {
                    column: header(&c.field),
                    value: String::new(),
                    reason: "required".into(),
                }),
                None => {}
            }
        }
    }
    if !problems.is_empty() {
        return (id, Err(problems));
    }
    let w = Worker {
        id: id.clone().expect("no problems: parsed"),
        first_name: first.expect("parsed"),
        last_name: last.expect("parsed"),
        preferred_name: preferred,
        work_email: email.expect("parsed"),
        title: optional(&Field::Title),
        department: optional(&Field::Department),
        division: optional(&Field::Division),
        location: optional(&Field::Location),
        cost_center: optional(&Field::CostCenter),
        manager_id: manager.expect("parsed"),
        employment_type: employment.expect("parsed"),
        status: status.expect("parsed"),
        hire_date: hire.flatten().expect("required and parsed"),
        termination_date: term.flatten(),
        leave_start: leave_start.flatten(),
        leave_end: leave_end.flatten(),
        time_zone: tz.expect("parsed"),
        custom,
    };
    (id, Ok(w))
}

/// The body of the CSV fuzz target (`fuzz/`), here so its corpus replays as a normal test:
/// any bytes, in either encoding, are rejected whole or split into accepted and quarantined
/// rows with nothing lost, and never panic.
pub fn fuzz_check(data: &[u8]) {
    for encoding in [Encoding::Utf8, Encoding::Windows1252] {
        let def = HeaderDefinition { encoding, ..HeaderDefinition::default() };
        if let Ok(r) = parse_csv("fuzz.csv", data, &def) {
            assert_eq!(r.accepted.len() + r.quarantined.len(), r.rows, "rows lost");
            assert!(r.quarantined.iter().all(|q| !q.problems.is_empty()), "quarantined without a reason");
        }
    }
}
