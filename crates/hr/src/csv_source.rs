//! CSV feeds: a file whose headers do not match the definition is rejected whole; a row with a
//! problem is quarantined with the file, row, column, value and reason; the rest go on. Every
//! row ends up accepted or quarantined: rows = accepted + quarantined, always.

use crate::dates;
use crate::definition::{Encoding, Field, HeaderDefinition};
use crate::worker::*;
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
    /// The record the row reads as, when its only problem is another row with its id (a
    /// termination on every such row is not lost: `leavers_on_every_row`).
    #[serde(skip)]
    pub parsed: Option<Box<Worker>>,
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
    /// Columns of the file the definition does not name: not read, listed once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_columns: Vec<String>,
    /// How each date column was read (its header, the format and why).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub date_formats: BTreeMap<String, String>,
}

/// A value that looks like a formula, where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flagged {
    pub row: usize,
    pub column: String,
    pub value: String,
    /// The row's employee id, as written.
    pub worker_id: Option<String>,
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

    /// Workers whose id is on several rows that all read as a leaver: whichever row is right,
    /// the worker has left, so the termination is not held back with the rest. Per worker, the
    /// row that ends the employment first (no date before any date), and the rows' numbers.
    pub fn leavers_on_every_row(&self) -> Vec<(&Worker, Vec<usize>)> {
        let mut rows_of: BTreeMap<&WorkerId, Vec<&QuarantinedRow>> = BTreeMap::new();
        for q in &self.quarantined {
            if let Some(id) = &q.worker_id {
                rows_of.entry(id).or_default().push(q);
            }
        }
        rows_of
            .into_values()
            .filter(|rows| rows.len() > 1)
            .filter_map(|rows| {
                let parsed: Option<Vec<&Worker>> = rows.iter().map(|q| q.parsed.as_deref()).collect();
                let parsed = parsed.filter(|p| p.iter().all(|w| w.status == crate::Status::Terminated))?;
                let first = parsed.into_iter().min_by_key(|w| w.termination_date)?;
                Some((first, rows.iter().map(|q| q.row).collect()))
            })
            .collect()
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
        _ => Err("the status must be active, leave or terminated (translate the export's own values with \
                  [hr.definition.columns.status] values)"
            .into()),
    }
}

/// Where each of the definition's columns is in a file (or an object), and how its dates read.
struct Layout<'d> {
    def: &'d HeaderDefinition,
    /// Definition column -> index in the record.
    at: Vec<Option<usize>>,
    /// Built-in field ordinal -> definition column.
    builtin: [Option<usize>; 19],
    /// Definition column -> the header as the file writes it.
    header: Vec<String>,
    /// Definition column -> how its dates read (date fields only).
    dates: Vec<dates::Rule>,
}

/// One field of one row.
enum Cell<'a> {
    /// The file has no such column (or the object no such key).
    Absent,
    Empty,
    Value(&'a str),
}

impl<'d> Layout<'d> {
    fn new(def: &'d HeaderDefinition, at: Vec<Option<usize>>, header: Vec<String>) -> Self {
        let mut builtin = [None; 19];
        for (i, c) in def.columns.iter().enumerate() {
            if let Some(o) = c.field.ordinal() {
                builtin[o] = Some(i);
            }
        }
        let rule = if def.date_formats.is_empty() {
            dates::Rule::Detected(None)
        } else {
            dates::Rule::Fixed(def.date_formats.clone())
        };
        Layout { def, at, builtin, header, dates: vec![rule; def.columns.len()] }
    }

    fn column(&self, f: &Field) -> Option<usize> {
        match f.ordinal() {
            Some(o) => self.builtin[o],
            None => self.def.columns.iter().position(|c| &c.field == f),
        }
    }

    fn header(&self, f: &Field) -> String {
        self.column(f).map_or_else(|| f.name().to_string(), |i| self.header[i].clone())
    }

    fn cell<'a>(&'a self, rec: &'a csv::StringRecord, f: &Field) -> Cell<'a> {
        let Some(i) = self.column(f) else { return Cell::Absent };
        let col = &self.def.columns[i];
        let given = self.at[i].and_then(|j| rec.get(j));
        match given.map(|v| col.translate(v)).filter(|v| !v.trim().is_empty()) {
            Some(v) => Cell::Value(v),
            None => match (&col.default, given) {
                (Some(d), _) => Cell::Value(d),
                (None, Some(_)) => Cell::Empty,
                (None, None) => Cell::Absent,
            },
        }
    }

