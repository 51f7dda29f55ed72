//! A resource type (its core schema and extensions) and what a service provider does with a
//! resource as JSON: normalise an incoming body, resolve paths, evaluate filters, sort, and
//! select the attributes to return.

use crate::error::{Error, Result};
use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::schema::{AttrType, Attribute, Mutability, Returned, Schema};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A resource type: User or Group, with the schemas a dialect stores.
#[derive(Debug, Clone)]
pub struct ResourceSchema {
    pub name: String,
    pub endpoint: String,
    pub description: String,
    pub core: Schema,
    pub extensions: Vec<Schema>,
    common: Vec<Attribute>,
}

/// Where an attribute lives: at the top level or inside an extension's object.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub extension: Option<&'a str>,
    pub attr: &'a Attribute,
}

/// The attributes every resource has (RFC 7643 §3.1), in no schema's attribute list.
fn common_attributes() -> Vec<Attribute> {
    let ro = Mutability::ReadOnly;
    vec![
        Attribute::string("id").case_exact().mutability(ro).returned(Returned::Always),
        Attribute::string("externalId").case_exact(),
        Attribute::complex(
            "meta",
            vec![
                Attribute::string("resourceType").case_exact().mutability(ro),
                Attribute::new("created", AttrType::DateTime).mutability(ro),
                Attribute::new("lastModified", AttrType::DateTime).mutability(ro),
                Attribute::reference("location", &["uri"]).mutability(ro),
                Attribute::string("version").case_exact().mutability(ro),
            ],
        )
        .mutability(ro),
    ]
}

/// Case-insensitive key lookup; the canonical spelling is tried first as it is the usual one.
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Lower-cases only when needed, so the common ASCII lower-case case allocates nothing.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

impl ResourceSchema {
    pub fn new(name: &str, endpoint: &str, description: &str, core: Schema, extensions: Vec<Schema>) -> Self {
        ResourceSchema {
            name: name.into(),
            endpoint: endpoint.into(),
            description: description.into(),
            core,
            extensions,
            common: common_attributes(),
        }
    }

