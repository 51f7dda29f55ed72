//! The body of the fuzz target for the filter and PATCH parsers (`fuzz/`), kept here so the
//! saved corpus is replayed by an ordinary test on the stable toolchain.

use crate::{patch, Dialect, Filter, PatchPath, ResourceSchema};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

fn sample() -> &'static (ResourceSchema, Map<String, Value>) {
    static SAMPLE: OnceLock<(ResourceSchema, Map<String, Value>)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let schema = Dialect::Generic.user_schema();
        let user = schema
            .normalize(&json!({
                "schemas": [crate::schema::USER, crate::schema::ENTERPRISE_USER],
                "userName": "fuzz@example.com", "displayName": "Fuzz", "active": true, "title": "T",
                "name": {"givenName": "F", "familyName": "Z"},
                "emails": [{"value": "fuzz@example.com", "type": "work", "primary": true}, {"value": "f@home", "type": "home"}],
                crate::schema::ENTERPRISE_USER: {"department": "D", "manager": {"value": "m"}}
            }))
            .expect("sample user is valid");
        (schema, user)
    })
}

/// Never panics on any input; asserts what must hold for what parses.
pub fn filter_and_patch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (schema, user) = sample();
    if let Ok(f) = Filter::parse(text) {
        let printed = f.to_string();
        let again =
            Filter::parse(&printed).unwrap_or_else(|e| panic!("printed filter {printed:?} does not parse: {e}"));
        assert_eq!(again, f, "print/parse changed the filter {text:?}");
        if schema.check_filter(&f).is_ok() {
            let _ = schema.matches(&f, user);
        }
    }
    wide_and_deep(text);
    if let Ok(p) = PatchPath::parse(text) {
        let printed = p.to_string();
        assert_eq!(PatchPath::parse(&printed).ok(), Some(p), "print/parse changed the path {text:?}");
    }
    if let Ok(body) = serde_json::from_str::<Value>(text) {
        if let Ok(ops) = patch::parse(&body) {
            if let Ok(out) = patch::apply(schema, user, &ops) {
                check_invariants(schema, &out);
            }
        }
    }
}

/// What every successfully patched resource satisfies: it is in normal form (normalising it
/// again changes nothing), has its required attributes, and at most one primary value per
/// multi-valued attribute.
pub fn check_invariants(schema: &ResourceSchema, res: &Map<String, Value>) {
    let renormalised = schema.normalize(&Value::Object(res.clone())).expect("a patched resource stays valid");
    assert_eq!(&renormalised, res, "a patched resource is in normal form");
    schema.check_required(res).expect("required attributes survive a PATCH");
    let mut containers = vec![res];
    containers.extend(schema.extensions.iter().filter_map(|e| res.get(&e.id).and_then(Value::as_object)));
    for c in containers {
        for (k, v) in c {
            if let Value::Array(items) = v {
                let primaries = items.iter().filter(|i| i.get("primary") == Some(&Value::Bool(true))).count();
                assert!(primaries <= 1, "{k} has {primaries} primary values");
            }
        }
    }
}

/// The input repeated into wide `or`/`and` chains and deep `not (...)` nests, up to some
/// thousands of terms: each is refused with an error or parsed and evaluated, and none
/// overflows the stack (a 7,000-term `or` once killed the sandbox).
fn wide_and_deep(text: &str) {
    if text.is_empty() || text.len() > 64 {
        return;
    }
    let (schema, user) = sample();
    let n = 1 + text.len() * 120;
    for joiner in [" or ", " and "] {
        let wide = vec![text; n].join(joiner);
        if let Ok(f) = Filter::parse(&wide) {
            let _ = f.to_string();
            if schema.check_filter(&f).is_ok() {
                let _ = schema.matches(&f, user);
            }
        }
        // Past the length bound the term bound still holds.
        let limits = crate::filter::FilterLimits { max_bytes: usize::MAX, ..Default::default() };
        if let Ok(f) = Filter::parse_with_limits(&wide, limits) {
            let _ = schema.matches(&f, user);
        }
    }
    let deep = format!("{}{text}{}", "not (".repeat(n), ")".repeat(n));
    let _ = Filter::parse(&deep);
}
