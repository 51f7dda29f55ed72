//! The header definition of a CSV feed: which columns, under which names, which are required,
//! how the file is encoded and how dates are written.

use serde::Serialize;

/// A worker field a column feeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Field {
    EmployeeId,
    FirstName,
    LastName,
    PreferredName,
    WorkEmail,
    Title,
    Department,
    Division,
    Location,
    CostCenter,
    ManagerId,
    EmploymentType,
    Status,
    LeaveType,
    HireDate,
    TerminationDate,
    LeaveStart,
    LeaveEnd,
    TimeZone,
    /// A free field, kept under this name.
    Custom(String),
}

/// The built-in fields with their configuration names, in the order of the default header.
pub const BUILTIN: [(&str, Field); 19] = [
    ("employee_id", Field::EmployeeId),
    ("first_name", Field::FirstName),
    ("last_name", Field::LastName),
    ("preferred_name", Field::PreferredName),
    ("work_email", Field::WorkEmail),
    ("title", Field::Title),
    ("department", Field::Department),
    ("division", Field::Division),
    ("location", Field::Location),
    ("cost_center", Field::CostCenter),
    ("manager_id", Field::ManagerId),
    ("employment_type", Field::EmploymentType),
    ("status", Field::Status),
    ("leave_type", Field::LeaveType),
    ("hire_date", Field::HireDate),
    ("termination_date", Field::TerminationDate),
    ("leave_start", Field::LeaveStart),
    ("leave_end", Field::LeaveEnd),
    ("time_zone", Field::TimeZone),
];

impl Field {
    /// The built-in field of this configuration name.
    pub fn builtin(name: &str) -> Option<Field> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone())
    }
    /// The configuration name: `hire_date`, or a custom field's own name.
    pub fn name(&self) -> &str {
        match self {
            Field::Custom(n) => n,
            f => BUILTIN.iter().find(|(_, b)| b == f).map(|(n, _)| *n).expect("every built-in field is listed"),
        }
    }
    /// Its place in `BUILTIN`, for built-in fields.
    pub fn ordinal(&self) -> Option<usize> {
        // A match, not a search of BUILTIN: it runs for every field of every row.
        Some(match self {
            Field::EmployeeId => 0,
            Field::FirstName => 1,
            Field::LastName => 2,
            Field::PreferredName => 3,
            Field::WorkEmail => 4,
            Field::Title => 5,
            Field::Department => 6,
            Field::Division => 7,
            Field::Location => 8,
            Field::CostCenter => 9,
            Field::ManagerId => 10,
            Field::EmploymentType => 11,
            Field::Status => 12,
            Field::LeaveType => 13,
            Field::HireDate => 14,
            Field::TerminationDate => 15,
            Field::LeaveStart => 16,
            Field::LeaveEnd => 17,
            Field::TimeZone => 18,
            Field::Custom(_) => return None,
        })
    }
    pub fn is_date(&self) -> bool {
        matches!(self, Field::HireDate | Field::TerminationDate | Field::LeaveStart | Field::LeaveEnd)
    }
    /// Fields without which tenure cannot act on a new worker.
    pub fn needed(&self) -> bool {
        matches!(
            self,
            Field::EmployeeId
                | Field::FirstName
                | Field::LastName
                | Field::EmploymentType
                | Field::Status
                | Field::HireDate
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// The canonical header.
    pub name: String,
    /// Other headers that mean the same column.
    pub aliases: Vec<String>,
    pub field: Field,
    pub required: bool,
    /// Taken when the column is absent from a file or its cell is empty (an export without
    /// an employment type column: `default = "employee"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The export's own values translated to tenure's ("On Leave" to `leave`), keyed by
    /// `value_key`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, String)>,
}

impl Column {
    pub fn new(name: &str, field: Field, required: bool) -> Column {
        Column { name: name.into(), aliases: vec![], field, required, default: None, values: vec![] }
    }
    /// The value as tenure reads it: translated when the definition says so.
    pub fn translate<'a>(&'a self, v: &'a str) -> &'a str {
        if self.values.is_empty() {
            return v;
        }
        let k = value_key(v);
        self.values.iter().find(|(from, _)| *from == k).map_or(v, |(_, to)| to.as_str())
    }
}

/// Export values compare without regard to case or surrounding spaces.
pub fn value_key(v: &str) -> String {
    v.trim().to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    Utf8,
    Windows1252,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderDefinition {
    pub columns: Vec<Column>,
    pub delimiter: u8,
    pub encoding: Encoding,
    /// strftime-style formats tried in order, e.g. `%d.%m.%Y`. Empty: each date column's
    /// format is found from its values, and a column whose dates fit both month-first and
    /// day-first is refused rather than guessed.
    pub date_formats: Vec<String>,
    /// A column the definition does not name rejects the file (otherwise it is ignored and
    /// listed once in the report).
    pub strict: bool,
    /// The longest value a field may hold, in bytes: a longer one quarantines its row (a
    /// 9 MB title would be sent to the target, and refused, on every run).
    pub max_field_bytes: usize,
}

/// The default cap on a field's length.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Headers compare without regard to case, spaces, dashes or underscores.
pub fn header_key(h: &str) -> String {
    h.trim().chars().filter(|c| !matches!(c, ' ' | '_' | '-' | '.')).flat_map(char::to_lowercase).collect()
}

impl Default for HeaderDefinition {
    fn default() -> Self {
        let col = |name: &str, field: Field, required: bool, aliases: &[&str]| Column {
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ..Column::new(name, field, required)
        };
        HeaderDefinition {
            columns: vec![
                col("employee_id", Field::EmployeeId, true, &["employee id", "emp_id", "worker_id", "employee number"]),
                col("first_name", Field::FirstName, true, &["given_name", "first"]),
                col("last_name", Field::LastName, true, &["family_name", "surname", "last"]),
                col("preferred_name", Field::PreferredName, false, &["nickname"]),
                col("work_email", Field::WorkEmail, false, &["email", "work e-mail"]),
                col("title", Field::Title, false, &["job_title", "position"]),
                col("department", Field::Department, false, &["dept"]),
                col("division", Field::Division, false, &[]),
                col("location", Field::Location, false, &["office", "site"]),
                col("cost_center", Field::CostCenter, false, &["cost centre"]),
                col("manager_id", Field::ManagerId, false, &["manager employee id", "supervisor_id"]),
                col("employment_type", Field::EmploymentType, true, &["worker_type", "worker type"]),
                col("status", Field::Status, true, &["employment_status"]),
                col("leave_type", Field::LeaveType, false, &[]),
                col("hire_date", Field::HireDate, true, &["start_date"]),
                col("termination_date", Field::TerminationDate, false, &["end_date", "term_date"]),
                col("leave_start", Field::LeaveStart, false, &[]),
                col("leave_end", Field::LeaveEnd, false, &["return_date"]),
                col("time_zone", Field::TimeZone, false, &["timezone", "tz"]),
            ],
            delimiter: b',',
            encoding: Encoding::Utf8,
            date_formats: vec![],
            strict: false,
            max_field_bytes: MAX_FIELD_BYTES,
        }
    }
}

impl HeaderDefinition {
    /// The column a header names, if any.
    pub fn column_for(&self, header: &str) -> Option<&Column> {
        let k = header_key(header);
        self.columns.iter().find(|c| header_key(&c.name) == k || c.aliases.iter().any(|a| header_key(a) == k))
    }

    /// Adds a free column kept in the worker's custom fields.
    pub fn with_custom(mut self, name: &str, required: bool) -> Self {
        self.columns.push(Column::new(name, Field::Custom(name.into()), required));
        self
    }
}
