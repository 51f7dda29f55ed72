//! The worker record. Parse, don't validate: each field's type can only hold a valid value,
//! so a `Worker` that exists is one tenure may act on.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The HR system's immutable employee id: the only key tenure matches workers by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    pub fn parse(s: &str) -> Result<WorkerId, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the employee id is empty".into());
        }
        if t.chars().any(char::is_control) {
            return Err("the employee id has control characters".into());
        }
        if t.len() > 128 {
            return Err("the employee id is longer than 128 bytes".into());
        }
        Ok(WorkerId(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's name as the HR system gives it: Unicode kept as is, only trimmed, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the name is empty".into());
        }
        if t.chars().any(char::is_control) {
            return Err("the name has control characters".into());
        }
        Ok(Name(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A work e-mail address: one `@`, a local part, a dotted domain, no spaces. The domain is
/// lower-cased (it is case-insensitive); the local part is kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, String> {
        let t = s.trim();
        let (local, domain) = t.split_once('@').ok_or_else(|| format!("{t:?} has no @"))?;
        let bad = |why: &str| Err(format!("{t:?} is not an e-mail address: {why}"));
        if local.is_empty() {
            return bad("nothing before the @");
        }
        if domain.contains('@') {
            return bad("more than one @");
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it has spaces");
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return bad("the domain is not a dotted host name");
        }
        if t.len() > 254 {
            return bad("longer than 254 characters");
        }
        Ok(Email(format!("{local}@{}", domain.to_lowercase())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    Employee,
    Contractor,
    Intern,
    Temporary,
    /// Another type the HR system uses, kept as given.
    Other(String),
}

impl EmploymentType {
    pub fn parse(s: &str) -> EmploymentType {
        match s.trim().to_lowercase().replace(['-', ' '], "_").as_str() {
            "employee" | "full_time" | "part_time" | "permanent" | "fte" => EmploymentType::Employee,
            "contractor" | "contract" | "consultant" => EmploymentType::Contractor,
            "intern" | "internship" | "trainee" => EmploymentType::Intern,
            "temporary" | "temp" | "seasonal" => EmploymentType::Temporary,
            _ => EmploymentType::Other(s.trim().to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveKind {
    LongTerm,
    Fmla,
    Legal,
    Security,
    Discipline,
    Other(String),
}

impl LeaveKind {
    pub fn parse(s: &str) -> LeaveKind {
        match s.trim().to_lowercase().replace(['-', ' '], "_").as_str() {
            "long_term" | "longterm" | "ltd" | "sabbatical" => LeaveKind::LongTerm,
            "fmla" | "medical" | "family" | "parental" => LeaveKind::Fmla,
            "legal" => LeaveKind::Legal,
            "security" => LeaveKind::Security,
            "discipline" | "disciplinary" | "suspension" => LeaveKind::Discipline,
            _ => LeaveKind::Other(s.trim().to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    Active,
    Leave { kind: LeaveKind },
    Terminated,
}

/// An IANA time zone name that exists in the time zone database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(s: &str) -> Result<TimeZoneName, String> {
        let t = s.trim();
        jiff::tz::TimeZone::get(t).map_err(|_| format!("{t:?} is not an IANA time zone (such as Europe/Paris)"))?;
        Ok(TimeZoneName(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.0).expect("checked when parsed")
    }
}

/// One person in the HR source. Deserialising checks every value again, so a stored
/// snapshot read back is as valid as a freshly parsed row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub id: WorkerId,
    pub first_name: Name,
    pub last_name: Name,
    pub preferred_name: Option<Name>,
    pub work_email: Option<Email>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub division: Option<String>,
    pub location: Option<String>,
    pub cost_center: Option<String>,
    pub manager_id: Option<WorkerId>,
    pub employment_type: EmploymentType,
    pub status: Status,
    pub hire_date: Date,
    pub termination_date: Option<Date>,
    pub leave_start: Option<Date>,
    pub leave_end: Option<Date>,
    pub time_zone: Option<TimeZoneName>,
    /// Columns the header definition declares as custom, by name.
    pub custom: BTreeMap<String, String>,
}

// Stored records come back through the same parsers as fresh input.
impl TryFrom<String> for WorkerId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        WorkerId::parse(&s)
    }
}

impl From<WorkerId> for String {
    fn from(v: WorkerId) -> String {
        v.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Name::parse(&s)
    }
}

impl From<Name> for String {
    fn from(v: Name) -> String {
        v.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TimeZoneName::parse(&s)
    }
}

impl From<TimeZoneName> for String {
    fn from(v: TimeZoneName) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_say_why() {
        assert_eq!(Email::parse(" Ana.Lopez@ACME.Example ").unwrap().as_str(), "Ana.Lopez@acme.example");
        for bad in
            ["ana", "@acme.example", "ana@acme", "ana@@acme.example", "ana lopez@acme.example", "ana@acme..example"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Name::parse("  Zoë Ñúñez-Øster ").unwrap().as_str(), "Zoë Ñúñez-Øster");
        assert!(Name::parse("   ").is_err());
        assert!(WorkerId::parse("").is_err());
        assert!(TimeZoneName::parse("Europe/Paris").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert_eq!(EmploymentType::parse("Full-Time"), EmploymentType::Employee);
        assert_eq!(EmploymentType::parse("Vendor"), EmploymentType::Other("Vendor".into()));
        assert_eq!(LeaveKind::parse("FMLA"), LeaveKind::Fmla);
    }

    #[test]
    fn a_stored_record_reads_back_only_if_valid() {
        let report = crate::parse_csv(
            "t.csv",
            "employee_id,first_name,last_name,work_email,employment_type,status,leave_type,hire_date,time_zone\n\
             7,Zoë,Ñúñez,zoe@acme.example,contractor,leave,fmla,2021-03-15,Europe/Oslo\n"
                .as_bytes(),
            &crate::HeaderDefinition::default(),
        )
        .unwrap();
        let w = &report.accepted[0];
        let json = serde_json::to_string(w).unwrap();
        let back: Worker = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, w);
        // A record edited on disk into an invalid one is refused, saying why.
        let broken = json.replace("zoe@acme.example", "zoe-at-acme");
        let err = serde_json::from_str::<Worker>(&broken).unwrap_err().to_string();
        assert!(err.contains("\"zoe-at-acme\" has no @"), "{err}");
        let broken = json.replace("Europe/Oslo", "Mars/Olympus");
        assert!(serde_json::from_str::<Worker>(&broken).is_err());
    }
}
