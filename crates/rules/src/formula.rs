//! Spreadsheet-style formulas over worker fields, e.g.
//! `=LOWER(NORMALIZE(first_name) & "." & NORMALIZE(last_name)) & "@acme.com"`.
//! A formula is parsed and type-checked once, at save time, with positions in every error;
//! evaluating it per worker walks the compiled tree and never parses again.

use jiff::civil::Date;
use regex::Regex;
use std::fmt;
use std::sync::Arc;

/// Static types; `Any` where the type is only known per worker (IF with mixed branches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    Number,
    Bool,
    Date,
    List,
    Any,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Text => "text",
            Type::Number => "a number",
            Type::Bool => "TRUE/FALSE",
            Type::Date => "a date",
            Type::List => "a list",
            Type::Any => "a value",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A field with no value: "" as text, 0 as a number.
    Blank,
    Text(String),
    Number(f64),
    Bool(bool),
    Date(Date),
    List(Vec<String>),
}

impl Value {
    pub fn is_blank(&self) -> bool {
        match self {
            Value::Blank => true,
            Value::Text(s) => s.is_empty(),
            _ => false,
        }
    }

    /// The value as text, as `&` would show it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Blank => String::new(),
            Value::Text(s) => s.clone(),
            Value::Number(n) => number_text(*n),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Value::Date(d) => d.to_string(),
            Value::List(l) => l.join(","),
        }
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Where in the formula text a problem is: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

/// The fields a formula may name, with their types, in the order rows are built.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    names: Vec<(String, Type)>,
}

impl Fields {
    pub fn new(names: Vec<(String, Type)>) -> Self {
        Fields { names }
    }
    pub fn index(&self, name: &str) -> Option<(usize, Type)> {
        self.names.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).map(|i| (i, self.names[i].1))
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|(n, _)| n.as_str())
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What evaluation needs besides the worker's row.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub today: Date,
}

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

fn err<T>(at: Pos, message: impl Into<String>) -> Result<T, FormulaError> {
    Err(FormulaError { line: at.line, column: at.column, message: message.into() })
}

fn lex(text: &str) -> Result<Vec<(Tok, Pos)>, FormulaError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let (mut i, mut line, mut col) = (0, 1, 1);
    // A leading "=" is how spreadsheets mark a formula; it is optional here.
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        let at = Pos { line, column: col };
        let step = |i: &mut usize, col: &mut usize, n: usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            step(&mut i, &mut col, 1);
            continue;
        }
        if first && c == '=' {
            first = false;
            step(&mut i, &mut col, 1);
            continue;
        }
        first = false;
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            col += i - start;
            let n = s.parse::<f64>().or_else(|_| err(at, format!("{s:?} is not a number")))?;
            out.push((Tok::Num(n), at));
            continue;
        }
        if c == '"' {
            let mut s = String::new();
            step(&mut i, &mut col, 1);
            loop {
                match chars.get(i) {
                    None => return err(at, "this text has no closing \""),
                    // "" inside text is one quote, as in spreadsheets.
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        step(&mut i, &mut col, 2);
                    }
                    Some('"') => {
                        step(&mut i, &mut col, 1);
                        break;
                    }
                    Some('\n') => {
                        s.push('\n');
                        i += 1;
                        line += 1;
                        col = 1;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        step(&mut i, &mut col, 1);
                    }
                }
            }
            out.push((Tok::Str(s), at));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            col += i - start;
            out.push((Tok::Ident(chars[start..i].iter().collect()), at));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op: Option<&'static str> = match two.as_str() {
            "<>" => Some("<>"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(op) = op {
            out.push((Tok::Op(op), at));
            step(&mut i, &mut col, 2);
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' | ';' => Tok::Comma,
            '&' => Tok::Op("&"),
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '=' => Tok::Op("="),
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            other => return err(at, format!("unexpected character {other:?}")),
        };
        out.push((tok, at));
        step(&mut i, &mut col, 1);
    }
    out.push((Tok::End, Pos { line, column: col }));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The compiled tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Concat,
    Lower,
    Upper,
    Proper,
    Trim,
    Left,
    Right,
    Mid,
    Len,
    Substitute,
    Replace,
    Find,
    Split,
    Index,
    If,
    Ifs,
    Switch,
    And,
    Or,
    Not,
    IsBlank,
    Coalesce,
    Text,
    Date,
    Today,
    Year,
    Month,
    Day,
    Value,
    RegexMatch,
    RegexReplace,
    Normalize,
    IfError,
}

