//! Role conditions: a tree of AND / OR / NOT groups over worker fields, checked at save time
//! (unknown fields, bad values, bad patterns, groups that can never match) and evaluated per
//! worker with an explanation of which tests held.

use crate::formula::{compare, Fields, Formula, Type, Value};
use jiff::civil::Date;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A condition as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Condition {
    All { all: Vec<Condition> },
    Any { any: Vec<Condition> },
    Not { not: Box<Condition> },
    Formula { formula: String },
    Test(Test),
}

// By hand rather than untagged, so a mistake gets a message that names it.
impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let serde_json::Value::Object(map) = &v else {
            return Err(D::Error::custom("a condition is a table: { field, op, value }, { all = [...] }, { any = [...] }, { not = {...} } or { formula = \"...\" }"));
        };
        let only = |key: &str| -> Result<(), D::Error> {
            match map.keys().find(|k| k.as_str() != key) {
                Some(k) => {
                    Err(D::Error::custom(format!("{key:?} stands alone in its table; {k:?} does not belong there")))
                }
                None => Ok(()),
            }
        };
        let list = |key: &str| -> Result<Vec<Condition>, D::Error> {
            only(key)?;
            serde_json::from_value(map[key].clone()).map_err(|e| D::Error::custom(format!("in {key}: {e}")))
        };
        if map.contains_key("all") {
            return Ok(Condition::All { all: list("all")? });
        }
        if map.contains_key("any") {
            return Ok(Condition::Any { any: list("any")? });
        }
        if map.contains_key("not") {
            only("not")?;
            let c = serde_json::from_value(map["not"].clone()).map_err(|e| D::Error::custom(format!("in not: {e}")))?;
            return Ok(Condition::Not { not: Box::new(c) });
        }
        if map.contains_key("formula") {
            only("formula")?;
            let f = map["formula"].as_str().ok_or_else(|| D::Error::custom("formula must be text"))?;
            return Ok(Condition::Formula { formula: f.to_string() });
        }
        if map.contains_key("field") {
            return serde_json::from_value(v).map(Condition::Test).map_err(D::Error::custom);
        }
        Err(D::Error::custom(format!(
            "a condition needs field and op, or all, any, not or formula; here: {}",
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub field: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// Text tests ignore case unless this is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Equals,
    NotEquals,
    Contains,
    StartsWith,
    EndsWith,
    In,
    Matches,
    IsEmpty,
    IsNotEmpty,
    Before,
    After,
    /// The date is within `days` of today, before or after.
    WithinDays,
    GreaterThan,
    GreaterOrEqual,
    LessThan,
    LessOrEqual,
}

impl Op {
    /// Every operator, in the order a form offers them.
    pub const ALL: [Op; 16] = [
        Op::Equals,
        Op::NotEquals,
        Op::In,
        Op::Contains,
        Op::StartsWith,
        Op::EndsWith,
        Op::Matches,
        Op::IsEmpty,
        Op::IsNotEmpty,
        Op::Before,
        Op::After,
        Op::WithinDays,
        Op::GreaterThan,
        Op::GreaterOrEqual,
        Op::LessThan,
        Op::LessOrEqual,
    ];

    /// How a person reads it.
    pub fn words(self) -> &'static str {
        match self {
            Op::Equals => "is",
            Op::NotEquals => "is not",
            Op::Contains => "contains",
            Op::StartsWith => "starts with",
            Op::EndsWith => "ends with",
            Op::In => "is one of",
            Op::Matches => "matches the pattern",
            Op::IsEmpty => "is empty",
            Op::IsNotEmpty => "is not empty",
            Op::Before => "is before",
            Op::After => "is after",
            Op::WithinDays => "is within days of today",
            Op::GreaterThan => "is greater than",
            Op::GreaterOrEqual => "is at least",
            Op::LessThan => "is less than",
            Op::LessOrEqual => "is at most",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::In => "in",
            Op::Matches => "matches",
            Op::IsEmpty => "is_empty",
            Op::IsNotEmpty => "is_not_empty",
            Op::Before => "before",
            Op::After => "after",
            Op::WithinDays => "within_days",
            Op::GreaterThan => "greater_than",
            Op::GreaterOrEqual => "greater_or_equal",
            Op::LessThan => "less_than",
            Op::LessOrEqual => "less_or_equal",
        }
    }
}

/// Fields every worker has: testing them for emptiness can never hold.
pub const REQUIRED_FIELDS: [&str; 6] =
    ["employee_id", "first_name", "last_name", "employment_type", "status", "hire_date"];
/// The values `status` takes.
pub const STATUSES: [&str; 3] = ["active", "leave", "terminated"];

/// A date operand: a fixed day or today moved by some days.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DateArg {
    Fixed(Date),
    Today(i64),
}

