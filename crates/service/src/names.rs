//! One rule for the names people give things in tenure: connections, API tokens and platform
//! users. A name is shown in logs, audit records, metrics labels, file names and pages, so it
//! carries no control or invisible characters and no path separators, and a new name may not
//! look like one that exists already (`аdmin` with a Cyrillic a beside `admin`).

use crate::error::{Error, Result};
/// A name as one URL path segment or query value: every byte but the unreserved ones
/// (letters, digits, `-._~`) percent-encoded.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The longest name, in characters.
pub const MAX: usize = 64;

/// What is named, for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connection,
    Token,
    User,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "a connection name",
            Kind::Token => "a token name",
            Kind::User => "a user name",
        }
    }
}

/// The rule, as the error says it.
pub const RULE: &str = "1 to 64 letters, digits, single spaces between words, and . - _ @ ( ) +";

/// Refuses a name off the rule, saying which character (and where) broke it.
pub fn check(kind: Kind, name: &str) -> Result<()> {
    let what = kind.as_str();
    let n = name.chars().count();
    if n == 0 || n > MAX {
        return Err(Error::input(format!("{what} must be {RULE} ({n} characters given)")));
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.contains("  ") {
        return Err(Error::input(format!("{what} must be {RULE}: no space at either end, nor two in a row")));
    }
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '@' | '(' | ')' | '+');
        if !ok {
            return Err(Error::input(format!(
                "{what} must be {RULE}: character {} is {}",
                i + 1,
                if c.is_control() || c.is_whitespace() || c.is_ascii_punctuation() || c.is_ascii_graphic() {
                    format!("U+{:04X}", c as u32)
                } else {
                    format!("{c:?} (U+{:04X})", c as u32)
                }
            )));
        }
    }
    Ok(())
}

/// An existing name the new one could be taken for: the same letters once case and
/// look-alike characters are set aside, but not the same name.
pub fn look_alike<'a>(name: &str, existing: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key = engine::confusable(name);
    existing.into_iter().find(|e| *e != name && engine::confusable(e) == key)
}

/// `check`, then no look-alike of an existing name.
pub fn check_new<'a>(kind: Kind, name: &str, existing: impl IntoIterator<Item = &'a str>) -> Result<()> {
    check(kind, name)?;
    // The console's page for adding a connection is /connections/new.
    if kind == Kind::Connection && name.eq_ignore_ascii_case("new") {
        return Err(Error::input(
            "a connection cannot be named \"new\": the console's page for adding one has that name",
        ));
    }
    if let Some(e) = look_alike(name, existing) {
        return Err(Error::input(format!(
            "{} {name:?} could be taken for the existing {e:?} (the same once case and look-alike letters are set \
             aside): choose another",
            kind.as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        assert!(check(Kind::Connection, "Connection-Bearer Token-1").is_ok());
        assert!(check(Kind::User, "ann.lee@acme.example").is_ok());
        assert!(check(Kind::User, "José").is_ok());
        for bad in ["", "a\rb", "a\nb", "a\0b", "a/b", "a\\b", " a", "a ", "a  b", "a\u{200b}b", "<script>"] {
            assert!(check(Kind::Token, bad).is_err(), "{bad:?}");
        }
        assert!(check(Kind::User, &"x".repeat(65)).is_err());
        assert!(check(Kind::User, &"x".repeat(64)).is_ok());
        assert!(check_new(Kind::Connection, "New", []).is_err(), "the console's /connections/new");
        assert!(check_new(Kind::User, "new", []).is_ok());
        let e = check(Kind::User, "a\rb").unwrap_err();
        assert!(e.to_string().contains("character 2 is U+000D"), "{e}");
    }

    #[test]
    fn look_alikes_of_existing_names_are_refused() {
        let existing = ["admin", "Sales"];
        assert_eq!(look_alike("\u{430}dmin", existing), Some("admin"), "a Cyrillic a");
        assert_eq!(look_alike("ADMIN", existing), Some("admin"), "case");
        assert_eq!(look_alike("sa1es", existing), Some("Sales"), "a one for an l");
        assert_eq!(look_alike("admin", existing), None, "the same name is a duplicate, not a look-alike");
        assert_eq!(look_alike("editor", existing), None);
        assert!(check_new(Kind::User, "\u{430}dmin", existing).is_err());
    }
}