/// Name, fewest and most arguments (None: any number), the result type.
const FUNCTIONS: &[(&str, Func, usize, Option<usize>, Type)] = &[
    ("CONCAT", Func::Concat, 1, None, Type::Text),
    ("CONCATENATE", Func::Concat, 1, None, Type::Text),
    ("LOWER", Func::Lower, 1, Some(1), Type::Text),
    ("UPPER", Func::Upper, 1, Some(1), Type::Text),
    ("PROPER", Func::Proper, 1, Some(1), Type::Text),
    ("TRIM", Func::Trim, 1, Some(1), Type::Text),
    ("LEFT", Func::Left, 1, Some(2), Type::Text),
    ("RIGHT", Func::Right, 1, Some(2), Type::Text),
    ("MID", Func::Mid, 3, Some(3), Type::Text),
    ("LEN", Func::Len, 1, Some(1), Type::Number),
    ("SUBSTITUTE", Func::Substitute, 3, Some(4), Type::Text),
    ("REPLACE", Func::Replace, 4, Some(4), Type::Text),
    ("FIND", Func::Find, 2, Some(3), Type::Number),
    ("SPLIT", Func::Split, 2, Some(2), Type::List),
    ("INDEX", Func::Index, 2, Some(2), Type::Text),
    ("IF", Func::If, 2, Some(3), Type::Any),
    ("IFS", Func::Ifs, 2, None, Type::Any),
    ("SWITCH", Func::Switch, 3, None, Type::Any),
    ("AND", Func::And, 1, None, Type::Bool),
    ("OR", Func::Or, 1, None, Type::Bool),
    ("NOT", Func::Not, 1, Some(1), Type::Bool),
    ("ISBLANK", Func::IsBlank, 1, Some(1), Type::Bool),
    ("COALESCE", Func::Coalesce, 1, None, Type::Any),
    ("TEXT", Func::Text, 2, Some(2), Type::Text),
    ("DATE", Func::Date, 3, Some(3), Type::Date),
    ("TODAY", Func::Today, 0, Some(0), Type::Date),
    ("YEAR", Func::Year, 1, Some(1), Type::Number),
    ("MONTH", Func::Month, 1, Some(1), Type::Number),
    ("DAY", Func::Day, 1, Some(1), Type::Number),
    ("VALUE", Func::Value, 1, Some(1), Type::Number),
    ("REGEXMATCH", Func::RegexMatch, 2, Some(2), Type::Bool),
    ("REGEXREPLACE", Func::RegexReplace, 3, Some(3), Type::Text),
    ("NORMALIZE", Func::Normalize, 1, Some(1), Type::Text),
    ("IFERROR", Func::IfError, 2, Some(2), Type::Any),
];

/// The function names formulas may use.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.0)
}

