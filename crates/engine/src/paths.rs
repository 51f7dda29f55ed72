//! Reading and writing a mapped attribute in a SCIM user by its path: `title`,
//! `name.givenName`, `emails[type eq "work"].value`, or a URN-qualified extension attribute.

use serde_json::{Map, Value};

struct Path {
    urn: Option<String>,
    name: String,
    /// `[type eq "work"]`: the element whose `type` is `work`.
    select: Option<(String, String)>,
    sub: Option<String>,
}

fn parse(path: &str) -> Path {
    let (urn, rest) = match path.rfind(':') {
        Some(i) if path.starts_with("urn:") => (Some(path[..i].to_string()), &path[i + 1..]),
        _ => (None, path),
    };
    let (head, select, after) = match (rest.find('['), rest.rfind(']')) {
        (Some(a), Some(b)) if b > a => {
            let inner = &rest[a + 1..b];
            let sel =
                inner.split_once(" eq ").map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()));
            (&rest[..a], sel, rest[b + 1..].trim_start_matches('.'))
        }
        _ => (rest, None, ""),
    };
    let (name, sub) = match head.split_once('.') {
        Some((n, s)) => (n.to_string(), Some(s.to_string())),
        None if !after.is_empty() => (head.to_string(), Some(after.to_string())),
        None => (head.to_string(), None),
    };
    Path { urn, name, select, sub }
}

fn get_ci<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).or_else(|| m.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v))
}

/// The current value at `path`, or null.
pub fn get(user: &Value, path: &str) -> Value {
    compile(path).get(user).cloned().unwrap_or(Value::Null)
}

/// A path parsed once, to read it in many users (a plan reads every mapped attribute of
/// every account).
pub struct Compiled(Path);

pub fn compile(path: &str) -> Compiled {
    Compiled(parse(path))
}

impl Compiled {
    /// The value at this path in `user`, borrowed; None when absent.
    pub fn get<'v>(&self, user: &'v Value) -> Option<&'v Value> {
        let p = &self.0;
        let obj = user.as_object()?;
        let base = match &p.urn {
            Some(u) => get_ci(obj, u).and_then(Value::as_object)?,
            None => obj,
        };
        let v = get_ci(base, &p.name)?;
        let v = match (&p.select, v) {
            (Some((k, want)), Value::Array(items)) => {
                items.iter().find(|e| e.get(k).and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(want)))?
            }
            (Some(_), _) => return None,
            (None, v) => v,
        };
        match &p.sub {
            Some(s) => v.as_object().and_then(|o| get_ci(o, s)),
            None => Some(v),
        }
    }
}

/// Sets `path` to `value` in a user body being built.
pub fn set(user: &mut Value, path: &str, value: Value) {
    let p = parse(path);
    if let Some(u) = &p.urn {
        if let Some(schemas) = user.get_mut("schemas").and_then(Value::as_array_mut) {
            if !schemas.iter().any(|s| s.as_str() == Some(u)) {
                schemas.push(Value::String(u.clone()));
            }
        }
    }
    let root = user.as_object_mut().expect("a user is an object");
    let base = match &p.urn {
        Some(u) => root.entry(u.clone()).or_insert_with(|| Value::Object(Map::new())).as_object_mut().expect("object"),
        None => root,
    };
    match (&p.select, &p.sub) {
        (Some((k, want)), sub) => {
            let list = base.entry(p.name.clone()).or_insert_with(|| Value::Array(vec![]));
            let Some(items) = list.as_array_mut() else { return };
            let pos = items.iter().position(|e| e.get(k).and_then(Value::as_str) == Some(want.as_str()));
            let i = pos.unwrap_or_else(|| {
                let primary = items.is_empty();
                let mut e = Map::new();
                e.insert(k.clone(), Value::String(want.clone()));
                if primary {
                    e.insert("primary".into(), Value::Bool(true));
                }
                items.push(Value::Object(e));
                items.len() - 1
            });
            if let Some(o) = items[i].as_object_mut() {
                o.insert(sub.clone().unwrap_or_else(|| "value".into()), value);
            }
        }
        (None, Some(sub)) => {
            let o = base.entry(p.name.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Some(o) = o.as_object_mut() {
                o.insert(sub.clone(), value);
            }
        }
        (None, None) => {
            base.insert(p.name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_what_they_write() {
        let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]});
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        for (p, v) in [
            ("userName", json!("ana@acme.example")),
            ("name.givenName", json!("Ana")),
            ("emails[type eq \"work\"].value", json!("ana@acme.example")),
            ("addresses[type eq \"work\"].locality", json!("Paris")),
            (&format!("{ent}:department") as &str, json!("R&D")),
            (&format!("{ent}:manager.value") as &str, json!("1001")),
        ] {
            set(&mut u, p, v.clone());
            assert_eq!(get(&u, p), v, "{p}");
        }
        assert_eq!(u["emails"][0]["primary"], true);
        assert!(u["schemas"].as_array().unwrap().contains(&json!(ent)));
        assert_eq!(get(&u, "emails[type eq \"home\"].value"), Value::Null);
        assert_eq!(get(&u, "title"), Value::Null);
    }
}
