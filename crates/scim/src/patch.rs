//! PATCH (RFC 7644 §3.5.2): parse a PatchOp message and apply it to a resource, all operations
//! or none. Accepts what real clients send: `op` in any case, a path-less replace whose value
//! has dotted keys (`{"name.givenName": "X"}`), booleans as strings, `""` or null to clear,
//! members removed by a value array.

use crate::error::{Error, Result};
use crate::filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::resource::{get_ci, matches_element, normalize_value, ResourceSchema};
use crate::schema::{AttrType, Attribute, Mutability, PATCH_OP};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Replace => "replace",
            OpKind::Remove => "remove",
        }
    }
}

/// One parsed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

impl Operation {
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({ "op": self.op.as_str() });
        if let Some(p) = &self.path {
            v["path"] = p.to_string().into();
        }
        if let Some(val) = &self.value {
            v["value"] = val.clone();
        }
        v
    }
}

/// A whole PatchOp message as JSON.
pub fn to_message(ops: &[Operation]) -> Value {
    serde_json::json!({
        "schemas": [PATCH_OP],
        "Operations": ops.iter().map(Operation::to_json).collect::<Vec<_>>(),
    })
}

/// Parses a PatchOp body; errors name the operation by its index.
pub fn parse(body: &Value) -> Result<Vec<Operation>> {
    let obj = body.as_object().ok_or_else(|| Error::invalid_syntax("a PATCH body must be a JSON object"))?;
    let schemas = get_ci(obj, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP)))) {
        return Err(Error::invalid_syntax(format!("'schemas' must list {PATCH_OP}")));
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_syntax("'Operations' must be an array of operations"))?;
    if ops.is_empty() {
        return Err(Error::invalid_syntax("'Operations' is empty"));
    }
    ops.iter()
        .enumerate()
        .map(|(i, o)| {
            let o = o.as_object().ok_or_else(|| Error::invalid_syntax(format!("Operations[{i}] must be an object")))?;
            let op = match get_ci(o, "op").and_then(Value::as_str) {
                Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
                Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
                Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
                Some(s) => {
                    return Err(Error::invalid_syntax(format!(
                        "Operations[{i}].op is {s:?}; it must be add, replace or remove"
                    )))
                }
                None => return Err(Error::invalid_syntax(format!("Operations[{i}].op is missing"))),
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(
                    PatchPath::parse(s).map_err(|e| Error::invalid_path(format!("Operations[{i}]: {}", e.detail)))?,
                ),
                Some(_) => return Err(Error::invalid_path(format!("Operations[{i}].path must be a string"))),
            };
            let value = get_ci(o, "value").cloned();
            if path.is_none() {
                match (op, &value) {
                    (OpKind::Remove, _) => {
                        return Err(Error::no_target(format!("Operations[{i}]: remove needs a path")))
                    }
                    (_, Some(Value::Object(_))) => {}
                    _ => {
                        return Err(Error::invalid_syntax(format!(
                            "Operations[{i}]: without a path, value must be an object of attributes"
                        )))
                    }
                }
            } else if op != OpKind::Remove && value.is_none() {
                return Err(Error::invalid_syntax(format!("Operations[{i}]: {} needs a value", op.as_str())));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Applies every operation to a copy of the resource and returns it; on any error the
/// original is untouched, so a PATCH is atomic.
pub fn apply(schema: &ResourceSchema, res: &Map<String, Value>, ops: &[Operation]) -> Result<Map<String, Value>> {
    let mut doc = res.clone();
    for (i, op) in ops.iter().enumerate() {
        let at = format!("Operations[{i}]");
        match &op.path {
            Some(p) if whole_extension(schema, p).is_some() => {
                let ext = whole_extension(schema, p).expect("just matched");
                apply_extension(schema, &mut doc, op.op, &ext, op.value.as_ref(), &at)?
            }
            Some(p) => apply_path(schema, &mut doc, op.op, p, op.value.as_ref(), &at)?,
            None => {
                let Some(Value::Object(fields)) = &op.value else { unreachable!("checked by parse") };
                for (k, v) in fields {
                    if ["schemas", "id", "meta"].iter().any(|s| s.eq_ignore_ascii_case(k)) {
                        continue;
                    }
                    if let Some(ext) = schema.extension(k) {
                        let ext_id = ext.id.clone();
                        let Some(inner) = v.as_object() else {
                            return Err(Error::invalid_value(format!("{at}: {k} must be an object")));
                        };
                        for (sk, sv) in inner {
                            let attr = AttrPath { uri: Some(ext_id.clone()), name: sk.clone(), sub: None };
                            let p = PatchPath { attr, filter: None, sub_after_filter: None };
                            apply_path(schema, &mut doc, op.op, &p, Some(sv), &at)?;
                        }
                        continue;
                    }
                    let attr = AttrPath::parse(k).map_err(|e| Error::invalid_path(format!("{at}: {}", e.detail)))?;
                    let p = PatchPath { attr, filter: None, sub_after_filter: None };
                    apply_path(schema, &mut doc, op.op, &p, Some(v), &at)?;
                }
            }
        }
    }
    schema.set_schemas(&mut doc);
    schema.check_required(&doc)?;
    Ok(doc)
}

/// The extension schema a path names as a whole (`urn:...:enterprise:2.0:User`), if it does.
fn whole_extension(schema: &ResourceSchema, p: &PatchPath) -> Option<String> {
    if p.filter.is_some() || p.attr.sub.is_some() || p.sub_after_filter.is_some() {
        return None;
    }
    // The parser reads the URN's last segment as an attribute name ("User").
    schema.extension(&p.attr.to_string()).map(|e| e.id.clone())
}

/// An operation on a whole extension (clients send these, RFC 7644 §3.5.2): add and replace
/// set each attribute of the value as if each were its own operation (those not named are
/// kept, as for a PATCH without a path); remove clears every attribute the extension has.
fn apply_extension(
    schema: &ResourceSchema,
    doc: &mut Map<String, Value>,
    op: OpKind,
    ext: &str,
    value: Option<&Value>,
    at: &str,
) -> Result<()> {
    let one = |name: &str| PatchPath {
        attr: AttrPath { uri: Some(ext.to_string()), name: name.to_string(), sub: None },
        filter: None,
        sub_after_filter: None,
    };
    match op {
        OpKind::Remove => {
            let names: Vec<String> = doc
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ext))
                .and_then(|(_, v)| v.as_object())
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            for n in names {
                apply_path(schema, doc, op, &one(&n), None, at)?;
            }
            Ok(())
        }
        _ => {
            let Some(fields) = value.and_then(Value::as_object) else {
                return Err(Error::invalid_value(format!("{at}: the value of {ext} must be an object")));
            };
            for (k, v) in fields {
                apply_path(schema, doc, op, &one(k), Some(v), at)?;
            }
            Ok(())
        }
    }
}

fn container_mut<'a>(doc: &'a mut Map<String, Value>, ext: Option<&str>) -> &'a mut Map<String, Value> {
    match ext {
        None => doc,
        Some(e) => {
            let slot = doc.entry(e.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().expect("just made an object")
        }
    }
}

