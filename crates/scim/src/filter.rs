//! Attribute paths and the filter language of RFC 7644 §3.4.2.2: lexer, parser, printer.
//! Evaluation against resources lives in `resource.rs`, which knows the schemas.

use crate::error::{Error, Result};
use std::fmt;

/// Filters nested deeper than this are refused unless the caller sets its own limit.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Comparisons (`a eq "x"`, `b pr`) one filter may hold: `or` and `and` chains nest one level
/// per term, so this also bounds the recursion of everything that walks a filter.
pub const DEFAULT_MAX_TERMS: usize = 200;
/// The longest filter text read, in bytes (checked before anything else is done with it).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;

/// Bounds on a filter, so that a hostile one is refused at once instead of exhausting the
/// stack or the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterLimits {
    pub max_depth: usize,
    pub max_terms: usize,
    pub max_bytes: usize,
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits { max_depth: DEFAULT_MAX_DEPTH, max_terms: DEFAULT_MAX_TERMS, max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// `[urn ":"] name ["." sub]`, e.g. `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn new(name: &str) -> Self {
        AttrPath { uri: None, name: name.into(), sub: None }
    }
    pub fn with_sub(name: &str, sub: &str) -> Self {
        AttrPath { uri: None, name: name.into(), sub: Some(sub.into()) }
    }

    /// Parses a path such as appears in `attributes=`, `sortBy=` or a filter.
    pub fn parse(text: &str) -> Result<AttrPath> {
        parse_attr_path(text.trim(), 0).map_err(|(pos, msg)| {
            Error::invalid_path(format!("invalid attribute path {text:?} at position {pos}: {msg}"))
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

fn valid_attr_name(s: &str) -> bool {
    if s == "$ref" {
        return true;
    }
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses one attribute path; `base` is the position of `text` in the whole input, for errors.
fn parse_attr_path(text: &str, base: usize) -> std::result::Result<AttrPath, (usize, String)> {
    let (uri, rest, rest_at) = if text.len() > 4 && text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        match text.rfind(':') {
            Some(i) => (Some(text[..i].to_string()), &text[i + 1..], base + i + 1),
            None => unreachable!("starts with urn:"),
        }
    } else {
        (None, text, base)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if !valid_attr_name(name) {
        return Err((rest_at, format!("{name:?} is not an attribute name")));
    }
    if let Some(s) = sub {
        if !valid_attr_name(s) {
            return Err((rest_at + name.len() + 1, format!("{s:?} is not a sub-attribute name")));
        }
    }
    Ok(AttrPath { uri, name: name.to_string(), sub: sub.map(str::to_string) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
    fn from_word(w: &str) -> Option<CompareOp> {
        CompareOp::ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(w))
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Str(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// A parsed filter. Inside a value path (`emails[...]`) the paths are relative to one value of
/// the multi-valued attribute. `emails[type eq "work"].value eq "x"`, which Entra ID sends, is
/// read as `emails[type eq "work" and value eq "x"]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, CompValue),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter> {
        Self::parse_with_depth(text, DEFAULT_MAX_DEPTH)
    }

    /// Parses with a bound on nesting (parentheses, `not`, value paths), so a hostile filter
    /// cannot exhaust the stack.
    pub fn parse_with_depth(text: &str, max_depth: usize) -> Result<Filter> {
        Self::parse_with_limits(text, FilterLimits { max_depth, ..FilterLimits::default() })
    }

    /// Parses within bounds on length, terms and nesting; a filter past one is an
    /// `invalidFilter` error that says which.
    pub fn parse_with_limits(text: &str, limits: FilterLimits) -> Result<Filter> {
        if text.len() > limits.max_bytes {
            // Not echoed: the text is what is too long.
            return Err(Error::invalid_filter(format!(
                "the filter is {} bytes long; at most {} are accepted",
                text.len(),
                limits.max_bytes
            )));
        }
        let tokens = lex(text).map_err(|(pos, msg)| filter_error(text, pos, &msg))?;
        let mut p = Parser {
            text,
            tokens,
            at: 0,
            depth: 0,
            max_depth: limits.max_depth,
            terms: 0,
            max_terms: limits.max_terms,
        };
        let f = p.or_expr(false).map_err(|(pos, msg)| filter_error(text, pos, &msg))?;
        if let Some(t) = p.peek() {
            return Err(filter_error(text, t.pos, &format!("unexpected {}", t.describe())));
        }
        Ok(f)
    }

    /// Calls `f` on every attribute path, with the enclosing value path's attribute if any.
    pub fn visit_paths<'a>(
        &'a self,
        parent: Option<&'a AttrPath>,
        f: &mut dyn FnMut(Option<&'a AttrPath>, &'a AttrPath),
    ) {
        match self {
            Filter::Compare(p, _, _) | Filter::Present(p) => f(parent, p),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.visit_paths(parent, f);
                b.visit_paths(parent, f);
            }
            Filter::Not(a) => a.visit_paths(parent, f),
            Filter::ValuePath(p, inner) => {
                f(parent, p);
                inner.visit_paths(Some(p), f);
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }
}

fn filter_error(text: &str, pos: usize, msg: &str) -> Error {
    Error::invalid_filter(format!("invalid filter {text:?} at position {pos}: {msg}"))
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parentheses only where precedence needs them: `and` binds tighter than `or`, and both
        // are left-associative, so a right operand of the same precedence is parenthesised.
        let child = |f: &mut fmt::Formatter<'_>, c: &Filter, min: u8| {
            if c.precedence() < min {
                write!(f, "({c})")
            } else {
                write!(f, "{c}")
            }
        };
        match self {
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::And(a, b) => {
                child(f, a, 2)?;
                f.write_str(" and ")?;
                child(f, b, 3)
            }
            Filter::Or(a, b) => {
                child(f, a, 1)?;
                f.write_str(" or ")?;
                child(f, b, 2)
            }
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Str(String),
    Word(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.tok {
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::OpenBracket => "'['".into(),
            Tok::CloseBracket => "']'".into(),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Word(w) => format!("{w:?}"),
        }
    }
}

fn lex(text: &str) -> std::result::Result<Vec<Token>, (usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' | b')' | b'[' | b']' => {
                let tok = match c {
                    b'(' => Tok::Open,
                    b')' => Tok::Close,
                    b'[' => Tok::OpenBracket,
                    _ => Tok::CloseBracket,
                };
                out.push(Token { tok, pos: i });
                i += 1;
            }
            b'"' => {
                // A JSON string: find its end honouring escapes, then let serde_json decode it.
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err((start, "string is not closed".into())),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                let s: String =
                    serde_json::from_str(&text[start..i]).map_err(|e| (start, format!("bad string literal: {e}")))?;
                out.push(Token { tok: Tok::Str(s), pos: start });
            }
            _ if is_word_byte(c) => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                out.push(Token { tok: Tok::Word(text[start..i].to_string()), pos: start });
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err((i, format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'$' | b':' | b'.' | b'+')
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    max_depth: usize,
    terms: usize,
    max_terms: usize,
}

type PResult<T> = std::result::Result<T, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn end_pos(&self) -> usize {
        self.text.len()
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(x), .. }) if x.eq_ignore_ascii_case(w))
    }
    fn expect(&mut self, want: Tok, what: &str) -> PResult<()> {
        match self.next() {
            Some(t) if t.tok == want => Ok(()),
            Some(t) => Err((t.pos, format!("expected {what}, found {}", t.describe()))),
            None => Err((self.end_pos(), format!("expected {what}, found the end"))),
        }
    }
    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err((pos, format!("nested deeper than {} levels", self.max_depth)));
        }
        Ok(())
    }

    fn or_expr(&mut self, in_brackets: bool) -> PResult<Filter> {
        let mut left = self.and_expr(in_brackets)?;
        while self.peek_word("or") {
            self.at += 1;
            let right = self.and_expr(in_brackets)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, in_brackets: bool) -> PResult<Filter> {
        let mut left = self.unary(in_brackets)?;
        while self.peek_word("and") {
            self.at += 1;
            let right = self.unary(in_brackets)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, in_brackets: bool) -> PResult<Filter> {
        let Some(t) = self.peek().cloned() else {
            return Err((self.end_pos(), "expected an expression, found the end".into()));
        };
        match &t.tok {
            Tok::Word(w)
                if w.eq_ignore_ascii_case("not")
                    && matches!(self.tokens.get(self.at + 1), Some(Token { tok: Tok::Open, .. })) =>
            {
                self.at += 2;
                self.enter(t.pos)?;
                let inner = self.or_expr(in_brackets)?;
                self.expect(Tok::Close, "')'")?;
                self.depth -= 1;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Open => {
                self.at += 1;
                self.enter(t.pos)?;
                let inner = self.or_expr(in_brackets)?;
                self.expect(Tok::Close, "')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(w) => {
                self.at += 1;
                let path = parse_attr_path(w, t.pos)?;
                if matches!(self.peek(), Some(Token { tok: Tok::OpenBracket, .. })) {
                    if in_brackets || path.sub.is_some() {
                        return Err((self.peek().map_or(0, |t| t.pos), "a value filter cannot go here".into()));
                    }
                    let open = self.next().map_or(0, |t| t.pos);
                    self.enter(open)?;
                    let inner = self.or_expr(true)?;
                    self.expect(Tok::CloseBracket, "']'")?;
                    self.depth -= 1;
                    // `emails[type eq "work"].value eq "x"`: a comparison on a sub-attribute of
                    // the selected values.
                    if let Some(Token { tok: Tok::Word(w2), pos }) = self.peek().cloned() {
                        if let Some(sub) = w2.strip_prefix('.') {
                            self.at += 1;
                            if !valid_attr_name(sub) {
                                return Err((pos + 1, format!("{sub:?} is not a sub-attribute name")));
                            }
                            let test = self.comparison(AttrPath::new(sub))?;
                            return Ok(Filter::ValuePath(path, Box::new(Filter::And(Box::new(inner), Box::new(test)))));
                        }
                    }
                    return Ok(Filter::ValuePath(path, Box::new(inner)));
                }
                self.comparison(path)
            }
            _ => Err((t.pos, format!("expected an attribute, found {}", t.describe()))),
        }
    }

    fn comparison(&mut self, path: AttrPath) -> PResult<Filter> {
        let op_tok = match self.next() {
            Some(t) => t,
            None => return Err((self.end_pos(), format!("expected an operator after {path}"))),
        };
        let Tok::Word(op_word) = &op_tok.tok else {
            return Err((op_tok.pos, format!("expected an operator after {path}, found {}", op_tok.describe())));
        };
        self.terms += 1;
        if self.terms > self.max_terms {
            return Err((op_tok.pos, format!("more than {} comparisons in one filter", self.max_terms)));
        }
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_word(op_word) else {
            return Err((op_tok.pos, format!("{op_word:?} is not an operator (eq ne co sw ew gt ge lt le pr)")));
        };
        let value = match self.next() {
            None => return Err((self.end_pos(), format!("expected a value after {op_word}"))),
            Some(Token { tok: Tok::Str(s), .. }) => CompValue::Str(s),
            Some(Token { tok: Tok::Word(w), pos }) => match w.as_str() {
                "true" => CompValue::Bool(true),
                "false" => CompValue::Bool(false),
                "null" => CompValue::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) => CompValue::Num(n),
                    Err(_) => return Err((pos, format!("{w:?} is not a value: quote strings, as in \"{w}\""))),
                },
            },
            Some(t) => return Err((t.pos, format!("expected a value, found {}", t.describe()))),
        };
        Ok(Filter::Compare(path, op, value))
    }
}

/// A PATCH target (RFC 7644 §3.5.2): `attrPath` or `valuePath [subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `emails[type eq "work"].value`.
    pub sub_after_filter: Option<String>,
}