#[derive(Debug, Clone)]
enum Arg {
    None,
    Text(String),
    List(Vec<String>),
    Number(f64),
    Date(DateArg),
    Regex(Arc<Regex>),
    Days(i64),
}

#[derive(Debug, Clone)]
pub enum Compiled {
    All(Vec<Compiled>),
    Any(Vec<Compiled>),
    Not(Box<Compiled>),
    Formula(Box<Formula>),
    Test { field: usize, name: String, op: Op, arg: ArgBox, case_sensitive: bool },
}

/// Kept opaque so the argument's representation can change.
#[derive(Debug, Clone)]
pub struct ArgBox(Arg);

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn date_arg(s: &str) -> Result<DateArg, String> {
    let t = s.trim().to_lowercase().replace(' ', "");
    if let Some(rest) = t.strip_prefix("today") {
        if rest.is_empty() {
            return Ok(DateArg::Today(0));
        }
        return rest.parse::<i64>().map(DateArg::Today).map_err(|_| format!("{s:?}: write today, today+7 or today-30"));
    }
    s.trim()
        .parse::<Date>()
        .map(DateArg::Fixed)
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD, or today, today+7)"))
}

/// Compiles a condition; `at` names where it is in the configuration, for errors.
pub fn compile(c: &Condition, fields: &Fields, at: &str) -> Result<Compiled, String> {
    Ok(match c {
        Condition::All { all } => Compiled::All(
            all.iter()
                .enumerate()
                .map(|(i, c)| compile(c, fields, &format!("{at}.all[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Any { any } => Compiled::Any(
            any.iter()
                .enumerate()
                .map(|(i, c)| compile(c, fields, &format!("{at}.any[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Not { not } => Compiled::Not(Box::new(compile(not, fields, &format!("{at}.not"))?)),
        Condition::Formula { formula } => {
            let f = Formula::compile(formula, fields).map_err(|e| format!("{at}.formula: {e}"))?;
            if !matches!(f.result_type(), Type::Bool | Type::Any) {
                return Err(format!(
                    "{at}.formula: a condition must give TRUE or FALSE, this gives {}",
                    f.result_type()
                ));
            }
            Compiled::Formula(Box::new(f))
        }
        Condition::Test(t) => {
            let here = format!("{at} ({} {})", t.field, t.op.as_str());
            let (field, ty) = fields.index(&t.field).ok_or_else(|| {
                format!(
                    "{here}: unknown field {:?}; the fields are: {}",
                    t.field,
                    fields.names().collect::<Vec<_>>().join(", ")
                )
            })?;
            let need_value = || -> Result<String, String> {
                t.value.as_ref().and_then(scalar).ok_or_else(|| format!("{here}: needs a value (value = \"...\")"))
            };
            let arg = match t.op {
                Op::IsEmpty | Op::IsNotEmpty => Arg::None,
                Op::Equals | Op::NotEquals | Op::Contains | Op::StartsWith | Op::EndsWith => Arg::Text(need_value()?),
                Op::In => {
                    let vals = t.values.as_ref().ok_or_else(|| format!("{here}: needs a list (values = [...])"))?;
                    Arg::List(
                        vals.iter()
                            .map(|v| scalar(v).ok_or_else(|| format!("{here}: the list holds single values only")))
                            .collect::<Result<_, _>>()?,
                    )
                }
                Op::Matches => {
                    let p = need_value()?;
                    let p = if t.case_sensitive { p } else { format!("(?i){p}") };
                    Arg::Regex(Arc::new(
                        Regex::new(&p).map_err(|e| format!("{here}: not a valid regular expression: {e}"))?,
                    ))
                }
                Op::Before | Op::After => {
                    if ty != Type::Date {
                        return Err(format!("{here}: {} is not a date field", t.field));
                    }
                    Arg::Date(date_arg(&need_value()?).map_err(|e| format!("{here}: {e}"))?)
                }
                Op::WithinDays => {
                    if ty != Type::Date {
                        return Err(format!("{here}: {} is not a date field", t.field));
                    }
                    let d = t.days.ok_or_else(|| format!("{here}: needs days = N"))?;
                    if d < 0 {
                        return Err(format!("{here}: days must not be negative"));
                    }
                    Arg::Days(d)
                }
                Op::GreaterThan | Op::GreaterOrEqual | Op::LessThan | Op::LessOrEqual => {
                    let v = need_value()?;
                    if ty == Type::Date {
                        Arg::Date(date_arg(&v).map_err(|e| format!("{here}: {e}"))?)
                    } else {
                        Arg::Number(v.trim().parse().map_err(|_| format!("{here}: {v:?} is not a number"))?)
                    }
                }
            };
            if t.days.is_some() && t.op != Op::WithinDays {
                return Err(format!("{here}: days belongs to within_days only"));
            }
            Compiled::Test {
                field,
                name: t.field.clone(),
                op: t.op,
                arg: ArgBox(arg),
                case_sensitive: t.case_sensitive,
            }
        }
    })
}

/// Why a condition can never hold, when it plainly cannot.
pub fn never(c: &Compiled) -> Option<String> {
    match c {
        Compiled::Any(cs) if cs.is_empty() => Some("an empty \"any\" group holds for nobody".into()),
        Compiled::Any(cs) => {
            let whys: Vec<String> = cs.iter().map(never).collect::<Option<_>>()?;
            Some(format!("no branch of \"any\" can hold ({})", whys.join("; ")))
        }
        Compiled::All(cs) => cs.iter().find_map(never).or_else(|| contradiction(cs)),
        Compiled::Not(inner) => always(inner).then(|| "\"not\" of a test every worker passes".into()),
        Compiled::Formula(f) => {
            (f.constant() == Some(Value::Bool(false))).then(|| format!("the formula {} is always FALSE", f.text()))
        }
        Compiled::Test { name, op, arg, .. } => match (op, &arg.0) {
            (Op::IsEmpty, _) if REQUIRED_FIELDS.contains(&name.as_str()) => Some(format!("{name} is never empty")),
            (Op::In, Arg::List(l)) if l.is_empty() => Some(format!("{name} in an empty list")),
            (Op::Equals, Arg::Text(v)) if name == "status" && !STATUSES.contains(&v.to_lowercase().as_str()) => {
                Some(format!("status is one of {}, never {v:?}", STATUSES.join(", ")))
            }
            (Op::In, Arg::List(l))
                if name == "status" && !l.iter().any(|v| STATUSES.contains(&v.to_lowercase().as_str())) =>
            {
                Some(format!("status is one of {}, none of {l:?}", STATUSES.join(", ")))
            }
            _ => None,
        },
    }
}

fn always(c: &Compiled) -> bool {
    match c {
        Compiled::Test { name, op: Op::IsNotEmpty, .. } => REQUIRED_FIELDS.contains(&name.as_str()),
        Compiled::All(cs) => cs.iter().all(always),
        Compiled::Any(cs) => cs.iter().any(always),
        Compiled::Formula(f) => f.constant() == Some(Value::Bool(true)),
        _ => false,
    }
}

/// Tests in one AND group that contradict each other.
fn contradiction(cs: &[Compiled]) -> Option<String> {
    let tests: Vec<(&String, Op, &Arg, bool)> = cs
        .iter()
        .filter_map(|c| match c {
            Compiled::Test { name, op, arg, case_sensitive, .. } => Some((name, *op, &arg.0, *case_sensitive)),
            _ => None,
        })
        .collect();
    let same = |a: &str, b: &str, cs: bool| if cs { a == b } else { a.to_lowercase() == b.to_lowercase() };
    for (i, (f1, o1, a1, cs1)) in tests.iter().enumerate() {
        for (f2, o2, a2, _) in &tests[i + 1..] {
            if !f1.eq_ignore_ascii_case(f2) {
                continue;
            }
            let clash = match (o1, a1, o2, a2) {
                (Op::Equals, Arg::Text(x), Op::Equals, Arg::Text(y)) if !same(x, y, *cs1) => {
                    Some(format!("{f1} cannot equal both {x:?} and {y:?}"))
                }
                (Op::Equals, Arg::Text(x), Op::NotEquals, Arg::Text(y))
                | (Op::NotEquals, Arg::Text(y), Op::Equals, Arg::Text(x))
                    if same(x, y, *cs1) =>
                {
                    Some(format!("{f1} cannot both equal and not equal {x:?}"))
                }
                (Op::Equals, Arg::Text(x), Op::In, Arg::List(l)) | (Op::In, Arg::List(l), Op::Equals, Arg::Text(x))
                    if !l.iter().any(|v| same(v, x, *cs1)) =>
                {
                    Some(format!("{f1} equals {x:?}, which is not in {l:?}"))
                }
                (Op::IsEmpty, _, Op::IsNotEmpty, _) | (Op::IsNotEmpty, _, Op::IsEmpty, _) => {
                    Some(format!("{f1} cannot be empty and not empty"))
                }
                (Op::After, Arg::Date(DateArg::Fixed(a)), Op::Before, Arg::Date(DateArg::Fixed(b)))
                | (Op::Before, Arg::Date(DateArg::Fixed(b)), Op::After, Arg::Date(DateArg::Fixed(a)))
                    if b <= a =>
                {
                    Some(format!("{f1} cannot be after {a} and before {b}"))
                }
                (
                    Op::GreaterThan | Op::GreaterOrEqual,
                    Arg::Number(lo),
                    Op::LessThan | Op::LessOrEqual,
                    Arg::Number(hi),
                )
                | (
                    Op::LessThan | Op::LessOrEqual,
                    Arg::Number(hi),
                    Op::GreaterThan | Op::GreaterOrEqual,
                    Arg::Number(lo),
                ) if hi < lo
                    || (hi == lo
                        && (matches!(o1, Op::GreaterThan | Op::LessThan)
                            || matches!(o2, Op::GreaterThan | Op::LessThan))) =>
                {
                    Some(format!("{f1} cannot be both above {lo} and below {hi}"))
                }
                _ => None,
            };
            if clash.is_some() {
                return clash;
            }
        }
    }
    None
}

fn resolve(d: DateArg, today: Date) -> Date {
    match d {
        DateArg::Fixed(d) => d,
        DateArg::Today(n) => today.checked_add(jiff::Span::new().days(n)).unwrap_or(today),
    }
}

/// Evaluates for one worker; each test that was decided is noted in `why` ("department
/// equals \"Engineering\": yes").
pub fn eval(c: &Compiled, row: &[Value], today: Date, why: &mut Vec<String>) -> bool {
    match c {
        Compiled::All(cs) => cs.iter().all(|c| eval(c, row, today, why)),
        Compiled::Any(cs) => cs.iter().any(|c| eval(c, row, today, why)),
        Compiled::Not(inner) => {
            let mut inner_why = vec![];
            let r = !eval(inner, row, today, &mut inner_why);
            why.push(format!("not ({}): {}", inner_why.join(", "), yes(r)));
            r
        }
        Compiled::Formula(f) => {
            let r = matches!(f.eval(row, &crate::formula::Context { today }), Ok(Value::Bool(true)));
            why.push(format!("{}: {}", f.text(), yes(r)));
            r
        }
        Compiled::Test { field, name, op, arg, case_sensitive } => {
            let v = row.get(*field).cloned().unwrap_or(Value::Blank);
            let r = test(&v, *op, &arg.0, *case_sensitive, today);
            let shown = match &arg.0 {
                Arg::Text(t) => format!(" {t:?}"),
                Arg::List(l) => format!(" {l:?}"),
                Arg::Number(n) => format!(" {n}"),
                Arg::Date(d) => format!(" {}", resolve(*d, today)),
                Arg::Regex(r) => format!(" /{}/", r.as_str().trim_start_matches("(?i)")),
                Arg::Days(d) => format!(" {d} days"),
                Arg::None => String::new(),
            };
            why.push(format!("{name} {}{shown} (is {:?}): {}", op.as_str(), v.to_text(), yes(r)));
            r
        }
    }
}

/// One line of a condition as a person reads it: a test with the value it saw and whether it
/// held, or a group ("all of", "any of", "not") over the lines below it, one level deeper.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub level: usize,
    pub text: String,
    /// The worker's value the test looked at (none for a group or a formula).
    pub seen: Option<String>,
    pub holds: bool,
}

/// Every test of a condition with what it saw, none skipped (unlike `eval`, which stops at
/// the first that decides): a "why" shows each test, not only the first that failed.
pub fn explain(c: &Compiled, row: &[Value], today: Date, level: usize, out: &mut Vec<Check>) -> bool {
    let group = |out: &mut Vec<Check>, text: &str| {
        out.push(Check { level, text: text.into(), seen: None, holds: false });
        out.len() - 1
    };
    let holds = match c {
        Compiled::All(cs) | Compiled::Any(cs) => {
            let all = matches!(c, Compiled::All(_));
            let at = group(out, if all { "all of these" } else { "any of these" });
            let each: Vec<bool> = cs.iter().map(|c| explain(c, row, today, level + 1, out)).collect();
            let r = if all { each.iter().all(|b| *b) } else { each.iter().any(|b| *b) };
            out[at].holds = r;
            return r;
        }
        Compiled::Not(inner) => {
            let at = group(out, "not");
            let r = !explain(inner, row, today, level + 1, out);
            out[at].holds = r;
            return r;
        }
        Compiled::Formula(f) => {
            let r = matches!(f.eval(row, &crate::formula::Context { today }), Ok(Value::Bool(true)));
            out.push(Check { level, text: f.text().to_string(), seen: None, holds: r });
            r
        }
        Compiled::Test { field, name, op, arg, case_sensitive } => {
            let v = row.get(*field).cloned().unwrap_or(Value::Blank);
            let r = test(&v, *op, &arg.0, *case_sensitive, today);
            let shown = match &arg.0 {
                Arg::Text(t) => format!(" {t:?}"),
                Arg::List(l) => format!(" {}", l.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ")),
                Arg::Number(n) => format!(" {n}"),
                Arg::Date(d) => format!(" {}", resolve(*d, today)),
                Arg::Regex(r) => format!(" /{}/", r.as_str().trim_start_matches("(?i)")),
                Arg::Days(d) => format!(" {d} days"),
                Arg::None => String::new(),
            };
            out.push(Check {
                level,
                text: format!("{name} {}{shown}", op.as_str()),
                seen: Some(v.to_text()),
                holds: r,
            });
            r
        }
    };
    holds
}

/// As `eval`, without the explanation.
pub fn holds(c: &Compiled, row: &[Value], today: Date) -> bool {
    match c {
        Compiled::All(cs) => cs.iter().all(|c| holds(c, row, today)),
        Compiled::Any(cs) => cs.iter().any(|c| holds(c, row, today)),
        Compiled::Not(inner) => !holds(inner, row, today),
        Compiled::Formula(f) => matches!(f.eval(row, &crate::formula::Context { today }), Ok(Value::Bool(true))),
        Compiled::Test { field, op, arg, case_sensitive, .. } => {
            let v = row.get(*field).unwrap_or(&Value::Blank);
            test(v, *op, &arg.0, *case_sensitive, today)
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn test(v: &Value, op: Op, arg: &Arg, case_sensitive: bool, today: Date) -> bool {
    let fold = |s: &str| if case_sensitive { s.to_string() } else { s.to_lowercase() };
    let text = fold(&v.to_text());
    match (op, arg) {
        (Op::IsEmpty, _) => v.is_blank(),
        (Op::IsNotEmpty, _) => !v.is_blank(),
        (Op::Equals, Arg::Text(x)) => text == fold(x),
        (Op::NotEquals, Arg::Text(x)) => text != fold(x),
        (Op::Contains, Arg::Text(x)) => text.contains(&fold(x)),
        (Op::StartsWith, Arg::Text(x)) => text.starts_with(&fold(x)),
        (Op::EndsWith, Arg::Text(x)) => text.ends_with(&fold(x)),
        (Op::In, Arg::List(l)) => l.iter().any(|x| fold(x) == text),
        (Op::Matches, Arg::Regex(r)) => r.is_match(&v.to_text()),
        (
            Op::Before | Op::After | Op::GreaterThan | Op::GreaterOrEqual | Op::LessThan | Op::LessOrEqual,
            Arg::Date(d),
        ) => {
            let Value::Date(x) = v else { return false };
            let d = resolve(*d, today);
            match op {
                Op::Before | Op::LessThan => *x < d,
                Op::After | Op::GreaterThan => *x > d,
                Op::GreaterOrEqual => *x >= d,
                _ => *x <= d,
            }
        }
        (Op::WithinDays, Arg::Days(n)) => {
            let Value::Date(x) = v else { return false };
            (*x - today).get_days().abs() as i64 <= *n || (today - *x).get_days().abs() as i64 <= *n
        }
        (Op::GreaterThan | Op::GreaterOrEqual | Op::LessThan | Op::LessOrEqual, Arg::Number(n)) => {
            let Ok(x) = v.to_text().trim().parse::<f64>() else { return false };
            let o = compare(&Value::Number(x), &Value::Number(*n));
            match op {
                Op::GreaterThan => o.is_gt(),
                Op::GreaterOrEqual => o.is_ge(),
                Op::LessThan => o.is_lt(),
                _ => o.is_le(),
            }
        }
        _ => false,
    }
}

/// The values conditions name for each field they test: `Some(values)` when every test of the
/// field compares it with named values (equals, in) outside a `not`, `None` when some test reads
/// it otherwise (not_equals, contains, a pattern...), so that nobody can say which values it
/// misses.
pub fn named_values<'c>(
    conditions: impl IntoIterator<Item = &'c Condition>,
) -> std::collections::BTreeMap<String, Option<Vec<String>>> {
    type Named = std::collections::BTreeMap<String, Option<Vec<String>>>;
    fn walk(c: &Condition, negated: bool, out: &mut Named) {
        match c {
            Condition::All { all } => all.iter().for_each(|c| walk(c, negated, out)),
            Condition::Any { any } => any.iter().for_each(|c| walk(c, negated, out)),
            Condition::Not { not } => walk(not, true, out),
            Condition::Formula { .. } => {}
            Condition::Test(t) => {
                let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let named: Option<Vec<String>> = match t.op {
                    _ if negated => None,
                    Op::Equals => Some(t.value.iter().map(text).collect()),
                    Op::In => Some(t.values.iter().flatten().map(text).collect()),
                    _ => None,
                };
                let e = out.entry(t.field.to_ascii_lowercase()).or_insert_with(|| Some(vec![]));
                match (e.as_mut(), named) {
                    (Some(v), Some(n)) => v.extend(n),
                    _ => *e = None,
                }
            }
        }
    }
    let mut out = Named::new();
    for c in conditions {
        walk(c, false, &mut out);
    }
    out
}
