//! Where HR data comes from and how it reads: the export's header definition (`[hr.definition]`),
//! the folder the daemon watches (`[hr.inbox]`) and the report URL it pulls (`[hr.pull]`).
//! Checked whole at save time like the rest of the configuration.

use hr::{Column, Encoding, Field, HeaderDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[hr.definition]`: how the export is written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionSettings {
    /// One character; `"tab"` or `"\t"` for tab-separated exports. Default `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `utf-8` (with or without a byte order mark, the default) or `windows-1252`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// strftime-style formats tried in order; none: found per column, ambiguous ones refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub date_formats: Vec<String>,
    /// A column the definition does not name rejects the file instead of being ignored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_field_bytes: Option<usize>,
    /// Worker field (or custom field) -> the export's column. When given, only these columns
    /// are read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnSpec>,
}

/// One field's column: `"Legal First Name"`, `["Work Email", "Email"]` (the first is the
/// header, the rest aliases), or a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    Header(String),
    Headers(Vec<String>),
    Full(ColumnTable),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnTable {
    /// The export's header; none: the column is never in the file (use `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Taken when the column is absent or its cell empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The export's own values translated: `"On Leave" = "leave"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

// By hand, so that a mistake inside a table says which key is wrong (an untagged enum would
// only say that nothing matched).
impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ColumnSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header (\"Legal First Name\"), a list of headers, or a table { header, aliases, required, default, values }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnSpec, E> {
                Ok(ColumnSpec::Header(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ColumnSpec, A::Error> {
                Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(ColumnSpec::Headers)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ColumnSpec, A::Error> {
                Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ColumnSpec::Full)
            }
        }
        d.deserialize_any(V)
    }
}

impl ColumnSpec {
    fn table(&self) -> ColumnTable {
        match self {
            ColumnSpec::Header(h) => ColumnTable { header: Some(h.clone()), ..Default::default() },
            ColumnSpec::Headers(hs) => ColumnTable {
                header: hs.first().cloned(),
                aliases: hs.iter().skip(1).cloned().collect(),
                ..Default::default()
            },
            ColumnSpec::Full(t) => t.clone(),
        }
    }
}

/// Full: the file is the whole population; delta: only changed workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    #[default]
    Full,
    Delta,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedFormat {
    #[default]
    Csv,
    Json,
}

/// `[hr.inbox]`: a folder the daemon watches (an SFTP drop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    pub path: String,
    /// Which files are HR exports: `*` and `?` wildcards, e.g. `employee_*.csv`.
    #[serde(default = "any_csv")]
    pub pattern: String,
    #[serde(default)]
    pub kind: FeedKind,
    /// Days files stay in processed/ and rejected/.
    #[serde(default = "thirty")]
    pub retention_days: u32,
}

/// How a pull proves who it is. The password, token or client secret is kept sealed in the
/// store (`tenure hr pull-secret`), never here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullAuth {
    #[default]
    None,
    Basic,
    Bearer,
    /// OAuth 2.0 client credentials against `token_url`.
    Oauth2,
}

/// `[hr.pull]`: a report URL fetched on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSettings {
    pub url: String,
    #[serde(default = "sixty")]
    pub interval_minutes: u64,
    #[serde(default)]
    pub auth: PullAuth,
    /// Basic auth's user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default)]
    pub format: FeedFormat,
    #[serde(default)]
    pub kind: FeedKind,
    #[serde(default = "thirty_u64")]
    pub timeout_seconds: u64,
    /// A larger body is refused (and not read further).
    #[serde(default = "hundred_mib")]
    pub max_bytes: u64,
    /// A PEM file of a certificate authority to trust besides the usual ones (an internal CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl PullSettings {
    /// Problems with the settings, each starting with its key.
    pub fn check(&self) -> Vec<String> {
        let mut e = vec![];
        let policy = scim_client::UrlPolicy::default();
        let check =
            |u: &str| scim_client::outbound::parse_url(u).and_then(|u| scim_client::outbound::check_url(&u, policy));
        if let Err(why) = check(&self.url) {
            e.push(format!("url: {why}"));
        }
        match self.auth {
            PullAuth::Basic if self.username.as_deref().is_none_or(str::is_empty) => {
                e.push("username: basic auth needs a user name".into())
            }
            PullAuth::Oauth2 => {
                if self.client_id.as_deref().is_none_or(str::is_empty) {
                    e.push("client_id: OAuth 2.0 client credentials need a client id".into());
                }
                match self.token_url.as_deref().map(check) {
                    None => e.push("token_url: OAuth 2.0 client credentials need the token endpoint".into()),
                    Some(Err(why)) => e.push(format!("token_url: {why}")),
                    Some(Ok(_)) => {}
                }
            }
            _ => {}
        }
        if self.interval_minutes == 0 {
            e.push("interval_minutes: at least 1".into());
        }
        if self.timeout_seconds == 0 {
            e.push("timeout_seconds: at least 1".into());
        }
        if self.max_bytes == 0 {
            e.push("max_bytes: at least 1".into());
        }
        e
    }
}

fn any_csv() -> String {
    "*.csv".into()
}
fn thirty() -> u32 {
    30
}
fn thirty_u64() -> u64 {
    30
}
fn sixty() -> u64 {
    60
}
fn hundred_mib() -> u64 {
    100 << 20
}

/// Whether a file name fits a pattern with `*` (any run) and `?` (one character).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match, remembering the last `*` to backtrack to.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

pub fn parse_encoding(s: &str) -> Result<Encoding, String> {
    match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => Ok(Encoding::Utf8),
        "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => Ok(Encoding::Windows1252),
        other => Err(format!("unknown encoding {other:?}: use utf-8 or windows-1252")),
    }
}

pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => {
            let mut c = s.chars();
            match (c.next(), c.next()) {
                (Some(ch), None) if ch.is_ascii() && ch != '"' && ch != '\n' && ch != '\r' => Ok(ch as u8),
                _ => Err(format!("{s:?}: the delimiter must be one ASCII character (or \"tab\")")),
            }
        }
    }
}

/// A date format that writes a date and reads it back the same.
pub fn check_date_format(f: &str) -> Result<(), String> {
    let d = jiff::civil::date(2021, 11, 28);
    let written = jiff::fmt::strtime::format(f, d).map_err(|e| format!("{f:?} is not a date format: {e}"))?;
    match jiff::civil::Date::strptime(f, &written) {
        Ok(back) if back == d => Ok(()),
        _ => Err(format!("{f:?} does not give the whole date back (it needs a day, a month and a year)")),
    }
}

const STATUS: [&str; 3] = ["active", "leave", "terminated"];

impl DefinitionSettings {
    /// The header definition this configures, or every problem found (`at` names the place).
    pub fn compile(&self, custom_fields: &[String]) -> Result<HeaderDefinition, Vec<String>> {
        let at = "hr.definition";
        let mut errors = vec![];
        let mut def = HeaderDefinition::default();
        if let Some(e) = &self.encoding {
            match parse_encoding(e) {
                Ok(e) => def.encoding = e,
                Err(e) => errors.push(format!("{at}.encoding: {e}")),
            }
        }
        if let Some(d) = &self.delimiter {
            match parse_delimiter(d) {
                Ok(d) => def.delimiter = d,
                Err(e) => errors.push(format!("{at}.delimiter: {e}")),
            }
        }
        for f in &self.date_formats {
            if let Err(e) = check_date_format(f) {
                errors.push(format!("{at}.date_formats: {e}"));
            }
        }
        def.date_formats = self.date_formats.clone();
        def.strict = self.strict;
        if let Some(m) = self.max_field_bytes {
            if m == 0 {
                errors.push(format!("{at}.max_field_bytes: at least 1"));
            }
            def.max_field_bytes = m.max(1);
        }
        if self.columns.is_empty() {
            for c in custom_fields {
                def = def.with_custom(c, false);
            }
        } else {
            def.columns.clear();
            for (name, spec) in &self.columns {
                let here = format!("{at}.columns.{name}");
                let field = match Field::builtin(name) {
                    Some(f) => f,
                    None if custom_fields.contains(name) => Field::Custom(name.clone()),
                    None => {
                        errors.push(format!(
                            "{here}: not a worker field ({}) nor a custom field (declare it in [hr] custom_fields)",
                            hr::BUILTIN.map(|(n, _)| n).join(", ")
                        ));
                        continue;
                    }
                };
                let t = spec.table();
                let required = t.required.unwrap_or(field.needed());
                if field.needed() && !required && t.default.is_none() {
                    errors.push(format!(
                        "{here}: tenure needs {name} for every worker: it can only be optional with a default"
                    ));
                }
                if t.header.is_none() && t.default.is_none() {
                    errors.push(format!(
                        "{here}: give the export's header (or a default when the export has no such column)"
                    ));
                }
                if t.header.as_deref().is_some_and(|h| h.trim().is_empty()) {
                    errors.push(format!("{here}: the header is empty"));
                }
                let mut values = vec![];
                for (from, to) in &t.values {
                    if field == Field::Status && !STATUS.contains(&to.as_str()) {
                        errors.push(format!("{here}.values.{from:?}: {to:?} is not a status ({})", STATUS.join(", ")));
                    }
                    values.push((hr::value_key(from), to.clone()));
                }
                if field == Field::Status {
                    if let Some(d) = t.default.as_deref().filter(|d| !STATUS.contains(d)) {
                        errors.push(format!("{here}.default: {d:?} is not a status ({})", STATUS.join(", ")));
                    }
                }
                def.columns.push(Column {
                    name: t.header.clone().unwrap_or_else(|| name.clone()),
                    aliases: t.aliases.clone(),
                    field,
                    required,
                    default: t.default.clone(),
                    values,
                });
            }
            for (name, field) in hr::BUILTIN.iter().filter(|(_, f)| f.needed()) {
                if !def.columns.iter().any(|c| &c.field == field) {
                    errors.push(format!(
                        "{at}.columns: {name} is not named: tenure needs it for every worker (give its header, or \
                         a default for employment_type and status)"
                    ));
                }
            }
            for c in custom_fields {
                if !def.columns.iter().any(|col| col.field == Field::Custom(c.clone())) {
                    def = def.with_custom(c, false);
                }
            }
        }
        // Two fields reading one column would be ambiguous.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for c in &def.columns {
            for h in std::iter::once(&c.name).chain(&c.aliases) {
                if let Some(other) = seen.insert(hr::header_key(h), c.field.name()) {
                    if other != c.field.name() {
                        errors.push(format!("{at}.columns: {h:?} is named for both {other} and {}", c.field.name()));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(def)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(name_matches("employee_*.csv", "employee_2026-12-01.csv"));
        assert!(name_matches("*.csv", ".csv"));
        assert!(!name_matches("employee_*.csv", "employee_2026.csv.part"));
        assert!(!name_matches("employee_*.csv", "payroll_1.csv"));
        assert!(name_matches("hr_??.json", "hr_01.json"));
        assert!(!name_matches("hr_??.json", "hr_1.json"));
        assert!(name_matches("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn date_formats_are_checked() {
        assert!(check_date_format("%d.%m.%Y").is_ok());
        assert!(check_date_format("%m/%Y").unwrap_err().contains("whole date"));
    }
}