impl PatchPath {
    pub fn parse(text: &str) -> Result<PatchPath> {
        let err =
            |pos: usize, msg: &str| Error::invalid_path(format!("invalid path {text:?} at position {pos}: {msg}"));
        let (head, rest, rest_at) = match text.find('[') {
            Some(i) => (&text[..i], Some(&text[i..]), i),
            None => (text, None, text.len()),
        };
        let attr = parse_attr_path(head.trim(), 0).map_err(|(p, m)| err(p, &m))?;
        let Some(rest) = rest else {
            return Ok(PatchPath { attr, filter: None, sub_after_filter: None });
        };
        if attr.sub.is_some() {
            return Err(err(rest_at, "a value filter must follow the multi-valued attribute itself"));
        }
        let close = rest.rfind(']').ok_or_else(|| err(text.len(), "']' is missing"))?;
        let inner = &rest[1..close];
        let filter = Filter::parse(inner).map_err(|e| err(rest_at + 1, &e.detail))?;
        let after = rest[close + 1..].trim();
        let sub_after_filter = if after.is_empty() {
            None
        } else {
            match after.strip_prefix('.') {
                Some(s) if valid_attr_name(s) => Some(s.to_string()),
                _ => return Err(err(rest_at + close + 1, &format!("unexpected {after:?} after ']'"))),
            }
        };
        Ok(PatchPath { attr, filter: Some(filter), sub_after_filter })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(flt) = &self.filter {
            write!(f, "[{flt}]")?;
        }
        if let Some(s) = &self.sub_after_filter {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(p: &str, op: CompareOp, v: CompValue) -> Filter {
        Filter::Compare(AttrPath::parse(p).unwrap(), op, v)
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let f = Filter::parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        let expect = Filter::Or(
            Box::new(cmp("a", CompareOp::Eq, CompValue::Str("1".into()))),
            Box::new(Filter::And(
                Box::new(cmp("b", CompareOp::Eq, CompValue::Str("2".into()))),
                Box::new(cmp("c", CompareOp::Eq, CompValue::Str("3".into()))),
            )),
        );
        assert_eq!(f, expect);
        assert_eq!(f.to_string(), r#"a eq "1" or b eq "2" and c eq "3""#);
    }

    #[test]
    fn parentheses_override_precedence_and_survive_printing() {
        let f = Filter::parse(r#"(a eq "1" or b eq "2") and not (c pr)"#).unwrap();
        assert!(matches!(f, Filter::And(..)));
        assert_eq!(f.to_string(), r#"(a eq "1" or b eq "2") and not (c pr)"#);
        assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
    }

    #[test]
    fn rfc_examples_parse() {
        for s in [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            r#"active eq false and meta.version ne null"#,
            r#"x eq 12.5e3"#,
        ] {
            let f = Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(Filter::parse(&f.to_string()).unwrap(), f, "{s}");
        }
    }

    #[test]
    fn entra_value_path_with_sub_attribute() {
        let f = Filter::parse(r#"emails[type eq "work"].value eq "a@b.c""#).unwrap();
        let Filter::ValuePath(p, inner) = &f else { panic!("{f:?}") };
        assert_eq!(p.name, "emails");
        assert!(matches!(**inner, Filter::And(..)));
    }

    #[test]
    fn urn_path_splits_at_last_colon() {
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").unwrap();
        assert_eq!(p.uri.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert_eq!(p.name, "manager");
        assert_eq!(p.sub.as_deref(), Some("value"));
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            (r#"userName eq"#, "position 11"),
            (r#"userName xx "a""#, "position 9"),
            (r#"userName eq "a" and"#, "position 19"),
            (r#"(userName eq "a""#, "position 16"),
            (r#"userName eq "a"#, "position 12"),
            (r#"userName eq john"#, "position 12"),
            (r#"userName eq "a" )"#, "position 16"),
            (r#"emails[type eq "w""#, "position 18"),
            (r#"1abc eq "a""#, "position 0"),
            (r#"userName eq "a" # "#, "position 16"),
        ];
        for (s, want) in cases {
            let e = Filter::parse(s).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter));
            assert!(e.detail.contains(want), "{s}: {}", e.detail);
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}a pr{}", "(".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&deep).unwrap_err().detail.contains("nested deeper"));
        let ok = format!("{}a pr{}", "(".repeat(10), ")".repeat(10));
        assert!(Filter::parse(&ok).is_ok());
        let nots = format!("{}a pr{}", "not (".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&nots).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = PatchPath::parse(r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!(p.attr.name, "members");
        assert!(p.filter.is_some() && p.sub_after_filter.is_none());
        let p = PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub_after_filter.as_deref(), Some("value"));
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let p = PatchPath::parse("name.givenName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
        assert!(PatchPath::parse("emails[type eq").is_err());
        assert!(PatchPath::parse("name.givenName[x pr]").is_err());
        assert!(PatchPath::parse(r#"emails[type eq "work"]xx"#).is_err());
    }
}