fn apply_path(
    schema: &ResourceSchema,
    doc: &mut Map<String, Value>,
    op: OpKind,
    p: &PatchPath,
    value: Option<&Value>,
    at: &str,
) -> Result<()> {
    let r = schema.resolve(&p.attr).ok_or_else(|| {
        Error::invalid_path(format!("{at}: {} has no attribute {:?}", schema.name, p.attr.to_string()))
    })?;
    let attr = r.attr;
    if attr.mutability == Mutability::ReadOnly {
        return Err(Error::mutability(format!("{at}: {} is read-only", attr.name)));
    }
    let where_ = format!("{at}: {p}");
    let before_primaries = primaries(doc, &r, schema);
    let c = container_mut(doc, r.extension);
    match (&p.filter, &p.attr.sub) {
        (None, None) => apply_whole(c, attr, op, value, &where_)?,
        (None, Some(s)) => {
            let sub = attr
                .sub(s)
                .ok_or_else(|| Error::invalid_path(format!("{where_}: {} has no sub-attribute {s:?}", attr.name)))?;
            if sub.mutability == Mutability::ReadOnly {
                return Err(Error::mutability(format!("{where_}: {}.{} is read-only", attr.name, sub.name)));
            }
            let nv = match op {
                OpKind::Remove => None,
                _ => normalize_value(sub, value.unwrap_or(&Value::Null), &where_, true)?,
            };
            match c.get_mut(&attr.name) {
                Some(Value::Array(items)) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        set_or_remove(item, &sub.name, nv.clone());
                    }
                }
                Some(Value::Object(o)) => set_or_remove(o, &sub.name, nv),
                _ if attr.multi_valued => {
                    if nv.is_some() {
                        return Err(Error::no_target(format!(
                            "{where_}: {} has no values to set {} on",
                            attr.name, sub.name
                        )));
                    }
                }
                _ => {
                    let mut o = Map::new();
                    set_or_remove(&mut o, &sub.name, nv);
                    c.insert(attr.name.clone(), Value::Object(o));
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid_path(format!(
                "{where_}: a value filter applies to {} itself, not to a sub-attribute",
                attr.name
            )))
        }
        (Some(filter), None) => apply_filtered(c, attr, op, filter, p.sub_after_filter.as_deref(), value, &where_)?,
    }
    drop_empty(c, &attr.name);
    if let Some(ext) = r.extension {
        drop_empty(doc, ext);
    }
    fix_primaries(doc, &r, &before_primaries, &where_)
}

