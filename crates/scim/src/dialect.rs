//! What differs between targets: monday.com stores a subset of the core User schema, accepts
//! only four user types, and changes `active` and `userType` only through PATCH.

use crate::resource::ResourceSchema;
use crate::schema::{core_group, core_user, enterprise_user, Attribute, Mutability};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// monday.com's SCIM API, as ../shared/monday.md records it.
    #[default]
    Monday,
    /// Plain RFC 7643/7644.
    Generic,
}

/// monday.com's user types; anything else is refused.
pub const MONDAY_USER_TYPES: [&str; 4] = ["admin", "member", "viewer", "guest"];

/// The User attributes monday.com is known to store (public connector scripts send them all).
const MONDAY_USER_ATTRIBUTES: &[&str] = &[
    "userName",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "displayName",
    "title",
    "userType",
    "locale",
    "timezone",
    "active",
    "emails",
    "addresses",
    "roles",
    "groups",
];

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Monday => "monday",
            Dialect::Generic => "generic",
        }
    }

    pub fn user_schema(self) -> ResourceSchema {
        match self {
            Dialect::Generic => {
                ResourceSchema::new("User", "/Users", "User Account", core_user(), vec![enterprise_user()])
            }
            Dialect::Monday => {
                let mut core = core_user().restricted_to(MONDAY_USER_ATTRIBUTES);
                for a in &mut core.attributes {
                    match a.name.as_str() {
                        "displayName" => a.required = true,
                        "userType" => {
                            *a = Attribute::string("userType")
                                .canonical(&MONDAY_USER_TYPES)
                                .describe("monday.com user type; member when omitted");
                            a.canonical_only = true;
                        }
                        _ => {}
                    }
                }
                ResourceSchema::new("User", "/Users", "monday.com user", core, vec![])
            }
        }
    }

    pub fn group_schema(self) -> ResourceSchema {
        let mut core = core_group();
        if self == Dialect::Monday {
            core.description = "monday.com team".into();
            core.attributes.push(
                Attribute::string("internalId")
                    .mutability(Mutability::ReadOnly)
                    .describe("monday.com's own numeric id of the team"),
            );
        }
        ResourceSchema::new(
            "Group",
            "/Groups",
            if self == Dialect::Monday { "monday.com team" } else { "Group" },
            core,
            vec![],
        )
    }

    /// Attributes a PUT leaves as they were: monday.com changes these only through PATCH.
    pub fn patch_only_attributes(self) -> &'static [&'static str] {
        match self {
            Dialect::Monday => &["active", "userType"],
            Dialect::Generic => &[],
        }
    }

    /// The userType a new user gets when the request has none.
    pub fn default_user_type(self) -> Option<&'static str> {
        match self {
            Dialect::Monday => Some("member"),
            Dialect::Generic => None,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "monday" | "monday.com" => Ok(Dialect::Monday),
            "generic" | "scim" => Ok(Dialect::Generic),
            _ => Err(format!("unknown dialect {s:?}: use monday or generic")),
        }
    }
}
