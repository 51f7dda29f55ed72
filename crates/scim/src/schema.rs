//! Schema-driven attribute metadata (RFC 7643 §2, §7) and the schemas tenure knows:
//! core User, the enterprise User extension, and Group.

use serde_json::{json, Value};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SERVICE_PROVIDER_CONFIG: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition, with its sub-attributes when complex.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: String,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: Vec<String>,
    /// When set, a value outside `canonical_values` is refused (monday.com's userType).
    pub canonical_only: bool,
    pub reference_types: Vec<String>,
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    pub fn new(name: &str, ty: AttrType) -> Self {
        Attribute {
            name: name.to_string(),
            ty,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            canonical_only: false,
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, AttrType::String)
    }
    pub fn boolean(name: &str) -> Self {
        Self::new(name, AttrType::Boolean)
    }
    pub fn reference(name: &str, types: &[&str]) -> Self {
        let mut a = Self::new(name, AttrType::Reference);
        a.reference_types = types.iter().map(|s| s.to_string()).collect();
        a.case_exact = true;
        a
    }
    pub fn complex(name: &str, subs: Vec<Attribute>) -> Self {
        let mut a = Self::new(name, AttrType::Complex);
        a.sub_attributes = subs;
        a
    }
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    pub fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    /// The sub-attribute called `name`, compared without regard to case (RFC 7643 §2.1).
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The attribute as RFC 7643 §7 publishes it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability.as_str(),
            "returned": self.returned.as_str(),
        });
        if self.ty != AttrType::Complex && self.ty != AttrType::Boolean {
            v["caseExact"] = self.case_exact.into();
            v["uniqueness"] = self.uniqueness.as_str().into();
        }
        if !self.canonical_values.is_empty() {
            v["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub_attributes.is_empty() {
            v["subAttributes"] = Value::Array(self.sub_attributes.iter().map(Attribute::to_json).collect());
        }
        v
    }
}