    pub fn extension(&self, urn: &str) -> Option<&Schema> {
        self.extensions.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Finds the attribute a path names (its sub-attribute is resolved by the caller).
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        if let Some(uri) = &path.uri {
            if uri.eq_ignore_ascii_case(&self.core.id) {
                return self
                    .core
                    .attribute(&path.name)
                    .or_else(|| self.common.iter().find(|a| a.name.eq_ignore_ascii_case(&path.name)))
                    .map(|attr| Resolved { extension: None, attr });
            }
            let ext = self.extension(uri)?;
            return ext.attribute(&path.name).map(|attr| Resolved { extension: Some(&ext.id), attr });
        }
        if let Some(attr) = self.common.iter().find(|a| a.name.eq_ignore_ascii_case(&path.name)) {
            return Some(Resolved { extension: None, attr });
        }
        if let Some(attr) = self.core.attribute(&path.name) {
            return Some(Resolved { extension: None, attr });
        }
        // An extension attribute named without its URN, when only one extension has it.
        let mut found = self
            .extensions
            .iter()
            .filter_map(|e| e.attribute(&path.name).map(|attr| Resolved { extension: Some(&e.id), attr }));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// The User resource as a target describes it through discovery: its `/ResourceTypes`
    /// User entry (when served) names the core schema and extensions, `/Schemas` defines them.
    /// Without the resource type, every published schema other than the core ones counts as a
    /// User extension.
    pub fn user_from_discovery(resource_type: Option<&Value>, schemas: &[Value]) -> std::result::Result<Self, String> {
        let parsed: Vec<Schema> = schemas.iter().map(Schema::from_json).collect::<std::result::Result<_, _>>()?;
        let core_id =
            resource_type.and_then(|r| r.get("schema")).and_then(Value::as_str).unwrap_or(crate::schema::USER);
        let find = |id: &str| parsed.iter().find(|s| s.id.eq_ignore_ascii_case(id)).cloned();
        let core = find(core_id).ok_or_else(|| format!("/Schemas does not define the User schema {core_id}"))?;
        let extensions: Vec<Schema> = match resource_type.and_then(|r| r.get("schemaExtensions")) {
            Some(Value::Array(exts)) => {
                exts.iter().filter_map(|e| e.get("schema").and_then(Value::as_str)).filter_map(find).collect()
            }
            _ => parsed
                .iter()
                .filter(|s| {
                    !s.id.eq_ignore_ascii_case(core_id)
                        && !s.id.starts_with("urn:ietf:params:scim:schemas:core:")
                        && !s.id.starts_with("urn:ietf:params:scim:api:")
                })
                .cloned()
                .collect(),
        };
        Ok(ResourceSchema::new("User", "/Users", &core.description.clone(), core, extensions))
    }

    /// Every attribute path a client may write, URN-qualified for extensions.
    pub fn writable_paths(&self) -> Vec<String> {
        let mut out = vec![];
        let schemas = std::iter::once((None, &self.core)).chain(self.extensions.iter().map(|e| (Some(&e.id), e)));
        for (urn, s) in schemas {
            for a in s.attributes.iter().filter(|a| a.mutability != Mutability::ReadOnly) {
                let name = match urn {
                    Some(u) => format!("{u}:{}", a.name),
                    None => a.name.clone(),
                };
                if a.ty == AttrType::Complex && !a.multi_valued {
                    out.extend(
                        a.sub_attributes
                            .iter()
                            .filter(|x| x.mutability != Mutability::ReadOnly)
                            .map(|x| format!("{name}.{}", x.name)),
                    );
                } else {
                    out.push(name);
                }
            }
        }
        out.push("externalId".into());
        out
    }

    /// The attribute (or sub-attribute) definition a path ends at.
    pub fn leaf(&self, path: &AttrPath) -> Option<&Attribute> {
        let r = self.resolve(path)?;
        match &path.sub {
            Some(s) => r.attr.sub(s),
            None => Some(r.attr),
        }
    }

    fn known_names(&self) -> String {
        let mut names: Vec<&str> = self.core.attributes.iter().map(|a| a.name.as_str()).collect();
        names.push("externalId");
        names.extend(self.extensions.iter().map(|e| e.id.as_str()));
        names.join(", ")
    }

    /// Turns a POST or PUT body into the stored form: canonical attribute names, values of the
    /// right type, string booleans read as booleans, `""` and null dropped, read-only attributes
    /// ignored (RFC 7644 §3.3). Unknown attributes and wrong types are refused, saying where.
    pub fn normalize(&self, input: &Value) -> Result<Map<String, Value>> {
        let obj = input.as_object().ok_or_else(|| {
            Error::invalid_syntax(format!("the body must be a JSON object, found {}", describe(input)))
        })?;
        let schemas = get_ci(obj, "schemas")
            .ok_or_else(|| Error::invalid_syntax(format!("'schemas' is missing: it must list {}", self.core.id)))?;
        let list = schemas
            .as_array()
            .filter(|a| a.iter().all(Value::is_string))
            .ok_or_else(|| Error::invalid_syntax("'schemas' must be an array of schema URNs"))?;
        let mut has_core = false;
        for s in list.iter().filter_map(Value::as_str) {
            if s.eq_ignore_ascii_case(&self.core.id) {
                has_core = true;
            } else if self.extension(s).is_none() {
                return Err(Error::invalid_syntax(format!(
                    "schema {s:?} in 'schemas' is not supported for {}; supported: {}",
                    self.name,
                    std::iter::once(&self.core.id)
                        .chain(self.extensions.iter().map(|e| &e.id))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if !has_core {
            return Err(Error::invalid_syntax(format!("'schemas' must list {}", self.core.id)));
        }
        let mut out = Map::new();
        for (key, value) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if let Some(ext) = self.extension(key) {
                if value.is_null() {
                    continue;
                }
                let fields = value.as_object().ok_or_else(|| {
                    Error::invalid_value(format!(
                        "{key} must be an object of {} attributes, found {}",
                        ext.name,
                        describe(value)
                    ))
                })?;
                let mut inner = Map::new();
                for (k, v) in fields {
                    let attr = ext
                        .attribute(k)
                        .ok_or_else(|| Error::invalid_syntax(format!("unknown attribute {k:?} in {}", ext.id)))?;
                    if attr.mutability == Mutability::ReadOnly {
                        continue;
                    }
                    if let Some(v) = normalize_value(attr, v, &format!("{}:{}", ext.id, attr.name), true)? {
                        inner.insert(attr.name.clone(), v);
                    }
                }
                if !inner.is_empty() {
                    out.insert(ext.id.clone(), Value::Object(inner));
                }
                continue;
            }
            let path = AttrPath::parse(key).ok().filter(|p| p.sub.is_none());
            let resolved = path.as_ref().and_then(|p| self.resolve(p));
            if resolved.is_none() && value.is_null() {
                // `"password": null` and the like ask nothing to be stored.
                continue;
            }
            let resolved = resolved.ok_or_else(|| {
                Error::invalid_syntax(format!("unknown attribute {key:?}: {} has {}", self.name, self.known_names()))
            })?;
            if resolved.attr.mutability == Mutability::ReadOnly {
                continue;
            }
            if let Some(v) = normalize_value(resolved.attr, value, &resolved.attr.name, true)? {
                match resolved.extension {
                    Some(ext) => {
                        let slot = out.entry(ext.to_string()).or_insert_with(|| Value::Object(Map::new()));
                        slot.as_object_mut()
                            .expect("extension slot is an object")
                            .insert(resolved.attr.name.clone(), v);
                    }
                    None => {
                        out.insert(resolved.attr.name.clone(), v);
                    }
                }
            }
        }
        self.set_schemas(&mut out);
        Ok(out)
    }

    /// `schemas` lists the core schema and every extension the resource has data for.
    pub fn set_schemas(&self, res: &mut Map<String, Value>) {
        let mut list = vec![Value::String(self.core.id.clone())];
        for e in &self.extensions {
            if res.get(&e.id).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
                list.push(Value::String(e.id.clone()));
            } else {
                res.remove(&e.id);
            }
        }
        res.insert("schemas".into(), Value::Array(list));
    }

    /// Every required attribute is present.
    pub fn check_required(&self, res: &Map<String, Value>) -> Result<()> {
        for a in self.core.attributes.iter().filter(|a| a.required) {
            if !res.contains_key(&a.name) {
                return Err(Error::invalid_value(format!("{:?} is required for a {}", a.name, self.name)));
            }
        }
        for e in &self.extensions {
            let inner = res.get(&e.id).and_then(Value::as_object);
            for a in e.attributes.iter().filter(|a| a.required) {
                if !inner.is_some_and(|o| o.contains_key(&a.name)) {
                    return Err(Error::invalid_value(format!("{}:{} is required", e.id, a.name)));
                }
            }
        }
        Ok(())
    }

    /// The object that holds a resolved attribute: the resource, or its extension's object.
    pub fn container<'a>(&self, res: &'a Map<String, Value>, r: &Resolved<'_>) -> Option<&'a Map<String, Value>> {
        match r.extension {
            None => Some(res),
            Some(e) => res.get(e).and_then(Value::as_object),
        }
    }

    /// The values a path reaches, flattened over multi-valued attributes, with the definition of
    /// what they are. A multi-valued complex attribute without a sub-attribute stands for its
    /// `value` sub-attribute (RFC 7644 §3.4.2.2).
    pub fn values<'a>(
        &'a self,
        res: &'a Map<String, Value>,
        path: &AttrPath,
    ) -> Option<(&'a Attribute, Vec<&'a Value>)> {
        let r = self.resolve(path)?;
        let container = self.container(res, &r);
        let top = container.and_then(|c| get_ci(c, &r.attr.name));
        let sub_name =
            path.sub.as_deref().or((r.attr.ty == AttrType::Complex && r.attr.multi_valued).then_some("value"));
        let mut out = Vec::new();
        let Some(sub_name) = sub_name else {
            match top {
                Some(Value::Array(items)) => out.extend(items.iter()),
                Some(v) => out.push(v),
                None => {}
            }
            return Some((r.attr, out));
        };
        let sub = r.attr.sub(sub_name)?;
        match top {
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(|i| i.as_object().and_then(|o| get_ci(o, &sub.name))))
            }
            Some(Value::Object(o)) => out.extend(get_ci(o, &sub.name)),
            _ => {}
        }
        Some((sub, out))
    }

    /// Refuses filters that name unknown attributes or compare in ways the type does not allow.
    pub fn check_filter(&self, f: &Filter) -> Result<()> {
        let mut err = None;
        self.check_node(f, None, &mut err);
        err.map_or(Ok(()), Err)
    }

    fn check_node(&self, f: &Filter, parent: Option<&Attribute>, err: &mut Option<Error>) {
        if err.is_some() {
            return;
        }
        let leaf = |p: &AttrPath| -> Option<&Attribute> {
            match parent {
                Some(par) if p.uri.is_none() => {
                    let a = par.sub(&p.name)?;
                    match &p.sub {
                        Some(_) => None,
                        None => Some(a),
                    }
                }
                Some(_) => None,
                None => {
                    let a = self.leaf(p)?;
                    if p.sub.is_none() && a.ty == AttrType::Complex && a.multi_valued {
                        return a.sub("value").or(Some(a));
                    }
                    Some(a)
                }
            }
        };
        match f {
            Filter::Compare(p, op, v) => {
                let Some(a) = leaf(p) else {
                    *err = Some(Error::invalid_filter(format!(
                        "unknown attribute {p:?} in the filter",
                        p = p.to_string()
                    )));
                    return;
                };
                if a.ty == AttrType::Complex {
                    *err = Some(Error::invalid_filter(format!("{p} is complex: compare one of its sub-attributes")));
                    return;
                }
                let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
                let text = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
                if ordering && matches!(a.ty, AttrType::Boolean | AttrType::Binary) {
                    *err = Some(Error::invalid_filter(format!(
                        "{p} is {}: {} does not apply",
                        a.ty.as_str(),
                        op.as_str()
                    )));
                } else if (ordering || text) && *v == CompValue::Null {
                    *err = Some(Error::invalid_filter(format!("{} cannot compare with null", op.as_str())));
                } else if text && matches!(a.ty, AttrType::Boolean | AttrType::Integer | AttrType::Decimal) {
                    *err = Some(Error::invalid_filter(format!(
                        "{p} is {}: {} applies to strings",
                        a.ty.as_str(),
                        op.as_str()
                    )));
                }
            }
            Filter::Present(p) => {
                if leaf(p).is_none() {
                    *err = Some(Error::invalid_filter(format!("unknown attribute {:?} in the filter", p.to_string())));
                }
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.check_node(a, parent, err);
                self.check_node(b, parent, err);
            }
            Filter::Not(a) => self.check_node(a, parent, err),
            Filter::ValuePath(p, inner) => {
                let attr = if parent.is_none() { self.leaf(p) } else { None };
                match attr {
                    Some(a) if a.ty == AttrType::Complex && p.sub.is_none() => self.check_node(inner, Some(a), err),
                    _ => *err = Some(Error::invalid_filter(format!("{p} is not a multi-valued complex attribute"))),
                }
            }
        }
    }

    /// Whether the resource matches the filter (checked first with `check_filter`).
    pub fn matches(&self, f: &Filter, res: &Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => self.matches(a, res) && self.matches(b, res),
            Filter::Or(a, b) => self.matches(a, res) || self.matches(b, res),
            Filter::Not(a) => !self.matches(a, res),
            Filter::Present(p) => self.values(res, p).is_some_and(|(_, vs)| vs.iter().any(|v| present(v))),
            Filter::Compare(p, op, lit) => match self.values(res, p) {
                Some((attr, vs)) => compare_any(attr, &vs, *op, lit),
                None => false,
            },
            Filter::ValuePath(p, inner) => {
                let Some(r) = self.resolve(p) else { return false };
                let Some(c) = self.container(res, &r) else { return false };
                match get_ci(c, &r.attr.name) {
                    Some(Value::Array(items)) => items.iter().any(|i| matches_element(r.attr, inner, i)),
                    Some(v @ Value::Object(_)) => matches_element(r.attr, inner, v),
                    _ => false,
                }
            }
        }
    }