fn set_or_remove(obj: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            obj.insert(key.to_string(), v);
        }
        None => {
            obj.remove(key);
        }
    }
}

fn drop_empty(c: &mut Map<String, Value>, key: &str) {
    let empty = match c.get(key) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        c.remove(key);
    }
}

/// Two values of a multi-valued attribute are the same value when their `value` (and `type`,
/// where both have one) agree.
/// The "value" of a complex element, folded as `same_value` compares it.
fn value_key(attr: &Attribute, v: &Value) -> Option<String> {
    if attr.ty != AttrType::Complex {
        return None;
    }
    let s = v.as_object()?.get("value")?.as_str()?;
    let exact = attr.sub("value").is_some_and(|s| s.case_exact) || attr.name == "members";
    Some(if exact { s.to_string() } else { s.to_lowercase() })
}

fn same_value(attr: &Attribute, a: &Value, b: &Value) -> bool {
    if attr.ty != AttrType::Complex {
        return a == b;
    }
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else { return a == b };
    match (x.get("value"), y.get("value")) {
        (Some(Value::String(p)), Some(Value::String(q))) => {
            let exact = attr.sub("value").is_some_and(|s| s.case_exact) || attr.name == "members";
            let same = if exact { p == q } else { p.to_lowercase() == q.to_lowercase() };
            same && match (x.get("type"), y.get("type")) {
                (Some(s), Some(t)) => s == t,
                _ => true,
            }
        }
        (Some(p), Some(q)) => p == q,
        _ => a == b,
    }
}

fn merge_into(target: &mut Value, patch: Value) {
    match (target.as_object_mut(), patch) {
        (Some(t), Value::Object(p)) => {
            for (k, v) in p {
                t.insert(k, v);
            }
        }
        (_, p) => *target = p,
    }
}