    fn date_rule(&self, f: &Field) -> &dates::Rule {
        static NONE: dates::Rule = dates::Rule::Detected(None);
        self.column(f).map_or(&NONE, |i| &self.dates[i])
    }
}

/// Parses and validates a CSV feed against its header definition.
pub fn parse_csv(file: &str, bytes: &[u8], def: &HeaderDefinition) -> Result<LoadReport, FileRejected> {
    parse_csv_with(file, bytes, def, None)
}

/// As `parse_csv`; with `known` (a delta), a row may carry only some columns: the others are
/// taken from the worker's stored record, and only a worker not in `known` needs every
/// required field. The file then needs only the employee id column.
pub fn parse_csv_with(
    file: &str,
    bytes: &[u8],
    def: &HeaderDefinition,
    known: Option<&HashMap<WorkerId, Worker>>,
) -> Result<LoadReport, FileRejected> {
    let checksum = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = decode(file, bytes, def.encoding)?;
    let reader = || {
        let mut b = csv::ReaderBuilder::new();
        b.delimiter(def.delimiter).has_headers(true).flexible(true);
        b
    };
    let mut rd = reader().from_reader(text.as_bytes());
    let headers = rd.headers().map_err(|e| reject(file, format!("cannot read the header row: {e}")))?.clone();

    // Which definition column each header is; headers it does not name are ignored (or, when
    // strict, reject the file).
    let mut at = vec![None; def.columns.len()];
    let mut header: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
    let mut ignored = vec![];
    for (j, h) in headers.iter().enumerate() {
        match def.column_for(h).and_then(|c| def.columns.iter().position(|d| d.name == c.name)) {
            Some(i) => {
                if at[i].is_some() {
                    return Err(reject(
                        file,
                        format!("columns {:?} and {h:?} both mean {}", header[i], def.columns[i].name),
                    ));
                }
                at[i] = Some(j);
                header[i] = h.to_string();
            }
            None if h.trim().is_empty() && def.strict => ignored.push(format!("(column {}, no header)", j + 1)),
            None if h.trim().is_empty() => {}
            None => ignored.push(h.to_string()),
        }
    }
    let needs = |c: &crate::definition::Column| match known {
        Some(_) => c.field == Field::EmployeeId,
        None => c.required && c.default.is_none(),
    };
    let missing: Vec<String> =
        def.columns.iter().zip(&at).filter(|(c, at)| at.is_none() && needs(c)).map(|(c, _)| c.name.clone()).collect();
    if !missing.is_empty() || (def.strict && !ignored.is_empty()) {
        let mut why = vec![];
        if !missing.is_empty() {
            why.push(format!("missing columns: {}", missing.join(", ")));
        }
        if def.strict && !ignored.is_empty() {
            why.push(format!("unexpected columns (strict = true): {}", ignored.join(", ")));
        } else if !ignored.is_empty() {
            // What the file has instead helps see a renamed column (or a wrong delimiter).
            why.push(format!("columns the definition does not name: {}", ignored.join(", ")));
        }
        return Err(FileRejected {
            file: file.into(),
            reason: format!("the headers do not match the definition ({})", why.join("; ")),
            missing,
            unexpected: if def.strict { ignored } else { vec![] },
        });
    }
    let mut layout = Layout::new(def, at, header);

    // Without fixed formats, each date column's values say how it is written: a first pass
    // reads only those cells.
    let mut date_formats = BTreeMap::new();
    let date_cols: Vec<(usize, usize)> = def
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.field.is_date())
        .filter_map(|(i, _)| layout.at[i].map(|j| (i, j)))
        .collect();
    if def.date_formats.is_empty() && !date_cols.is_empty() {
        let mut evidence = vec![dates::Evidence::default(); date_cols.len()];
        let mut scan = reader().from_reader(text.as_bytes());
        let mut rec = csv::ByteRecord::new();
        let mut row = 0;
        // Until every column has said its order, or has shown only other shapes (ISO) for a
        // good while: a later value that could be either is then held on its own row.
        let settled = |e: &dates::Evidence, seen: usize| {
            e.month_first.is_some() || e.day_first.is_some() || (e.sep.is_none() && seen >= 1000)
        };
        let mut seen = vec![0usize; date_cols.len()];
        while scan.read_byte_record(&mut rec).unwrap_or(false) {
            row += 1;
            for (((i, j), e), n) in date_cols.iter().zip(evidence.iter_mut()).zip(seen.iter_mut()) {
                if let Some(v) = rec.get(*j).and_then(|v| std::str::from_utf8(v).ok()).filter(|v| !v.is_empty()) {
                    *n += 1;
                    e.see(row, def.columns[*i].translate(v));
                }
            }
            if row % 256 == 0 && evidence.iter().zip(&seen).all(|(e, n)| settled(e, *n)) {
                break;
            }
        }
        // A column that cannot tell takes the order the file's other date columns show (an
        // export writes all its dates one way); with none, the file is refused.
        let decided: Vec<_> = date_cols.iter().zip(&evidence).map(|((i, _), e)| e.decide(&layout.header[*i])).collect();
        let shown: Vec<dates::Order> = decided.iter().filter_map(|d| d.as_ref().ok().and_then(|(o, _)| *o)).collect();
        let file_order = shown.first().copied().filter(|o| shown.iter().all(|x| x == o));
        for (((i, _), e), d) in date_cols.iter().zip(&evidence).zip(decided) {
            let (order, said) = match d {
                Ok(x) => x,
                Err(_) if e.month_first.is_none() && e.day_first.is_none() && file_order.is_some() => {
                    let o = file_order.expect("some");
                    (Some(o), format!("{} (as the file's other date columns)", o.format(e.sep.unwrap_or('/'))))
                }
                Err(why) => return Err(reject(file, format!("{why}. Nothing was loaded"))),
            };
            layout.dates[*i] = dates::Rule::Detected(order);
            if e.sep.is_some() || e.other.is_some() {
                date_formats.insert(layout.header[*i].clone(), said);
            }
        }
    } else {
        for (i, _) in &date_cols {
            date_formats.insert(layout.header[*i].clone(), def.date_formats.join(" or "));
        }
    }

    let mut report = LoadReport {
        file: file.into(),
        checksum,
        rows: 0,
        accepted: vec![],
        quarantined: vec![],
        flagged: vec![],
        ignored_columns: if def.strict { vec![] } else { ignored },
        date_formats,
    };
    let used: Vec<(usize, &str)> =
        layout.at.iter().zip(&layout.header).filter_map(|(j, h)| j.map(|j| (j, h.as_str()))).collect();
    let id_at = layout.column(&Field::EmployeeId).and_then(|i| layout.at[i]);
    // Every row's id (when it has one), to quarantine ids that appear more than once.
    let mut ids: Vec<(QuarantinedRow, Option<WorkerId>, Option<Worker>)> = vec![];
    // (row, byte offset) of each row that parsed, to read it again if it turns out a duplicate.
    let mut starts: Vec<(usize, u64)> = vec![];
    let mut lines = LineCounter::new(text.as_bytes());
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| reject(file, format!("malformed CSV: {e}")))?;
        let row = i + 1;
        let line = rec.position().map_or(0, |p| lines.line_at(p.byte()));
        if let Some(why) = swallowed(&rec, line, headers.len(), def.delimiter) {
            // One stray quote would otherwise hide every later row (and, with --missing
            // terminate, make their workers leavers): the whole file is refused.
            return Err(reject(file, why));
        }
        report.rows += 1;
        let cap = def.max_field_bytes;
        // The row as read is kept only for rows that end up quarantined (few): the rest would
        // hold a second copy of the whole file.
        let raw_of = |rec: &csv::StringRecord| -> Vec<String> {
            rec.iter()
                .map(|v| if v.len() > cap { format!("{}… ({} bytes)", prefix(v, cap), v.len()) } else { v.to_string() })
                .collect()
        };
        // Only the columns tenure carries: an ignored column never reaches a target.
        for (j, h) in &used {
            if let Some(v) = rec.get(*j).filter(|v| looks_like_formula(v)) {
                let worker_id = id_at.and_then(|j| rec.get(j)).map(|v| v.trim().to_string());
                report.flagged.push(Flagged {
                    row,
                    column: h.to_string(),
                    value: prefix(v, 80).to_string(),
                    worker_id,
                });
            }
        }
        let mut q = QuarantinedRow { row, line, worker_id: None, problems: vec![], raw: vec![], parsed: None };
        if rec.len() != headers.len() {
            q.raw = raw_of(&rec);
            q.problems.push(RowProblem {
                column: "*".into(),
                value: String::new(),
                reason: format!("the row has {} fields, the header has {}", rec.len(), headers.len()),
            });
            // Its worker is still known by id when that column is there: held, not missing.
            let id = id_at.and_then(|j| rec.get(j)).and_then(|v| WorkerId::parse(v).ok());
            ids.push((q, id, None));
            continue;
        }
        let (id, parsed) = parse_row(&layout, &rec, known);
        match parsed {
            Ok(w) => {
                starts.push((row, rec.position().map_or(0, |p| p.byte())));
                ids.push((q, id, Some(w)))
            }
            Err(problems) => {
                q.problems = problems;
                q.raw = raw_of(&rec);
                ids.push((q, id, None));
            }
        }
    }

    let mut report = finish(report, ids);
    // A row that parsed but shares its id with another is quarantined in `finish`: read its
    // raw fields again from where it starts in the file.
    for q in report.quarantined.iter_mut().filter(|q| q.raw.is_empty()) {
        if let Ok(i) = starts.binary_search_by_key(&q.row, |(r, _)| *r) {
            let at = starts[i].1 as usize;
            let mut one = csv::ReaderBuilder::new()
                .delimiter(def.delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes().get(at..).unwrap_or_default());
            if let Some(Ok(rec)) = one.records().next() {
                q.raw = rec.iter().map(String::from).collect();
            }
        }
    }
    Ok(report)
}