    /// Orders two resources by a path: missing values last, strings without regard to case
    /// unless caseExact (RFC 7644 §3.4.2.3).
    pub fn compare_by(&self, path: &AttrPath, a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
        let key = |r| self.values(r, path).and_then(|(attr, vs)| vs.first().map(|v| (attr, (*v).clone())));
        match (key(a), key(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some((attr, x)), Some((_, y))) => order_values(attr, &x, &y).unwrap_or(Ordering::Equal),
        }
    }

    /// The representation to return: `attributes` keeps only those listed (plus what is always
    /// returned), `excludedAttributes` drops those listed; `never` attributes never go out.
    pub fn project(
        &self,
        res: Map<String, Value>,
        attributes: &[AttrPath],
        excluded: &[AttrPath],
    ) -> Map<String, Value> {
        let mut out = res;
        out.retain(|k, _| !self.core.attribute(k).is_some_and(|a| a.returned == Returned::Never));
        if !attributes.is_empty() {
            let mut kept = Map::new();
            for key in ["schemas", "id"] {
                if let Some(v) = out.get(key) {
                    kept.insert(key.into(), v.clone());
                }
            }
            for p in attributes {
                let Some(r) = self.resolve(p) else { continue };
                let Some(src) = self.container(&out, &r).and_then(|c| c.get(&r.attr.name)) else { continue };
                let dest = match r.extension {
                    None => &mut kept,
                    Some(e) => kept.entry(e.to_string()).or_insert_with(|| json!({})).as_object_mut().expect("object"),
                };
                match (&p.sub, src) {
                    (None, v) => {
                        dest.insert(r.attr.name.clone(), v.clone());
                    }
                    (Some(s), Value::Object(o)) => {
                        if let Some(sv) = get_ci(o, s) {
                            let slot = dest.entry(r.attr.name.clone()).or_insert_with(|| json!({}));
                            if let Some(obj) = slot.as_object_mut() {
                                obj.insert(s.clone(), sv.clone());
                            }
                        }
                    }
                    (Some(s), Value::Array(items)) => {
                        let picked: Vec<Value> = items
                            .iter()
                            .filter_map(|i| i.as_object().and_then(|o| get_ci(o, s)).map(|v| json!({ s.as_str(): v })))
                            .collect();
                        dest.insert(r.attr.name.clone(), Value::Array(picked));
                    }
                    _ => {}
                }
            }
            return kept;
        }
        for p in excluded {
            let Some(r) = self.resolve(p) else { continue };
            if r.attr.returned == Returned::Always {
                continue;
            }
            let container = match r.extension {
                None => Some(&mut out),
                Some(e) => out.get_mut(e).and_then(Value::as_object_mut),
            };
            let Some(c) = container else { continue };
            match &p.sub {
                None => {
                    c.remove(&r.attr.name);
                }
                Some(s) => match c.get_mut(&r.attr.name) {
                    Some(Value::Object(o)) => {
                        o.remove(s);
                    }
                    Some(Value::Array(items)) => {
                        for i in items.iter_mut().filter_map(Value::as_object_mut) {
                            i.remove(s);
                        }
                    }
                    _ => {}
                },
            }
        }
        out
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Evaluates a value filter against one value of a multi-valued complex attribute.
pub fn matches_element(parent: &Attribute, f: &Filter, elem: &Value) -> bool {
    let Some(obj) = elem.as_object() else { return false };
    match f {
        Filter::And(a, b) => matches_element(parent, a, elem) && matches_element(parent, b, elem),
        Filter::Or(a, b) => matches_element(parent, a, elem) || matches_element(parent, b, elem),
        Filter::Not(a) => !matches_element(parent, a, elem),
        Filter::Present(p) => get_ci(obj, &p.name).is_some_and(present),
        Filter::Compare(p, op, lit) => match parent.sub(&p.name) {
            Some(sub) => {
                let vs: Vec<&Value> = get_ci(obj, &sub.name).into_iter().collect();
                compare_any(sub, &vs, *op, lit)
            }
            None => false,
        },
        Filter::ValuePath(..) => false,
    }
}

fn compare_any(attr: &Attribute, values: &[&Value], op: CompareOp, lit: &CompValue) -> bool {
    if *lit == CompValue::Null {
        // `x eq null` asks for absence, `x ne null` for presence.
        let any = values.iter().any(|v| present(v));
        return if op == CompareOp::Ne { any } else { !any };
    }
    if op == CompareOp::Ne {
        return !values.iter().any(|v| compare_one(attr, v, CompareOp::Eq, lit));
    }
    values.iter().any(|v| compare_one(attr, v, op, lit))
}

fn compare_one(attr: &Attribute, v: &Value, op: CompareOp, lit: &CompValue) -> bool {
    match (v, lit) {
        (Value::String(s), CompValue::Str(l)) => {
            if attr.ty == AttrType::DateTime {
                if let (Some(a), Some(b)) = (parse_time(s), parse_time(l)) {
                    return ordering_op(a.cmp(&b), op);
                }
            }
            let (a, b) = if attr.case_exact {
                (Cow::Borrowed(s.as_str()), Cow::Borrowed(l.as_str()))
            } else {
                (fold(s), fold(l))
            };
            match op {
                CompareOp::Co => a.contains(b.as_ref()),
                CompareOp::Sw => a.starts_with(b.as_ref()),
                CompareOp::Ew => a.ends_with(b.as_ref()),
                _ => ordering_op(a.cmp(&b), op),
            }
        }
        (Value::Number(n), CompValue::Num(l)) => match (n.as_f64(), l.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordering_op(o, op)),
            _ => false,
        },
        (Value::Bool(b), CompValue::Bool(l)) => op == CompareOp::Eq && b == l,
        _ => false,
    }
}

fn ordering_op(o: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn order_values(attr: &Attribute, a: &Value, b: &Value) -> Option<Ordering> {
    Some(match (a, b) {
        (Value::String(x), Value::String(y)) => {
            if attr.ty == AttrType::DateTime {
                if let (Some(p), Some(q)) = (parse_time(x), parse_time(y)) {
                    return Some(p.cmp(&q));
                }
            }
            if attr.case_exact {
                x.cmp(y)
            } else {
                fold(x).cmp(&fold(y))
            }
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => return None,
    })
}

/// Normalises one attribute's value; `at` names it in errors. `None` means "no value".
pub fn normalize_value(attr: &Attribute, v: &Value, at: &str, ignore_read_only: bool) -> Result<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if !attr.multi_valued {
        if v.is_array() {
            return Err(Error::invalid_value(format!("{at} takes a single value, found an array")));
        }
        return normalize_single(attr, v, at, ignore_read_only);
    }
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if let Some(n) = normalize_single(attr, item, &format!("{at}[{i}]"), ignore_read_only)? {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    let primaries = out.iter().filter(|i| i.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(Error::invalid_value(format!("{at} has {primaries} values marked primary; at most one may be")));
    }
    Ok(Some(Value::Array(out)))
}

fn normalize_single(attr: &Attribute, v: &Value, at: &str, ignore_read_only: bool) -> Result<Option<Value>> {
    let wrong = |want: &str| Error::invalid_value(format!("{at} must be {want}, found {}", describe(v)));
    match attr.ty {
        _ if v.is_null() => Ok(None),
        // Entra ID sends a manager (and other complex values) as the bare id string.
        AttrType::Complex if v.is_string() && attr.sub("value").is_some() => {
            normalize_single(attr, &json!({ "value": v }), at, ignore_read_only)
        }
        AttrType::Complex => {
            let obj = v.as_object().ok_or_else(|| wrong("an object"))?;
            let mut out = Map::new();
            for (k, sv) in obj {
                let sub = attr.sub(k).ok_or_else(|| {
                    let subs: Vec<&str> = attr.sub_attributes.iter().map(|s| s.name.as_str()).collect();
                    Error::invalid_syntax(format!("unknown attribute {at}.{k}: {} has {}", attr.name, subs.join(", ")))
                })?;
                if ignore_read_only && sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(n) = normalize_single(sub, sv, &format!("{at}.{}", sub.name), ignore_read_only)? {
                    out.insert(sub.name.clone(), n);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        AttrType::Boolean => match v {
            Value::Bool(_) => Ok(Some(v.clone())),
            // Entra ID sends "True" and "False".
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
            _ => Err(wrong("true or false")),
        },
        AttrType::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(v.clone())),
            _ => Err(wrong("an integer")),
        },
        AttrType::Decimal => match v {
            Value::Number(_) => Ok(Some(v.clone())),
            _ => Err(wrong("a number")),
        },
        AttrType::DateTime => {
            let s = v.as_str().ok_or_else(|| wrong("a date-time string"))?;
            if s.is_empty() {
                return Ok(None);
            }
            parse_time(s).ok_or_else(|| wrong("an RFC 3339 date-time such as 2026-01-31T09:00:00Z"))?;
            Ok(Some(v.clone()))
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if s.is_empty() {
                return Ok(None);
            }
            if attr.canonical_only {
                return match attr.canonical_values.iter().find(|c| c.eq_ignore_ascii_case(s)) {
                    Some(c) => Ok(Some(Value::String(c.clone()))),
                    None => Err(Error::invalid_value(format!(
                        "{at} is {s:?}; it must be one of {}",
                        attr.canonical_values.join(", ")
                    ))),
                };
            }
            Ok(Some(v.clone()))
        }
    }
}
