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

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// The canonical header.
    pub name: String,
    /// Other headers that mean the same column.
    pub aliases: Vec<String>,
    pub field: Field,
    pub required: bool,
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
    /// strftime-style formats tried in order, e.g. `%m/%d/%Y` and `%Y-%m-%d`.
    pub date_formats: Vec<String>,
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
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            field,
            required,
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
            date_formats: vec!["%m/%d/%Y".into(), "%Y-%m-%d".into()],
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
        self.columns.push(Column { name: name.into(), aliases: vec![], field: Field::Custom(name.into()), required });
        self
    }
}