/// The line a record starts on, from its byte offset: the CSV reader's own count is one short
/// after a CRLF (it places a record at the line feed that ends the row before), which is what
/// Workday and Excel write. Counted on from the last record, so a file is read once.
struct LineCounter<'t> {
    text: &'t [u8],
    at: usize,
    line: u64,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t [u8]) -> Self {
        LineCounter { text, at: 0, line: 1 }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut to = (byte as usize).min(self.text.len());
        // A record's offset may stand on the end of the row before (\r\n): step over it.
        while to < self.text.len() && matches!(self.text[to], b'\r' | b'\n') {
            to += 1;
        }
        if to < self.at {
            (self.at, self.line) = (0, 1);
        }
        self.line += self.text[self.at..to].iter().filter(|b| **b == b'\n').count() as u64;
        self.at = to;
        self.line
    }
}

/// Whether a quoted field runs over lines that look like whole rows of their own: a quote
/// opened on `line` and not closed where it should have been. A quoted value may hold line
/// breaks (an address); one whose further lines carry as many delimiters as a row does, or
/// that never ends (the rest of the file), is a damaged file.
fn swallowed(rec: &csv::StringRecord, line: u64, columns: usize, delimiter: u8) -> Option<String> {
    let d = delimiter as char;
    // The record's lines as they stood in the file (quotes aside): two lines that each hold a
    // whole row's fields are two rows that a quote opened in one and closed in the other
    // merged, though the merged record may have the header's number of fields.
    if let Some(i) = rec.iter().position(|f| f.contains('\n')) {
        let fields: Vec<&str> = rec.iter().collect();
        let joined = fields.join(&d.to_string());
        let lines = joined.matches('\n').count();
        let whole = joined.split('\n').filter(|l| l.matches(d).count() + 1 >= columns.max(2)).count();
        if whole >= 2 {
            return Some(format!(
                "line {line}, field {}: a quote opened here is not closed where it should be: lines {line} to {} \
                 were read as one row, yet {whole} of them hold a whole row's fields each (stray quotes merged \
                 rows). Nothing was loaded; fix the quotes and load the file again",
                i + 1,
                line + lines as u64
            ));
        }
    }
    for (i, f) in rec.iter().enumerate() {
        let mut rest = f.split('\n').skip(1);
        let rest: Vec<&str> = rest.by_ref().collect();
        let rows_inside = rest.iter().filter(|l| l.matches(d).count() + 1 >= columns.max(2)).count();
        let lines = f.matches('\n').count();
        // Short of fields too, with delimiters in the swallowed lines: rows, not an address.
        let short_rows = rec.len() < columns && rest.iter().any(|l| l.contains(d));
        if rows_inside > 0 || short_rows {
            return Some(format!(
                "line {line}, field {}: a quote opened here is not closed where it should be: it runs over the \
                 next {lines} line(s), which hold delimiters as rows do. Nothing was loaded; fix the quote and load \
                 the file again",
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
            w => {
                if q.problems.len() == 1 && dup.is_some() {
                    q.parsed = w.map(Box::new);
                }
                q.worker_id = id;
                report.quarantined.push(q)
            }
        }
    }
    report.quarantined.sort_by_key(|q| q.row);
    report
}

/// JSON sources: an array of worker objects, or JSON Lines (one object per line). Keys are the
/// header definition's column names or aliases; other keys are ignored and listed (or, when
/// strict, quarantine their record). A record that is not an object or a line that is not
/// JSON is quarantined; a whole document that is not JSON is rejected, saying where.
pub fn parse_json(file: &str, bytes: &[u8], def: &HeaderDefinition) -> Result<LoadReport, FileRejected> {
    parse_json_with(file, bytes, def, None)
}

/// As `parse_json`, with partial records of `known` workers merged onto their stored record.
pub fn parse_json_with(
    file: &str,
    bytes: &[u8],
    def: &HeaderDefinition,
    known: Option<&HashMap<WorkerId, Worker>>,
) -> Result<LoadReport, FileRejected> {
    let checksum = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = decode(file, bytes, Encoding::Utf8)?;
    // (row, line, parsed record or the reason it is not one, raw text)
    let mut records: Vec<(usize, u64, Result<serde_json::Value, String>, String)> = vec![];
    // A report API may wrap its rows: {"Report_Entry": [...]} (Workday), {"employees": [...]}.
    let wrapped = text
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text).ok())
        .flatten()
        .and_then(|o| {
            let mut lists = o.into_iter().filter(|(_, v)| v.is_array());
            match (lists.next(), lists.next()) {
                (Some((_, serde_json::Value::Array(a))), None) => Some(a),
                _ => None,
            }
        });
    if let Some(all) = wrapped {
        for (i, v) in all.into_iter().enumerate() {
            let raw = v.to_string();
            records.push((i + 1, 0, Ok(v), raw));
        }
    } else if text.trim_start().starts_with('[') {
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
    let mut report = LoadReport {
        file: file.into(),
        checksum,
        rows: records.len(),
        accepted: vec![],
        quarantined: vec![],
        flagged: vec![],
        ignored_columns: vec![],
        date_formats: BTreeMap::new(),
    };
    let mut ignored = std::collections::BTreeSet::new();
    let mut ids = vec![];
    for (row, line, parsed, raw) in records {
        let cap = def.max_field_bytes.max(1024);
        let raw = if raw.len() > cap * 32 { format!("{}… ({} bytes)", prefix(&raw, cap), raw.len()) } else { raw };
        let mut q = QuarantinedRow { row, line, worker_id: None, problems: vec![], raw: vec![raw], parsed: None };
        let v = match parsed {
            Ok(v) => v,
            Err(reason) => {
                q.problems.push(RowProblem { column: "*".into(), value: String::new(), reason });
                ids.push((q, None, None));
                continue;
            }
        };
        for (k, x) in v.as_object().into_iter().flatten() {
            if let Some(text) = x.as_str().filter(|t| looks_like_formula(t) && def.column_for(k).is_some()) {
                let worker_id = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(k, _)| def.column_for(k).is_some_and(|c| c.field == Field::EmployeeId))
                    .map(|(_, x)| x.as_str().map_or_else(|| x.to_string(), str::to_string));
                report.flagged.push(Flagged { row, column: k.clone(), value: prefix(text, 80).to_string(), worker_id });
            }
        }
        let (id, parsed, unknown) = object_row(&v, def, known);
        ignored.extend(unknown);
        match parsed {
            Ok(w) => ids.push((q, id, Some(w))),
            Err(problems) => {
                q.problems = problems;
                ids.push((q, id, None));
            }
        }
    }
    report.ignored_columns = ignored.into_iter().collect();
    Ok(finish(report, ids))
}

