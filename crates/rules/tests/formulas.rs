//! Every formula function and operator, with Unicode, empty and missing values; errors with
//! their positions; and properties over arbitrary input.

use jiff::civil::date;
use proptest::prelude::*;
use rules::formula::{Context, Fields, Formula, Type, Value};

fn fields() -> Fields {
    Fields::new(vec![
        ("first_name".into(), Type::Text),
        ("last_name".into(), Type::Text),
        ("title".into(), Type::Text),
        ("hire_date".into(), Type::Date),
        ("termination_date".into(), Type::Date),
        ("custom.level".into(), Type::Text),
    ])
}

fn row() -> Vec<Value> {
    vec![
        Value::Text("Zoë".into()),
        Value::Text("Ñúñez-Øster".into()),
        Value::Blank,
        Value::Date(date(2021, 3, 15)),
        Value::Blank,
        Value::Text("7".into()),
    ]
}

const CTX: Context = Context { today: date(2026, 6, 1) };

fn eval(f: &str) -> Value {
    let c = Formula::compile(f, &fields()).unwrap_or_else(|e| panic!("{f}: {e}"));
    c.eval(&row(), &CTX).unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn text(f: &str) -> String {
    match eval(f) {
        Value::Text(s) => s,
        other => panic!("{f}: {other:?}"),
    }
}

fn num(f: &str) -> f64 {
    match eval(f) {
        Value::Number(n) => n,
        other => panic!("{f}: {other:?}"),
    }
}

fn boolean(f: &str) -> bool {
    match eval(f) {
        Value::Bool(b) => b,
        other => panic!("{f}: {other:?}"),
    }
}

fn run_err(f: &str) -> String {
    Formula::compile(f, &fields()).unwrap().eval(&row(), &CTX).unwrap_err()
}

fn compile_err(f: &str) -> String {
    Formula::compile(f, &fields()).unwrap_err().to_string()
}

#[test]
fn the_user_name_example() {
    assert_eq!(
        text(r#"=LOWER(NORMALIZE(first_name) & "." & NORMALIZE(last_name)) & "@acme.com""#),
        "zoe.nunez-oster@acme.com"
    );
}

#[test]
fn text_functions() {
    assert_eq!(text(r#"CONCAT(first_name, " ", last_name)"#), "Zoë Ñúñez-Øster");
    assert_eq!(text(r#"CONCATENATE("a", 1, TRUE)"#), "a1TRUE");
    assert_eq!(text("LOWER(last_name)"), "ñúñez-øster");
    assert_eq!(text("UPPER(first_name)"), "ZOË");
    assert_eq!(text(r#"PROPER("élodie o'brien-SMITH")"#), "Élodie O'Brien-Smith");
    assert_eq!(text(r#"TRIM("  a   b  ")"#), "a b");
    assert_eq!(text("LEFT(first_name)"), "Z");
    assert_eq!(text("LEFT(last_name, 3)"), "Ñúñ");
    assert_eq!(text("LEFT(first_name, 99)"), "Zoë");
    assert_eq!(text("RIGHT(first_name, 2)"), "oë");
    assert_eq!(text("RIGHT(title, 2)"), "", "blank is empty text");
    assert_eq!(text("MID(last_name, 2, 3)"), "úñe");
    assert_eq!(text("MID(last_name, 40, 3)"), "");
    assert_eq!(num("LEN(last_name)"), 11.0);
    assert_eq!(num("LEN(title)"), 0.0);
    assert_eq!(text(r#"SUBSTITUTE("a-b-c", "-", ".")"#), "a.b.c");
    assert_eq!(text(r#"SUBSTITUTE("a-b-c", "-", ".", 2)"#), "a-b.c");
    assert_eq!(text(r#"SUBSTITUTE("a-b-c", "", ".")"#), "a-b-c");
    assert_eq!(text(r#"REPLACE("abcdef", 2, 3, "ZZ")"#), "aZZef");
    assert_eq!(num(r#"FIND("ñ", last_name)"#), 3.0, "FIND is case-sensitive");
    assert_eq!(num(r#"FIND("Ø", last_name, 2)"#), 7.0);
    assert!(run_err(r#"FIND("x", last_name)"#).contains("is not in"));
    assert_eq!(text(r#"INDEX(SPLIT("Paris, Lyon ,Nice", ","), 2)"#), "Lyon");
    assert_eq!(eval(r#"INDEX(SPLIT("a,b", ","), 5)"#), Value::Blank);
    assert!(run_err(r#"INDEX(SPLIT("a,b", ","), 0)"#).contains("start at 1"));
    assert!(run_err(r#"SPLIT("a", "")"#).contains("delimiter is empty"));
    assert_eq!(text(r#"NORMALIZE("Łukasz Żółć Straße Æsir Þór")"#), "Lukasz Zolc Strasse AEsir Thor");
    assert_eq!(text(r#"REGEXREPLACE(last_name, "[^\p{L}]", "")"#), "ÑúñezØster");
    assert!(boolean(r#"REGEXMATCH(first_name, "^Z")"#));
    assert!(!boolean(r#"REGEXMATCH(title, ".")"#));
    assert_eq!(num(r#"VALUE(custom.level) + 1"#), 8.0);
}

#[test]
fn logic_functions() {
    assert_eq!(text(r#"IF(ISBLANK(title), "none", title)"#), "none");
    assert_eq!(eval(r#"IF(FALSE, "x")"#), Value::Bool(false));
    assert_eq!(
        text(r#"IFS(VALUE(custom.level) > 8, "senior", VALUE(custom.level) > 5, "mid", TRUE, "junior")"#),
        "mid"
    );
    assert!(run_err(r#"IFS(FALSE, "a")"#).contains("no condition"));
    assert_eq!(text(r#"SWITCH(custom.level, "7", "seven", "8", "eight")"#), "seven");
    assert_eq!(text(r#"SWITCH(first_name, "ZOË", "case-insensitive", "other")"#), "case-insensitive");
    assert_eq!(text(r#"SWITCH(title, "x", "y", "default")"#), "default");
    assert!(run_err(r#"SWITCH(title, "x", "y")"#).contains("no case"));
    assert!(boolean(r#"AND(TRUE, first_name = "zoë")"#));
    assert!(!boolean("AND(TRUE, FALSE)"));
    assert!(boolean("OR(FALSE, ISBLANK(termination_date))"));
    assert!(boolean("NOT(ISBLANK(hire_date))"));
    assert_eq!(text("COALESCE(title, termination_date, first_name)"), "Zoë");
    assert_eq!(eval("COALESCE(title, termination_date)"), Value::Blank);
    assert_eq!(text(r#"IFERROR(FIND("x", first_name), "not found")"#), "not found");
}

#[test]
fn dates_and_numbers() {
    assert_eq!(text(r#"TEXT(hire_date, "yyyy-mm-dd")"#), "2021-03-15");
    assert_eq!(text(r#"TEXT(hire_date, "dd.mm.yy")"#), "15.03.21");
    assert_eq!(text(r#"TEXT(hire_date, "mmmm d, yyyy")"#), "March 15, 2021");
    assert_eq!(text(r#"TEXT(hire_date, "mmm")"#), "Mar");
    assert_eq!(text(r#"TEXT(termination_date, "yyyy")"#), "");
    assert_eq!(text(r##"TEXT(1234567.891, "#,##0.00")"##), "1,234,567.89");
    assert_eq!(text(r#"TEXT(42, "00000")"#), "00042");
    assert_eq!(text(r#"TEXT(-3.5, "0")"#), "-4");
    assert_eq!(eval("DATE(2026, 2, 28) + 1"), Value::Date(date(2026, 3, 1)));
    assert!(run_err("DATE(2026, 2, 30)").contains("is not a date"));
    assert_eq!(eval("TODAY()"), Value::Date(date(2026, 6, 1)));
    assert_eq!(num("TODAY() - hire_date"), 1904.0);
    assert_eq!(eval("hire_date - 15"), Value::Date(date(2021, 2, 28)));
    assert_eq!(num("YEAR(hire_date) * 100 + MONTH(hire_date) + DAY(hire_date) / 100"), 202103.15);
    assert!(boolean("hire_date < TODAY()"));
    assert!(boolean("hire_date >= DATE(2021, 3, 15)"));
    assert_eq!(eval("termination_date + 3"), Value::Blank);
    assert_eq!(num("-(2 + 3) * 4 / 8"), -2.5);
    assert!(run_err("1 / 0").contains("division by zero"));
    assert_eq!(text("\"say \"\"hi\"\"\""), "say \"hi\"");
    assert_eq!(text("1.5 & \"\""), "1.5");
    assert!(boolean("\"abc\" <> \"ABD\""));
}

#[test]
fn save_time_errors_say_what_and_where() {
    let e = compile_err("=LOWER(frist_name)");
    assert!(
        e.starts_with("line 1, column 8: unknown field \"frist_name\"; the fields are: first_name, last_name"),
        "{e}"
    );
    let e = compile_err("LOWER(first_name, 2)");
    assert_eq!(e, "line 1, column 1: LOWER takes 1 argument, here 2");
    let e = compile_err("MID(first_name, 2)");
    assert_eq!(e, "line 1, column 1: MID takes 3 arguments, here 2");
    let e = compile_err("LEFT(first_name, \"two\")");
    assert_eq!(e, "line 1, column 18: LEFT: argument 2 must be a number, here it is text");
    let e = compile_err("first_name + 1");
    assert!(e.contains("column 12: \"+\" needs numbers"), "{e}");
    let e = compile_err("IF(first_name, 1, 2)");
    assert!(e.contains("IF: argument 1 must be TRUE/FALSE, here it is text"), "{e}");
    let e = compile_err("CONCAT(first_name,\n  LOWER(last_name)");
    assert!(e.starts_with("line 2, column 19:"), "{e}");
    let e = compile_err("\"open");
    assert!(e.contains("no closing"), "{e}");
    let e = compile_err("FOO(1)");
    assert!(e.contains("unknown function FOO; the functions are: CONCAT"), "{e}");
    let e = compile_err("REGEXMATCH(first_name, \"(\")");
    assert!(e.contains("not a valid regular expression"), "{e}");
    let e = compile_err("REGEXMATCH(first_name, last_name)");
    assert!(e.contains("the pattern must be written as text"), "{e}");
    let e = compile_err("TEXT(hire_date, \"hello\")");
    assert!(e.contains("has no date part"), "{e}");
    let e = compile_err("SPLIT(first_name, \" \") & \"x\"");
    assert!(e.contains("not a list"), "{e}");
    let e = compile_err("hire_date = first_name");
    assert!(e.contains("compares two values of one kind"), "{e}");
    let e = compile_err("1 2");
    assert!(e.contains("unexpected the number 2 after a complete formula"), "{e}");
    assert!(compile_err("").contains("empty"));
    assert!(compile_err("LOWER").contains("is a function"));
    assert!(compile_err("IFS(TRUE, 1, FALSE)").contains("pairs"));
    assert!(compile_err("IFS(TRUE)").contains("IFS takes at least 2 arguments, here 1"));
    assert!(compile_err("a $ b").contains("unexpected character '$'"));
}

#[test]
fn constants_are_known_at_save_time() {
    let f = Formula::compile("=\"mem\" & \"ber\"", &fields()).unwrap();
    assert_eq!(f.constant(), Some(Value::Text("member".into())));
    assert_eq!(Formula::compile("first_name", &fields()).unwrap().constant(), None);
    assert_eq!(Formula::compile("TODAY()", &fields()).unwrap().constant(), None);
}

proptest! {
    // Any text at all either compiles or fails with a position inside it; never panics.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        match Formula::compile(&s, &fields()) {
            Ok(f) => { let _ = f.eval(&row(), &CTX); }
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(e.line <= s.lines().count().max(1) + 1);
            }
        }
    }

    // NORMALIZE leaves no combining mark and is idempotent; LOWER/UPPER keep the letter count
    // of plain text; & is CONCAT.
    #[test]
    fn text_laws(a in "[\\p{L} .'-]{0,20}", b in "[\\p{L}]{0,10}") {
        let f = Fields::new(vec![("a".into(), Type::Text), ("b".into(), Type::Text)]);
        let r = vec![Value::Text(a.clone()), Value::Text(b.clone())];
        let run = |src: &str| Formula::compile(src, &f).unwrap().eval(&r, &CTX).unwrap().to_text();
        let n = run("NORMALIZE(a)");
        prop_assert!(!n.chars().any(unicode_mark));
        prop_assert_eq!(rules::formula::normalize(&n), n.clone());
        prop_assert_eq!(run("a & b"), run("CONCAT(a, b)"));
        prop_assert_eq!(run("LEFT(a, 3) & MID(a, 4, 1000)"), a.clone());
        prop_assert_eq!(run("LEN(a)"), a.chars().count().to_string());
    }
}

fn unicode_mark(c: char) -> bool {
    unicode_normalization::char::is_combining_mark(c)
}