#[derive(Debug, Clone)]
enum Node {
    Lit(Value),
    Field(usize),
    Call(Func, Vec<Node>),
    /// A regex compiled at save time, with the subject (and replacement).
    Regex(Func, Arc<Regex>, Vec<Node>),
    Concat(Vec<Node>),
    /// The operator, the operands, and whether the result is a date (a blank date stays blank).
    Arith(char, Box<Node>, Box<Node>, bool),
    Neg(Box<Node>),
    Cmp(&'static str, Box<Node>, Box<Node>),
}

/// A parsed, checked formula.
#[derive(Debug, Clone)]
pub struct Formula {
    text: String,
    root: Node,
    ty: Type,
}

impl Formula {
    /// Parses and checks `text` against the fields it may use.
    pub fn compile(text: &str, fields: &Fields) -> Result<Formula, FormulaError> {
        let toks = lex(text)?;
        let mut p = Parser { toks, i: 0, fields };
        if p.peek() == &Tok::End {
            return err(p.pos(), "the formula is empty");
        }
        let (root, ty) = p.compare()?;
        if p.peek() != &Tok::End {
            return err(p.pos(), format!("unexpected {} after a complete formula", describe(p.peek())));
        }
        Ok(Formula { text: text.to_string(), root, ty })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn result_type(&self) -> Type {
        self.ty
    }

    /// Evaluates against one worker's row (values in the order of `Fields`).
    pub fn eval(&self, row: &[Value], ctx: &Context) -> Result<Value, String> {
        eval(&self.root, row, ctx)
    }

    /// When the formula is a constant (no field, no TODAY), its value.
    pub fn constant(&self) -> Option<Value> {
        fn pure(n: &Node) -> bool {
            match n {
                Node::Lit(_) => true,
                Node::Field(_) => false,
                Node::Call(Func::Today, _) => false,
                Node::Call(_, a) | Node::Regex(_, _, a) | Node::Concat(a) => a.iter().all(pure),
                Node::Arith(_, a, b, _) | Node::Cmp(_, a, b) => pure(a) && pure(b),
                Node::Neg(a) => pure(a),
            }
        }
        if !pure(&self.root) {
            return None;
        }
        let ctx = Context { today: Date::constant(2000, 1, 1) };
        eval(&self.root, &[], &ctx).ok()
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("the number {}", number_text(*n)),
        Tok::Str(s) => format!("the text {s:?}"),
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Op(o) => format!("{o:?}"),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::End => "the end of the formula".into(),
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    fields: &'a Fields,
}

fn compatible(want: Type, got: Type) -> bool {
    want == got || want == Type::Any || got == Type::Any
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }
    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }
    fn next(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn compare(&mut self) -> Result<(Node, Type), FormulaError> {
        let (mut left, mut lt) = self.concat()?;
        while let Tok::Op(op @ ("=" | "<>" | "<" | "<=" | ">" | ">=")) = *self.peek() {
            let at = self.pos();
            self.next();
            let (right, rt) = self.concat()?;
            let ordered = !matches!(op, "=" | "<>");
            let scalar = |t: Type| t != Type::List;
            if !scalar(lt) || !scalar(rt) || !(compatible(lt, rt) || (lt == Type::Text && rt == Type::Text)) {
                return err(at, format!("{op:?} compares two values of one kind; here {lt} and {rt}"));
            }
            if ordered && (lt == Type::Bool || rt == Type::Bool) {
                return err(at, format!("{op:?} cannot order TRUE/FALSE"));
            }
            left = Node::Cmp(op, Box::new(left), Box::new(right));
            lt = Type::Bool;
        }
        Ok((left, lt))
    }

    fn concat(&mut self) -> Result<(Node, Type), FormulaError> {
        let first_at = self.pos();
        let (first, ft) = self.additive()?;
        if self.peek() != &Tok::Op("&") {
            return Ok((first, ft));
        }
        if ft == Type::List {
            return err(first_at, "\"&\" joins single values, not a list (use INDEX to pick one)");
        }
        let mut parts = vec![first];
        while self.peek() == &Tok::Op("&") {
            self.next();
            let at = self.pos();
            let (n, t) = self.additive()?;
            if t == Type::List {
                return err(at, "\"&\" joins single values, not a list (use INDEX to pick one)");
            }
            parts.push(n);
        }
        Ok((Node::Concat(parts), Type::Text))
    }

    fn additive(&mut self) -> Result<(Node, Type), FormulaError> {
        let (mut left, mut lt) = self.term()?;
        while let Tok::Op(op @ ("+" | "-")) = *self.peek() {
            let at = self.pos();
            self.next();
            let (right, rt) = self.term()?;
            // Dates move by days; the days between two dates are a number.
            let ty = match (lt, rt, op) {
                (Type::Number | Type::Any, Type::Number | Type::Any, _) => Type::Number,
                (Type::Date, Type::Number | Type::Any, _) => Type::Date,
                (Type::Number | Type::Any, Type::Date, "+") => Type::Date,
                (Type::Date, Type::Date, "-") => Type::Number,
                _ => {
                    return err(
                        at,
                        format!("{op:?} needs numbers (or a date and a number of days); here {lt} and {rt}"),
                    )
                }
            };
            left = Node::Arith(op.chars().next().expect("one char"), Box::new(left), Box::new(right), ty == Type::Date);
            lt = ty;
        }
        Ok((left, lt))
    }

    fn term(&mut self) -> Result<(Node, Type), FormulaError> {
        let (mut left, lt) = self.unary()?;
        let mut lt = lt;
        while let Tok::Op(op @ ("*" | "/")) = *self.peek() {
            let at = self.pos();
            self.next();
            let (right, rt) = self.unary()?;
            if !compatible(Type::Number, lt) || !compatible(Type::Number, rt) {
                return err(at, format!("{op:?} needs numbers; here {lt} and {rt}"));
            }
            left = Node::Arith(op.chars().next().expect("one char"), Box::new(left), Box::new(right), false);
            lt = Type::Number;
        }
        Ok((left, lt))
    }

    fn unary(&mut self) -> Result<(Node, Type), FormulaError> {
        if self.peek() == &Tok::Op("-") {
            let at = self.pos();
            self.next();
            let (n, t) = self.unary()?;
            if !compatible(Type::Number, t) {
                return err(at, format!("\"-\" needs a number; here {t}"));
            }
            return Ok((Node::Neg(Box::new(n)), Type::Number));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(Node, Type), FormulaError> {
        let (tok, at) = self.next();
        match tok {
            Tok::Num(n) => Ok((Node::Lit(Value::Number(n)), Type::Number)),
            Tok::Str(s) => Ok((Node::Lit(Value::Text(s)), Type::Text)),
            Tok::LParen => {
                let inner = self.compare()?;
                match self.next() {
                    (Tok::RParen, _) => Ok(inner),
                    (t, p) => err(
                        p,
                        format!("expected \")\" to close the \"(\" at column {}, found {}", at.column, describe(&t)),
                    ),
                }
            }
            Tok::Ident(name) if self.peek() == &Tok::LParen => self.call(&name, at),
            Tok::Ident(name) if name.eq_ignore_ascii_case("TRUE") => Ok((Node::Lit(Value::Bool(true)), Type::Bool)),
            Tok::Ident(name) if name.eq_ignore_ascii_case("FALSE") => Ok((Node::Lit(Value::Bool(false)), Type::Bool)),
            Tok::Ident(name) => match self.fields.index(&name) {
                Some((i, t)) => Ok((Node::Field(i), t)),
                None => {
                    let known = FUNCTIONS.iter().any(|f| f.0.eq_ignore_ascii_case(&name));
                    if known {
                        return err(at, format!("{name} is a function: call it with ( )"));
                    }
                    err(
                        at,
                        format!(
                            "unknown field {name:?}; the fields are: {}",
                            self.fields.names().collect::<Vec<_>>().join(", ")
                        ),
                    )
                }
            },
            t => err(at, format!("expected a value, a field or a function, found {}", describe(&t))),
        }
    }

    fn call(&mut self, name: &str, at: Pos) -> Result<(Node, Type), FormulaError> {
        let Some(&(fname, func, min, max, ret)) = FUNCTIONS.iter().find(|f| f.0.eq_ignore_ascii_case(name)) else {
            return err(
                at,
                format!(
                    "unknown function {name}; the functions are: {}",
                    function_names().collect::<Vec<_>>().join(", ")
                ),
            );
        };
        self.next(); // (
        let mut args: Vec<(Node, Type, Pos)> = vec![];
        if self.peek() != &Tok::RParen {
            loop {
                let p = self.pos();
                let (n, t) = self.compare()?;
                args.push((n, t, p));
                match self.next() {
                    (Tok::Comma, _) => continue,
                    (Tok::RParen, _) => break,
                    (t, p) => return err(p, format!("in {fname}( ): expected \",\" or \")\", found {}", describe(&t))),
                }
            }
        } else {
            self.next();
        }
        let n = args.len();
        if n < min || max.is_some_and(|m| n > m) {
            let wants = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            return err(at, format!("{fname} takes {wants} argument{}, here {n}", if wants == "1" { "" } else { "s" }));
        }
        let check = |i: usize, want: Type| -> Result<(), FormulaError> {
            let (_, got, p) = &args[i];
            // Text accepts any single value (shown as text), as spreadsheets do.
            let ok = compatible(want, *got) || (want == Type::Text && *got != Type::List);
            if ok {
                Ok(())
            } else {
                err(*p, format!("{fname}: argument {} must be {want}, here it is {got}", i + 1))
            }
        };
        use Func as F;
        let mut ty = ret;
        match func {
            F::Concat | F::Lower | F::Upper | F::Proper | F::Trim | F::Len | F::Normalize | F::Value => {
                (0..n).try_for_each(|i| check(i, Type::Text))?
            }
            F::Left | F::Right => {
                check(0, Type::Text)?;
                if n == 2 {
                    check(1, Type::Number)?;
                }
            }
            F::Mid => {
                check(0, Type::Text)?;
                check(1, Type::Number)?;
                check(2, Type::Number)?;
            }
            F::Substitute => {
                (0..3).try_for_each(|i| check(i, Type::Text))?;
                if n == 4 {
                    check(3, Type::Number)?;
                }
            }
            F::Replace => {
                check(0, Type::Text)?;
                check(1, Type::Number)?;
                check(2, Type::Number)?;
                check(3, Type::Text)?;
            }
            F::Find => {
                check(0, Type::Text)?;
                check(1, Type::Text)?;
                if n == 3 {
                    check(2, Type::Number)?;
                }
            }
            F::Split => {
                check(0, Type::Text)?;
                check(1, Type::Text)?;
            }
            F::Index => {
                check(0, Type::List)?;
                check(1, Type::Number)?;
            }
            F::If => {
                check(0, Type::Bool)?;
                ty = if n == 2 { args[1].1 } else { same_type([args[1].1, args[2].1].into_iter()) };
            }
            F::Ifs => {
                if !n.is_multiple_of(2) {
                    return err(at, format!("IFS takes pairs of condition and value, here {n} arguments"));
                }
                (0..n).step_by(2).try_for_each(|i| check(i, Type::Bool))?;
                ty = same_type((1..n).step_by(2).map(|i| args[i].1));
            }
            F::Switch => {
                let pairs = (n - 1) / 2;
                for k in 0..pairs {
                    let (_, t, p) = &args[1 + 2 * k];
                    if !compatible(args[0].1, *t) {
                        return err(
                            *p,
                            format!("SWITCH: case {} is {t}, the value switched on is {}", k + 1, args[0].1),
                        );
                    }
                }
                let mut results: Vec<Type> = (0..pairs).map(|k| args[2 + 2 * k].1).collect();
                if n.is_multiple_of(2) {
                    results.push(args[n - 1].1);
                }
                ty = same_type(results.into_iter());
            }
            F::And | F::Or | F::Not => (0..n).try_for_each(|i| check(i, Type::Bool))?,
            F::IsBlank => {}
            F::Coalesce | F::IfError => ty = same_type(args.iter().map(|a| a.1)),
            F::Text => check(1, Type::Text)?,
            F::Date => (0..3).try_for_each(|i| check(i, Type::Number))?,
            F::Today => {}
            F::Year | F::Month | F::Day => check(0, Type::Date)?,
            F::RegexMatch | F::RegexReplace => {
                check(0, Type::Text)?;
                if n == 3 {
                    check(2, Type::Text)?;
                }
                let (pat_node, _, p) = &args[1];
                let Node::Lit(Value::Text(pat)) = pat_node else {
                    return err(
                        *p,
                        format!("{fname}: the pattern must be written as text in the formula, so it is checked once"),
                    );
                };
                let re = Regex::new(pat)
                    .or_else(|e| err(*p, format!("{fname}: the pattern is not a valid regular expression: {e}")))?;
                let mut rest: Vec<Node> = args.into_iter().map(|a| a.0).collect();
                rest.remove(1);
                return Ok((Node::Regex(func, Arc::new(re), rest), ty));
            }
        }
        if func == F::Text {
            if let Node::Lit(Value::Text(fmt)) = &args[1].0 {
                if args[0].1 == Type::Date {
                    check_date_format(fmt).or_else(|m| err(args[1].2, format!("TEXT: {m}")))?;
                }
            }
        }
        Ok((Node::Call(func, args.into_iter().map(|a| a.0).collect()), ty))
    }
}

fn same_type(mut ts: impl Iterator<Item = Type>) -> Type {
    let Some(first) = ts.next() else { return Type::Any };
    if ts.all(|t| t == first) {
        first
    } else {
        Type::Any
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn text(n: &Node, row: &[Value], ctx: &Context) -> Result<String, String> {
    Ok(eval(n, row, ctx)?.to_text())
}

fn number(n: &Node, row: &[Value], ctx: &Context) -> Result<f64, String> {
    match eval(n, row, ctx)? {
        Value::Blank => Ok(0.0),
        Value::Number(x) => Ok(x),
        Value::Bool(b) => Ok(b as i64 as f64),
        Value::Text(s) if s.trim().is_empty() => Ok(0.0),
        Value::Text(s) => s.trim().parse().map_err(|_| format!("{s:?} is not a number")),
        other => Err(format!("{} is not a number", other.to_text())),
    }
}

fn boolean(n: &Node, row: &[Value], ctx: &Context) -> Result<bool, String> {
    match eval(n, row, ctx)? {
        Value::Bool(b) => Ok(b),
        Value::Blank => Ok(false),
        other => Err(format!("{} is not TRUE or FALSE", other.to_text())),
    }
}

/// A count argument: whole and not negative.
fn count(n: &Node, row: &[Value], ctx: &Context, what: &str) -> Result<usize, String> {
    let x = number(n, row, ctx)?;
    if x < 0.0 || !x.is_finite() {
        return Err(format!("{what} must not be negative, here {}", number_text(x)));
    }
    Ok(x as usize)
}

fn eval(n: &Node, row: &[Value], ctx: &Context) -> Result<Value, String> {
    use Func as F;
    Ok(match n {
        Node::Lit(v) => v.clone(),
        Node::Field(i) => row.get(*i).cloned().unwrap_or(Value::Blank),
        Node::Concat(parts) => {
            let mut s = String::new();
            for p in parts {
                s.push_str(&text(p, row, ctx)?);
            }
            Value::Text(s)
        }
        Node::Neg(a) => Value::Number(-number(a, row, ctx)?),
        Node::Arith(op, a, b, is_date) => {
            let (x, y) = (eval(a, row, ctx)?, eval(b, row, ctx)?);
            if *is_date && (matches!(x, Value::Blank) || matches!(y, Value::Blank)) {
                return Ok(Value::Blank);
            }
            match (&x, &y) {
                (Value::Date(d), Value::Date(e)) if *op == '-' => Value::Number((*d - *e).get_days() as f64),
                (Value::Date(d), _) | (_, Value::Date(d)) => {
                    if x.is_blank() || y.is_blank() {
                        return Ok(Value::Blank);
                    }
                    let days = if matches!(x, Value::Date(_)) { number(b, row, ctx)? } else { number(a, row, ctx)? };
                    let days = if *op == '-' { -days } else { days };
                    Value::Date(
                        d.checked_add(jiff::Span::new().days(days as i64))
                            .map_err(|e| format!("date out of range: {e}"))?,
                    )
                }
                _ if matches!(x, Value::Blank) && matches!(y, Value::Blank) => Value::Blank,
                _ => {
                    let (x, y) = (number(a, row, ctx)?, number(b, row, ctx)?);
                    Value::Number(match op {
                        '+' => x + y,
                        '-' => x - y,
                        '*' => x * y,
                        _ if y == 0.0 => return Err("division by zero".into()),
                        _ => x / y,
                    })
                }
            }
        }
        Node::Cmp(op, a, b) => {
            let (x, y) = (eval(a, row, ctx)?, eval(b, row, ctx)?);
            let ord = compare(&x, &y);
            Value::Bool(match *op {
                "=" => ord == std::cmp::Ordering::Equal,
                "<>" => ord != std::cmp::Ordering::Equal,
                "<" => ord == std::cmp::Ordering::Less,
                "<=" => ord != std::cmp::Ordering::Greater,
                ">" => ord == std::cmp::Ordering::Greater,
                _ => ord != std::cmp::Ordering::Less,
            })
        }
        Node::Regex(f, re, args) => {
            let subject = text(&args[0], row, ctx)?;
            match f {
                F::RegexMatch => Value::Bool(re.is_match(&subject)),
                _ => Value::Text(re.replace_all(&subject, text(&args[1], row, ctx)?.as_str()).into_owned()),
            }
        }
        Node::Call(f, a) => match f {
            F::Concat => {
                let mut s = String::new();
                for x in a {
                    s.push_str(&text(x, row, ctx)?);
                }
                Value::Text(s)
            }
            F::Lower => Value::Text(text(&a[0], row, ctx)?.to_lowercase()),
            F::Upper => Value::Text(text(&a[0], row, ctx)?.to_uppercase()),
            F::Proper => Value::Text(proper(&text(&a[0], row, ctx)?)),
            F::Trim => Value::Text(text(&a[0], row, ctx)?.split_whitespace().collect::<Vec<_>>().join(" ")),
            F::Left | F::Right => {
                let s = text(&a[0], row, ctx)?;
                let k = if a.len() == 2 { count(&a[1], row, ctx, "the number of characters")? } else { 1 };
                let chars: Vec<char> = s.chars().collect();
                let k = k.min(chars.len());
                Value::Text(if *f == F::Left {
                    chars[..k].iter().collect()
                } else {
                    chars[chars.len() - k..].iter().collect()
                })
            }
            F::Mid => {
                let s: Vec<char> = text(&a[0], row, ctx)?.chars().collect();
                let start = count(&a[1], row, ctx, "the start")?;
                if start == 0 {
                    return Err("MID: the start is 1 for the first character".into());
                }
                let k = count(&a[2], row, ctx, "the number of characters")?;
                Value::Text(s.iter().skip(start - 1).take(k).collect())
            }
            F::Len => Value::Number(text(&a[0], row, ctx)?.chars().count() as f64),
            F::Substitute => {
                let (s, old, new) = (text(&a[0], row, ctx)?, text(&a[1], row, ctx)?, text(&a[2], row, ctx)?);
                if old.is_empty() {
                    return Ok(Value::Text(s));
                }
                if a.len() == 4 {
                    let nth = count(&a[3], row, ctx, "the instance")?;
                    Value::Text(substitute_nth(&s, &old, &new, nth))
                } else {
                    Value::Text(s.replace(&old, &new))
                }
            }
            F::Replace => {
                let s: Vec<char> = text(&a[0], row, ctx)?.chars().collect();
                let start = count(&a[1], row, ctx, "the start")?.max(1) - 1;
                let k = count(&a[2], row, ctx, "the number of characters")?;
                let start = start.min(s.len());
                let end = (start + k).min(s.len());
                let mut out: String = s[..start].iter().collect();
                out.push_str(&text(&a[3], row, ctx)?);
                out.extend(&s[end..]);
                Value::Text(out)
            }
            F::Find => {
                let (needle, hay) = (text(&a[0], row, ctx)?, text(&a[1], row, ctx)?);
                let start = if a.len() == 3 { count(&a[2], row, ctx, "the start")?.max(1) } else { 1 };
                let skip: usize = hay.chars().take(start - 1).map(char::len_utf8).sum();
                match hay.get(skip..).and_then(|h| h.find(&needle)) {
                    Some(b) => Value::Number((hay[..skip + b].chars().count() + 1) as f64),
                    None => return Err(format!("FIND: {needle:?} is not in {hay:?}")),
                }
            }
            F::Split => {
                let (s, d) = (text(&a[0], row, ctx)?, text(&a[1], row, ctx)?);
                if d.is_empty() {
                    return Err("SPLIT: the delimiter is empty".into());
                }
                Value::List(s.split(d.as_str()).map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
            }
            F::Index => {
                let list = match eval(&a[0], row, ctx)? {
                    Value::List(l) => l,
                    Value::Blank => vec![],
                    other => vec![other.to_text()],
                };
                let k = count(&a[1], row, ctx, "the position")?;
                if k == 0 {
                    return Err("INDEX: positions start at 1".into());
                }
                list.get(k - 1).cloned().map(Value::Text).unwrap_or(Value::Blank)
            }
            F::If => {
                if boolean(&a[0], row, ctx)? {
                    eval(&a[1], row, ctx)?
                } else if a.len() == 3 {
                    eval(&a[2], row, ctx)?
                } else {
                    Value::Bool(false)
                }
            }
            F::Ifs => {
                for pair in a.chunks(2) {
                    if boolean(&pair[0], row, ctx)? {
                        return eval(&pair[1], row, ctx);
                    }
                }
                return Err("IFS: no condition held".into());
            }
            F::Switch => {
                let on = eval(&a[0], row, ctx)?;
                let cases = &a[1..];
                for pair in cases.chunks(2) {
                    if pair.len() == 2 && compare(&on, &eval(&pair[0], row, ctx)?) == std::cmp::Ordering::Equal {
                        return eval(&pair[1], row, ctx);
                    }
                }
                if cases.len() % 2 == 1 {
                    eval(&cases[cases.len() - 1], row, ctx)?
                } else {
                    return Err(format!("SWITCH: no case for {:?} and no default", on.to_text()));
                }
            }
            F::And => {
                for x in a {
                    if !boolean(x, row, ctx)? {
                        return Ok(Value::Bool(false));
                    }
                }
                Value::Bool(true)
            }
            F::Or => {
                for x in a {
                    if boolean(x, row, ctx)? {
                        return Ok(Value::Bool(true));
                    }
                }
                Value::Bool(false)
            }
            F::Not => Value::Bool(!boolean(&a[0], row, ctx)?),
            F::IsBlank => Value::Bool(eval(&a[0], row, ctx)?.is_blank()),
            F::Coalesce => {
                for x in a {
                    let v = eval(x, row, ctx)?;
                    if !v.is_blank() {
                        return Ok(v);
                    }
                }
                Value::Blank
            }
            F::IfError => eval(&a[0], row, ctx).or_else(|_| eval(&a[1], row, ctx))?,
            F::Text => {
                let v = eval(&a[0], row, ctx)?;
                let fmt = text(&a[1], row, ctx)?;
                Value::Text(match v {
                    Value::Date(d) => format_date(d, &fmt)?,
                    Value::Number(x) => format_number(x, &fmt),
                    other => other.to_text(),
                })
            }
            F::Date => {
                let (y, m, d) = (number(&a[0], row, ctx)?, number(&a[1], row, ctx)?, number(&a[2], row, ctx)?);
                Value::Date(Date::new(y as i16, m as i8, d as i8).map_err(|_| {
                    format!("DATE({}, {}, {}) is not a date", number_text(y), number_text(m), number_text(d))
                })?)
            }
            F::Today => Value::Date(ctx.today),
            F::Year | F::Month | F::Day => match eval(&a[0], row, ctx)? {
                Value::Date(d) => Value::Number(match f {
                    F::Year => d.year() as f64,
                    F::Month => d.month() as f64,
                    _ => d.day() as f64,
                }),
                Value::Blank => Value::Blank,
                other => return Err(format!("{} is not a date", other.to_text())),
            },
            F::Value => {
                let s = text(&a[0], row, ctx)?;
                Value::Number(s.trim().parse().map_err(|_| format!("VALUE: {s:?} is not a number"))?)
            }
            F::Normalize => Value::Text(normalize(&text(&a[0], row, ctx)?)),
            F::RegexMatch | F::RegexReplace => unreachable!("compiled into Node::Regex"),
        },
    })
}

/// Spreadsheet comparison: text without regard to case, numbers and dates by value, blank as
/// empty text or zero.
pub fn compare(x: &Value, y: &Value) -> std::cmp::Ordering {
    use Value as V;
    match (x, y) {
        (V::Number(a), V::Number(b)) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
        (V::Number(a), V::Blank) => a.partial_cmp(&0.0).unwrap_or(std::cmp::Ordering::Equal),
        (V::Blank, V::Number(b)) => 0.0f64.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
        (V::Date(a), V::Date(b)) => a.cmp(b),
        (V::Bool(a), V::Bool(b)) => a.cmp(b),
        _ => x.to_text().to_lowercase().cmp(&y.to_text().to_lowercase()),
    }
}

fn proper(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

fn substitute_nth(s: &str, old: &str, new: &str, nth: usize) -> String {
    match s.match_indices(old).nth(nth.saturating_sub(1)) {
        Some((i, _)) if nth > 0 => format!("{}{new}{}", &s[..i], &s[i + old.len()..]),
        _ => s.to_string(),
    }
}

/// Diacritics stripped (é to e) and letters without a decomposition spelled out (ø to o,
/// ß to ss), for user names that must be plain ASCII letters where possible.
pub fn normalize(s: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ø' => out.push('o'),
            'Ø' => out.push('O'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'Æ' => out.push_str("AE"),
            'œ' => out.push_str("oe"),
            'Œ' => out.push_str("OE"),
            'ł' => out.push('l'),
            'Ł' => out.push('L'),
            'đ' => out.push('d'),
            'Đ' => out.push('D'),
            'ð' => out.push('d'),
            'Ð' => out.push('D'),
            'þ' => out.push_str("th"),
            'Þ' => out.push_str("Th"),
            'ı' => out.push('i'),
            _ => out.push(c),
        }
    }
    out
}

const DATE_TOKENS: [&str; 8] = ["yyyy", "yy", "mmmm", "mmm", "mm", "m", "dd", "d"];

fn check_date_format(fmt: &str) -> Result<(), String> {
    if DATE_TOKENS.iter().any(|t| fmt.to_lowercase().contains(t)) {
        Ok(())
    } else {
        Err(format!("{fmt:?} has no date part (use yyyy, mm, dd, mmm...)"))
    }
}

fn format_date(d: Date, fmt: &str) -> Result<String, String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let lower = fmt.to_lowercase();
    let mut out = String::new();
    let mut i = 0;
    while i < lower.len() {
        let rest = &lower[i..];
        let Some(tok) = DATE_TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            let c = fmt[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        let month = MONTHS[(d.month() - 1) as usize];
        out.push_str(&match *tok {
            "yyyy" => format!("{:04}", d.year()),
            "yy" => format!("{:02}", d.year().rem_euclid(100)),
            "mmmm" => month.to_string(),
            "mmm" => month[..3].to_string(),
            "mm" => format!("{:02}", d.month()),
            "m" => d.month().to_string(),
            "dd" => format!("{:02}", d.day()),
            _ => d.day().to_string(),
        });
        i += tok.len();
    }
    Ok(out)
}

/// `0`, `000` (zero-padded), `0.00` (fixed decimals), `#,##0` (thousands).
fn format_number(x: f64, fmt: &str) -> String {
    let decimals = fmt.split_once('.').map(|(_, d)| d.chars().filter(|c| *c == '0').count()).unwrap_or(0);
    let int_zeros = fmt.split('.').next().unwrap_or("").chars().filter(|c| *c == '0').count();
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').map(|(a, b)| (a.to_string(), Some(b.to_string()))).unwrap_or((s.clone(), None));
    let mut int = format!("{int:0>int_zeros$}");
    if fmt.contains(',') {
        let digits: Vec<char> = int.chars().collect();
        int = digits
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = i > 0 && (digits.len() - i).is_multiple_of(3);
                sep.then_some(',').into_iter().chain(std::iter::once(*c))
            })
            .collect();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{int}.{f}"),
        None => format!("{sign}{int}"),
    }
}

/// The body of the formula fuzz target (`fuzz/`), here so its corpus replays as a normal
/// test: any text compiles or fails with a position inside it, and evaluation never panics.
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fields = Fields::new(vec![
        ("first_name".into(), Type::Text),
        ("last_name".into(), Type::Text),
        ("hire_date".into(), Type::Date),
        ("termination_date".into(), Type::Date),
    ]);
    match Formula::compile(text, &fields) {
        Ok(f) => {
            let row = [
                Value::Text("Zoë".into()),
                Value::Text("Ñúñez Øster".into()),
                Value::Date(Date::constant(2021, 3, 15)),
                Value::Blank,
            ];
            let _ = f.eval(&row, &Context { today: Date::constant(2026, 6, 1) });
            let _ = f.eval(&[], &Context { today: Date::constant(2026, 6, 1) });
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "no position: {e}");
            assert!(e.line <= text.split('\n').count(), "line {} past the end", e.line);
        }
    }
}