/// One JSON object (a pushed change, a JSON Lines record) read against the definition: the
/// worker, or every problem found. Keys are column names or aliases. With `known`, an object
/// may carry only what changed for a worker tenure has (HR webhooks send that): the rest is
/// taken from the stored record.
pub fn worker_from_json(
    v: &serde_json::Value,
    def: &HeaderDefinition,
    known: Option<&HashMap<WorkerId, Worker>>,
) -> (Option<WorkerId>, Result<Worker, Vec<RowProblem>>) {
    let (id, r, _) = object_row(v, def, known);
    (id, r)
}

/// The employee id of a JSON object, when it has a readable one.
pub fn json_worker_id(v: &serde_json::Value, def: &HeaderDefinition) -> Option<WorkerId> {
    v.as_object()?.iter().find(|(k, _)| def.column_for(k).is_some_and(|c| c.field == Field::EmployeeId)).and_then(
        |(_, v)| match v {
            serde_json::Value::String(s) => WorkerId::parse(s).ok(),
            serde_json::Value::Number(n) => WorkerId::parse(&n.to_string()).ok(),
            _ => None,
        },
    )
}

type ObjectRow = (Option<WorkerId>, Result<Worker, Vec<RowProblem>>, Vec<String>);

fn object_row(v: &serde_json::Value, def: &HeaderDefinition, known: Option<&HashMap<WorkerId, Worker>>) -> ObjectRow {
    let problem = |column: &str, value: String, reason: String| RowProblem { column: column.into(), value, reason };
    let serde_json::Value::Object(obj) = v else {
        return (None, Err(vec![problem("*", v.to_string(), "a record must be a JSON object".into())]), vec![]);
    };
    let mut problems = vec![];
    let mut unknown = vec![];
    let mut at = vec![None; def.columns.len()];
    let mut header: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
    let mut values = vec![];
    for (k, v) in obj {
        let Some(i) = def.column_for(k).and_then(|c| def.columns.iter().position(|d| d.name == c.name)) else {
            if def.strict {
                problems.push(problem(
                    k,
                    v.to_string(),
                    "the header definition has no such field (strict = true)".into(),
                ));
            } else {
                unknown.push(k.clone());
            }
            continue;
        };
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
            other => {
                problems.push(problem(k, other.to_string(), "must be a single value, not a list or object".into()));
                continue;
            }
        };
        at[i] = Some(values.len());
        header[i] = k.clone();
        values.push(text);
    }
    let layout = Layout::new(def, at, header);
    let (id, parsed) = parse_row(&layout, &csv::StringRecord::from(values), known);
    let r = match parsed {
        Ok(w) if problems.is_empty() => Ok(w),
        Ok(_) => Err(problems),
        Err(mut more) => {
            problems.append(&mut more);
            Err(problems)
        }
    };
    (id, r, unknown)
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