/// A schema: an id (URN) and its attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub description: String,
    pub attributes: Vec<Attribute>,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Keeps only the named top-level attributes (and, where given as `a.b`, only those
    /// sub-attributes): a dialect publishes and stores exactly what its target stores.
    pub fn restricted_to(&self, keep: &[&str]) -> Schema {
        let mut out = self.clone();
        out.attributes.retain(|a| keep.iter().any(|k| k.split('.').next() == Some(a.name.as_str())));
        for a in &mut out.attributes {
            let subs: Vec<&str> =
                keep.iter().filter_map(|k| k.split_once('.').filter(|(p, _)| *p == a.name).map(|(_, s)| s)).collect();
            if !subs.is_empty() {
                a.sub_attributes.retain(|s| subs.contains(&s.name.as_str()));
            }
        }
        out
    }

    pub fn to_json(&self, location: &str) -> Value {
        json!({
            "schemas": [SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
            "meta": { "resourceType": "Schema", "location": location },
        })
    }
}

fn multi_complex(name: &str, types: &[&str], value_type: AttrType) -> Attribute {
    let mut value = Attribute::new("value", value_type);
    if value_type == AttrType::Reference {
        value.reference_types = vec!["external".into()];
    }
    Attribute::complex(
        name,
        vec![
            value,
            Attribute::string("display"),
            Attribute::string("type").canonical(types),
            Attribute::boolean("primary"),
        ],
    )
    .multi()
}

/// The core User schema of RFC 7643 §4.1.
pub fn core_user() -> Schema {
    let ro = Mutability::ReadOnly;
    Schema {
        id: USER.into(),
        name: "User".into(),
        description: "User Account".into(),
        attributes: vec![
            Attribute::string("userName")
                .required()
                .unique()
                .describe("Unique identifier for the User, typically an e-mail address"),
            Attribute::complex(
                "name",
                ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
                    .iter()
                    .map(|n| Attribute::string(n))
                    .collect(),
            ),
            Attribute::string("displayName"),
            Attribute::string("nickName"),
            Attribute::reference("profileUrl", &["external"]),
            Attribute::string("title"),
            Attribute::string("userType"),
            Attribute::string("preferredLanguage"),
            Attribute::string("locale"),
            Attribute::string("timezone"),
            Attribute::boolean("active"),
            Attribute::string("password").mutability(Mutability::WriteOnly).returned(Returned::Never),
            multi_complex("emails", &["work", "home", "other"], AttrType::String),
            multi_complex("phoneNumbers", &["work", "home", "mobile", "fax", "pager", "other"], AttrType::String),
            multi_complex("ims", &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"], AttrType::String),
            multi_complex("photos", &["photo", "thumbnail"], AttrType::Reference),
            Attribute::complex(
                "addresses",
                vec![
                    Attribute::string("formatted"),
                    Attribute::string("streetAddress"),
                    Attribute::string("locality"),
                    Attribute::string("region"),
                    Attribute::string("postalCode"),
                    Attribute::string("country"),
                    Attribute::string("type").canonical(&["work", "home", "other"]),
                    Attribute::boolean("primary"),
                ],
            )
            .multi(),
            Attribute::complex(
                "groups",
                vec![
                    Attribute::string("value").mutability(ro),
                    Attribute::reference("$ref", &["User", "Group"]).mutability(ro),
                    Attribute::string("display").mutability(ro),
                    Attribute::string("type").canonical(&["direct", "indirect"]).mutability(ro),
                ],
            )
            .multi()
            .mutability(ro),
            multi_complex("entitlements", &[], AttrType::String),
            multi_complex("roles", &[], AttrType::String),
            multi_complex("x509Certificates", &[], AttrType::Binary),
        ],
    }
}

/// The enterprise User extension of RFC 7643 §4.3.
pub fn enterprise_user() -> Schema {
    Schema {
        id: ENTERPRISE_USER.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        attributes: vec![
            Attribute::string("employeeNumber"),
            Attribute::string("costCenter"),
            Attribute::string("organization"),
            Attribute::string("division"),
            Attribute::string("department"),
            Attribute::complex(
                "manager",
                vec![
                    Attribute::string("value"),
                    Attribute::reference("$ref", &["User"]),
                    Attribute::string("displayName").mutability(Mutability::ReadOnly),
                ],
            ),
        ],
    }
}

/// The core Group schema of RFC 7643 §4.2.
pub fn core_group() -> Schema {
    Schema {
        id: GROUP.into(),
        name: "Group".into(),
        description: "Group".into(),
        attributes: vec![
            Attribute::string("displayName").required(),
            Attribute::complex(
                "members",
                vec![
                    Attribute::string("value").mutability(Mutability::Immutable),
                    Attribute::reference("$ref", &["User", "Group"]).mutability(Mutability::Immutable),
                    Attribute::string("display"),
                    Attribute::string("type").canonical(&["User", "Group"]).mutability(Mutability::Immutable),
                ],
            )
            .multi(),
        ],
    }
}

/// Reads a schema as a service provider publishes it at /Schemas (RFC 7643 §7). Missing
/// characteristics take the RFC's defaults (§2.2); an unknown type or mutability is an error
/// naming the attribute, so a target's odd document is refused rather than half-read.
impl Schema {
    pub fn from_json(doc: &Value) -> Result<Schema, String> {
        let id = doc.get("id").and_then(Value::as_str).ok_or("a schema without an \"id\"")?;
        let attributes = match doc.get("attributes") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => {
                items.iter().map(|a| Attribute::from_json(a, id)).collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err(format!("schema {id}: \"attributes\" is not a list")),
        };
        let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Schema { id: id.to_string(), name: text("name"), description: text("description"), attributes })
    }
}

impl Attribute {
    fn from_json(doc: &Value, at: &str) -> Result<Attribute, String> {
        let name =
            doc.get("name").and_then(Value::as_str).ok_or_else(|| format!("{at}: an attribute without a name"))?;
        let here = format!("{at}:{name}");
        let word = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_ascii_lowercase);
        let flag = |k: &str| doc.get(k).and_then(Value::as_bool).unwrap_or(false);
        let ty = match word("type").as_deref() {
            None | Some("string") => AttrType::String,
            Some("boolean") => AttrType::Boolean,
            Some("decimal") => AttrType::Decimal,
            Some("integer") => AttrType::Integer,
            Some("datetime") => AttrType::DateTime,
            Some("binary") => AttrType::Binary,
            Some("reference") => AttrType::Reference,
            Some("complex") => AttrType::Complex,
            Some(other) => return Err(format!("{here}: unknown type {other:?}")),
        };
        let mutability = match word("mutability").as_deref() {
            None | Some("readwrite") => Mutability::ReadWrite,
            Some("readonly") => Mutability::ReadOnly,
            Some("immutable") => Mutability::Immutable,
            Some("writeonly") => Mutability::WriteOnly,
            Some(other) => return Err(format!("{here}: unknown mutability {other:?}")),
        };
        let returned = match word("returned").as_deref() {
            None | Some("default") => Returned::Default,
            Some("always") => Returned::Always,
            Some("never") => Returned::Never,
            Some("request") => Returned::Request,
            Some(other) => return Err(format!("{here}: unknown returned {other:?}")),
        };
        let uniqueness = match word("uniqueness").as_deref() {
            None | Some("none") => Uniqueness::None,
            Some("server") => Uniqueness::Server,
            Some("global") => Uniqueness::Global,
            Some(other) => return Err(format!("{here}: unknown uniqueness {other:?}")),
        };
        let strings = |k: &str| -> Vec<String> {
            doc.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let sub_attributes = match doc.get("subAttributes") {
            Some(Value::Array(items)) => {
                items.iter().map(|a| Attribute::from_json(a, &here)).collect::<Result<Vec<_>, _>>()?
            }
            _ => vec![],
        };
        Ok(Attribute {
            name: name.to_string(),
            ty,
            multi_valued: flag("multiValued"),
            description: doc.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
            required: flag("required"),
            case_exact: flag("caseExact"),
            mutability,
            returned,
            uniqueness,
            canonical_values: strings("canonicalValues"),
            canonical_only: false,
            reference_types: strings("referenceTypes"),
            sub_attributes,
        })
    }
}

#[cfg(test)]
mod from_json_tests {
    use super::*;

    #[test]
    fn published_schemas_read_back_as_they_were() {
        for s in [core_user(), enterprise_user(), core_group()] {
            let back = Schema::from_json(&s.to_json("/x")).unwrap();
            assert_eq!(back, s, "{}", s.id);
        }
    }

    #[test]
    fn defaults_follow_the_rfc_and_odd_values_are_named() {
        let s = Schema::from_json(&json!({"id": "urn:x", "attributes": [{"name": "badge"}]})).unwrap();
        let a = &s.attributes[0];
        assert_eq!(
            (a.ty, a.mutability, a.returned, a.multi_valued),
            (AttrType::String, Mutability::ReadWrite, Returned::Default, false)
        );
        let e = Schema::from_json(
            &json!({"id": "urn:x", "attributes": [{"name": "n", "subAttributes": [{"name": "k", "type": "float"}]}]}),
        )
        .unwrap_err();
        assert!(e.contains("urn:x:n:k") && e.contains("float"), "{e}");
        assert!(Schema::from_json(&json!({"attributes": []})).unwrap_err().contains("id"));
    }
}