fn apply_whole(
    c: &mut Map<String, Value>,
    attr: &Attribute,
    op: OpKind,
    value: Option<&Value>,
    at: &str,
) -> Result<()> {
    if op == OpKind::Remove {
        match value {
            // Entra ID removes group members by listing them in `value`.
            Some(v) if attr.multi_valued && !v.is_null() => {
                let gone = normalize_value(attr, v, at, true)?.unwrap_or(Value::Array(vec![]));
                if let Some(Value::Array(items)) = c.get_mut(&attr.name) {
                    let gone = gone.as_array().cloned().unwrap_or_default();
                    items.retain(|i| !gone.iter().any(|g| same_value(attr, i, g)));
                }
            }
            _ => {
                if attr.required {
                    return Err(Error::mutability(format!("{at}: {} is required and cannot be removed", attr.name)));
                }
                c.remove(&attr.name);
            }
        }
        return Ok(());
    }
    let nv = normalize_value(attr, value.unwrap_or(&Value::Null), at, true)?;
    let Some(nv) = nv else {
        // `""` or null clears the attribute.
        if attr.required {
            return Err(Error::invalid_value(format!("{at}: {} is required and cannot be cleared", attr.name)));
        }
        c.remove(&attr.name);
        return Ok(());
    };
    if attr.multi_valued && op == OpKind::Add {
        let existing = c.entry(attr.name.clone()).or_insert_with(|| Value::Array(vec![]));
        if !existing.is_array() {
            *existing = Value::Array(vec![]);
        }
        let items = existing.as_array_mut().expect("array");
        // Candidates by "value", so adding many members to a large group is not quadratic:
        // elements whose folded values differ are never the same value, so only elements
        // without a text value need the full scan.
        let mut by_value: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = value_key(attr, item) {
                by_value.entry(k).or_default().push(i);
            }
        }
        for n in nv.as_array().cloned().unwrap_or_default() {
            let hit = match value_key(attr, &n) {
                Some(k) => by_value.get(&k).and_then(|c| c.iter().copied().find(|&i| same_value(attr, &items[i], &n))),
                None => items.iter().position(|i| same_value(attr, i, &n)),
            };
            match hit {
                Some(i) => merge_into(&mut items[i], n),
                None => {
                    if let Some(k) = value_key(attr, &n) {
                        by_value.entry(k).or_default().push(items.len());
                    }
                    items.push(n)
                }
            }
        }
    } else if attr.ty == AttrType::Complex && !attr.multi_valued {
        // Sub-attributes not given are left as they are (RFC 7644 §3.5.2.1, §3.5.2.3).
        match c.get_mut(&attr.name) {
            Some(existing) => merge_into(existing, nv),
            None => {
                c.insert(attr.name.clone(), nv);
            }
        }
    } else {
        c.insert(attr.name.clone(), nv);
    }
    Ok(())
}

/// The attributes and values an `eq`-only filter pins, to build the value it asks for.
fn eq_terms(attr: &Attribute, f: &Filter, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::And(a, b) => eq_terms(attr, a, out) && eq_terms(attr, b, out),
        Filter::Compare(p, CompareOp::Eq, lit) if p.sub.is_none() && p.uri.is_none() => {
            let Some(sub) = attr.sub(&p.name) else { return false };
            let v = match lit {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Num(n) => Value::Number(n.clone()),
                CompValue::Null => return false,
            };
            out.insert(sub.name.clone(), v);
            true
        }
        _ => false,
    }
}

fn check_value_filter(attr: &Attribute, f: &Filter, at: &str) -> Result<()> {
    let mut bad = None;
    f.visit_paths(None, &mut |parent, p| {
        if parent.is_some() || p.uri.is_some() || p.sub.is_some() || attr.sub(&p.name).is_none() {
            bad.get_or_insert_with(|| p.to_string());
        }
    });
    match bad {
        Some(p) => Err(Error::invalid_filter(format!("{at}: {} has no sub-attribute {p:?}", attr.name))),
        None => Ok(()),
    }
}