/// Parses one row, collecting every problem rather than stopping at the first. A field whose
/// column is absent is taken from the worker's stored record when `known` has it (a partial
/// update); a new worker needs every required field.
fn parse_row(
    layout: &Layout,
    rec: &csv::StringRecord,
    known: Option<&HashMap<WorkerId, Worker>>,
) -> (Option<WorkerId>, Result<Worker, Vec<RowProblem>>) {
    let def = layout.def;
    let mut problems = vec![];
    for (j, h) in layout.at.iter().zip(&layout.header) {
        if let Some(v) = j.and_then(|j| rec.get(j)) {
            problems.extend(over_cap(h, v, def.max_field_bytes));
        }
    }
    let cell = |f: &Field| layout.cell(rec, f);
    let header = |f: &Field| layout.header(f);
    let id = match cell(&Field::EmployeeId) {
        Cell::Value(v) => match WorkerId::parse(v) {
            Ok(id) => Some(id),
            Err(reason) => {
                problems.push(RowProblem { column: header(&Field::EmployeeId), value: v.into(), reason });
                None
            }
        },
        _ => {
            problems.push(RowProblem {
                column: header(&Field::EmployeeId),
                value: String::new(),
                reason: "the employee id is empty".into(),
            });
            None
        }
    };
    let base = id.as_ref().and_then(|id| known.and_then(|k| k.get(id)));
    // A required field: parsed when given; from the stored record when its column is absent.
    macro_rules! required {
        ($field:expr, $parse:expr, $from_base:expr) => {{
            let f = $field;
            match (cell(&f), base) {
                (Cell::Value(v), _) => match $parse(v) {
                    Ok(x) => Some(x),
                    Err(reason) => {
                        problems.push(RowProblem { column: header(&f), value: v.to_string(), reason });
                        None
                    }
                },
                (Cell::Absent, Some(b)) => Some($from_base(b)),
                (Cell::Absent, None) if known.is_some() => {
                    problems.push(RowProblem {
                        column: header(&f),
                        value: String::new(),
                        reason: format!("required for a worker tenure does not know yet ({} is new)", f.name()),
                    });
                    None
                }
                _ => {
                    let reason = match f {
                        Field::FirstName | Field::LastName => "the name is empty",
                        Field::EmploymentType => "the employment type is empty",
                        _ => "required",
                    };
                    problems.push(RowProblem { column: header(&f), value: String::new(), reason: reason.into() });
                    None
                }
            }
        }};
    }
    // An optional field: parsed when given, none when empty, kept when absent.
    macro_rules! optional {
        ($field:expr, $parse:expr, $from_base:expr) => {{
            let f = $field;
            match cell(&f) {
                Cell::Value(v) => match $parse(v) {
                    Ok(x) => Some(Some(x)),
                    Err(reason) => {
                        problems.push(RowProblem { column: header(&f), value: v.to_string(), reason });
                        None
                    }
                },
                Cell::Empty => Some(None),
                Cell::Absent => Some(base.and_then($from_base)),
            }
        }};
    }
    let text = |v: &str| Ok::<String, String>(v.trim().to_string());
    let first = required!(Field::FirstName, Name::parse, |b: &Worker| b.first_name.clone());
    let last = required!(Field::LastName, Name::parse, |b: &Worker| b.last_name.clone());
    let preferred = optional!(Field::PreferredName, Name::parse, |b: &Worker| b.preferred_name.clone());
    let email = optional!(Field::WorkEmail, Email::parse, |b: &Worker| b.work_email.clone());
    let title = optional!(Field::Title, text, |b: &Worker| b.title.clone());
    let department = optional!(Field::Department, text, |b: &Worker| b.department.clone());
    let division = optional!(Field::Division, text, |b: &Worker| b.division.clone());
    let location = optional!(Field::Location, text, |b: &Worker| b.location.clone());
    let cost_center = optional!(Field::CostCenter, text, |b: &Worker| b.cost_center.clone());
    let manager = optional!(Field::ManagerId, WorkerId::parse, |b: &Worker| b.manager_id.clone());
    let employment =
        required!(Field::EmploymentType, |v: &str| Ok::<_, String>(EmploymentType::parse(v)), |b: &Worker| b
            .employment_type
            .clone());
    let leave_type = match cell(&Field::LeaveType) {
        Cell::Value(v) => Some(v),
        _ => None,
    };
    let status = required!(Field::Status, |v: &str| parse_status(v, leave_type), |b: &Worker| b.status.clone());
    let date = |f: &Field| {
        let rule = layout.date_rule(f);
        move |v: &str| dates::parse(v, rule)
    };
    let hire = required!(Field::HireDate, date(&Field::HireDate), |b: &Worker| b.hire_date);
    let term = optional!(Field::TerminationDate, date(&Field::TerminationDate), |b: &Worker| b.termination_date);
    let leave_start = optional!(Field::LeaveStart, date(&Field::LeaveStart), |b: &Worker| b.leave_start);
    let leave_end = optional!(Field::LeaveEnd, date(&Field::LeaveEnd), |b: &Worker| b.leave_end);
    let tz = optional!(Field::TimeZone, TimeZoneName::parse, |b: &Worker| b.time_zone.clone());
    if let (Some(h), Some(Some(t))) = (hire, term) {
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
            match cell(&c.field) {
                Cell::Value(v) => {
                    custom.insert(name.clone(), v.trim().to_string());
                }
                Cell::Absent if base.is_some() => {
                    if let Some(v) = base.and_then(|b| b.custom.get(name)) {
                        custom.insert(name.clone(), v.clone());
                    }
                }
                _ if c.required => problems.push(RowProblem {
                    column: header(&c.field),
                    value: String::new(),
                    reason: "required".into(),
                }),
                _ => {}
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
        preferred_name: preferred.expect("parsed"),
        work_email: email.expect("parsed"),
        title: title.expect("parsed"),
        department: department.expect("parsed"),
        division: division.expect("parsed"),
        location: location.expect("parsed"),
        cost_center: cost_center.expect("parsed"),
        manager_id: manager.expect("parsed"),
        employment_type: employment.expect("parsed"),
        status: status.expect("parsed"),
        hire_date: hire.expect("required and parsed"),
        termination_date: term.expect("parsed"),
        leave_start: leave_start.expect("parsed"),
        leave_end: leave_end.expect("parsed"),
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