fn apply_filtered(
    c: &mut Map<String, Value>,
    attr: &Attribute,
    op: OpKind,
    filter: &Filter,
    sub_name: Option<&str>,
    value: Option<&Value>,
    at: &str,
) -> Result<()> {
    if !(attr.multi_valued && attr.ty == AttrType::Complex) {
        return Err(Error::invalid_path(format!(
            "{at}: {} is not multi-valued; a value filter does not apply",
            attr.name
        )));
    }
    check_value_filter(attr, filter, at)?;
    let sub = match sub_name {
        Some(s) => Some(
            attr.sub(s)
                .ok_or_else(|| Error::invalid_path(format!("{at}: {} has no sub-attribute {s:?}", attr.name)))?,
        ),
        None => None,
    };
    if let Some(s) = sub {
        if s.mutability == Mutability::ReadOnly {
            return Err(Error::mutability(format!("{at}: {}.{} is read-only", attr.name, s.name)));
        }
    }
    let new_value = match (op, sub) {
        (OpKind::Remove, _) => None,
        (_, Some(s)) => normalize_value(s, value.unwrap_or(&Value::Null), at, true)?,
        (_, None) => {
            let v = value.unwrap_or(&Value::Null);
            if !v.is_object() && !v.is_null() {
                return Err(Error::invalid_value(format!(
                    "{at}: the value for a filtered {} must be an object",
                    attr.name
                )));
            }
            let mut single = attr.clone();
            single.multi_valued = false;
            normalize_value(&single, v, at, true)?
        }
    };
    let slot = c.entry(attr.name.clone()).or_insert_with(|| Value::Array(vec![]));
    if !slot.is_array() {
        *slot = Value::Array(vec![]);
    }
    let items = slot.as_array_mut().expect("array");
    let hits: Vec<usize> = (0..items.len()).filter(|&i| matches_element(attr, filter, &items[i])).collect();
    if hits.is_empty() {
        if op == OpKind::Remove {
            return Ok(());
        }
        // Entra ID adds and replaces `emails[type eq "work"].value` on users with no work e-mail:
        // where the filter pins values with `eq` and names another sub-attribute to set, the
        // value it describes is created. Anything else has no target (RFC 7644 §3.5.2.3).
        let mut base = Map::new();
        let eq_only = eq_terms(attr, filter, &mut base);
        let creatable = eq_only
            && match sub {
                Some(s) => !base.contains_key(&s.name),
                None => op == OpKind::Add,
            };
        if !creatable {
            return Err(Error::no_target(format!("{at}: no value of {} matches the filter", attr.name)));
        }
        match (sub, new_value) {
            (Some(s), Some(v)) => {
                base.insert(s.name.clone(), v);
            }
            (None, Some(Value::Object(o))) => {
                // The filter's terms describe the new value; the given value cannot contradict them.
                for (k, v) in o {
                    base.entry(k).or_insert(v);
                }
            }
            (_, _) => return Ok(()),
        }
        items.push(Value::Object(base));
        return Ok(());
    }
    match (op, sub) {
        (OpKind::Remove, None) => {
            let mut i = 0;
            items.retain(|_| {
                let keep = !hits.contains(&i);
                i += 1;
                keep
            });
        }
        (_, Some(s)) => {
            for &i in &hits {
                if let Some(o) = items[i].as_object_mut() {
                    set_or_remove(o, &s.name, new_value.clone());
                }
            }
            items.retain(|i| i.as_object().is_some_and(|o| !o.is_empty()));
        }
        (_, None) => {
            if let Some(v) = new_value {
                for &i in &hits {
                    merge_into(&mut items[i], v.clone());
                }
            }
        }
    }
    Ok(())
}

fn primaries(doc: &Map<String, Value>, r: &crate::resource::Resolved<'_>, schema: &ResourceSchema) -> Vec<Value> {
    if r.attr.sub("primary").is_none() {
        return vec![];
    }
    let Some(c) = schema.container(doc, r) else { return vec![] };
    match c.get(&r.attr.name) {
        Some(Value::Array(items)) => {
            items.iter().filter(|i| i.get("primary") == Some(&Value::Bool(true))).cloned().collect()
        }
        _ => vec![],
    }
}

/// At most one value may be primary (RFC 7643 §2.4): a value made primary by this operation
/// takes the flag from the values that had it before.
fn fix_primaries(
    doc: &mut Map<String, Value>,
    r: &crate::resource::Resolved<'_>,
    before: &[Value],
    at: &str,
) -> Result<()> {
    if r.attr.sub("primary").is_none() {
        return Ok(());
    }
    let c = match r.extension {
        None => doc,
        Some(e) => match doc.get_mut(e).and_then(Value::as_object_mut) {
            Some(c) => c,
            None => return Ok(()),
        },
    };
    let Some(Value::Array(items)) = c.get_mut(&r.attr.name) else { return Ok(()) };
    let is_primary = |i: &Value| i.get("primary") == Some(&Value::Bool(true));
    if items.iter().filter(|i| is_primary(i)).count() <= 1 {
        return Ok(());
    }
    for item in items.iter_mut() {
        if is_primary(item) && before.contains(item) {
            if let Some(o) = item.as_object_mut() {
                o.remove("primary");
            }
        }
    }
    let left = items.iter().filter(|i| is_primary(i)).count();
    if left > 1 {
        return Err(Error::invalid_value(format!(
            "{at}: {left} values of {} would be primary; at most one may be",
            r.attr.name
        )));
    }
    Ok(())
}
