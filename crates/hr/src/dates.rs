//! Dates as HR exports write them. Without a format fixed by the definition, each column's
//! format is found from its values: ISO dates, dotted day-first dates and dates with month
//! names read as they are; numeric dates with slashes or dashes need to know which part is
//! the month, and a column whose values never say (every part 12 or less) is refused rather
//! than guessed (`1/2/2020` is 1 February in Paris and 2 January in New York).

use jiff::civil::Date;

/// Which part of a numeric `a/b/yyyy` date is the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    MonthFirst,
    DayFirst,
}

impl Order {
    pub fn format(self, sep: char) -> String {
        match self {
            Order::MonthFirst => format!("%m{sep}%d{sep}%Y"),
            Order::DayFirst => format!("%d{sep}%m{sep}%Y"),
        }
    }
}

/// How one column's dates are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The definition's formats, tried in order.
    Fixed(Vec<String>),
    /// Found from the values; `None` when the column has no numeric `a/b/yyyy` dates or they
    /// never said their order (each such value is then refused).
    Detected(Option<Order>),
}

/// What the values of one column say about their order.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// (row, value) of the first value that can only be month-first, and only day-first.
    pub month_first: Option<(usize, String)>,
    pub day_first: Option<(usize, String)>,
    /// The first numeric value that fits both, and the separator seen.
    pub ambiguous: Option<(usize, String)>,
    pub sep: Option<char>,
    /// The first value in another shape (ISO, dotted, month names), for the report.
    pub other: Option<String>,
}

/// A numeric `a/b/yyyy` (or with dashes) date's parts.
fn numeric(s: &str) -> Option<(u32, u32, i16, char)> {
    let sep = if s.contains('/') {
        '/'
    } else if s.contains('-') {
        '-'
    } else {
        return None;
    };
    let mut parts = s.split(sep);
    let (a, b, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || a.is_empty() || b.is_empty() || a.len() > 2 || b.len() > 2 {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?, y.parse().ok()?, sep))
}

impl Evidence {
    pub fn see(&mut self, row: usize, raw: &str) {
        let s = raw.trim();
        if s.is_empty() {
            return;
        }
        match numeric(s) {
            Some((a, b, _, sep)) => {
                self.sep.get_or_insert(sep);
                if a > 12 && b <= 12 {
                    self.day_first.get_or_insert((row, s.to_string()));
                } else if b > 12 && a <= 12 {
                    self.month_first.get_or_insert((row, s.to_string()));
                } else if a <= 12 && b <= 12 && a != b {
                    self.ambiguous.get_or_insert((row, s.to_string()));
                }
            }
            None => {
                self.other.get_or_insert_with(|| s.to_string());
            }
        }
    }

    /// The column's rule, or why its dates cannot be read without a format.
    pub fn decide(&self, column: &str) -> Result<(Option<Order>, String), String> {
        match (&self.month_first, &self.day_first) {
            (Some((r1, v1)), Some((r2, v2))) => Err(format!(
                "column {column:?} has month-first dates (row {r1}: {v1}) and day-first dates (row {r2}: {v2}); \
                 fix the export or set date_formats in [hr.definition]"
            )),
            (Some((r, v)), None) => Ok((
                Some(Order::MonthFirst),
                format!("{} (month first, as row {r} shows: {v})", self.fmt(Order::MonthFirst)),
            )),
            (None, Some((r, v))) => {
                Ok((Some(Order::DayFirst), format!("{} (day first, as row {r} shows: {v})", self.fmt(Order::DayFirst))))
            }
            (None, None) => match &self.ambiguous {
                Some((r, v)) => Err(format!(
                    "column {column:?}: its dates fit both month-first and day-first (row {r}: {v} could be either) \
                     and the definition does not say which: set date_formats in [hr.definition], e.g. [\"%m/%d/%Y\"] \
                     or [\"%d/%m/%Y\"] (or --date-format)"
                )),
                None if self.sep.is_some() => {
                    // Only dates whose day and month are equal (1/1/2020): either reading is right.
                    Ok((
                        Some(Order::MonthFirst),
                        format!("{} (day and month equal throughout)", self.fmt(Order::MonthFirst)),
                    ))
                }
                None => Ok((None, describe_other(self.other.as_deref()))),
            },
        }
    }

    fn fmt(&self, o: Order) -> String {
        o.format(self.sep.unwrap_or('/'))
    }
}

fn describe_other(sample: Option<&str>) -> String {
    match sample {
        None => "no dates".into(),
        Some(s) if s.len() >= 10 && s.as_bytes()[4] == b'-' => "%Y-%m-%d (ISO 8601)".into(),
        Some(s) if s.contains('.') => "%d.%m.%Y".into(),
        Some(s) => format!("month names (as {s})"),
    }
}

/// The formats with month names an export may use, tried after the numeric shapes.
const NAMED: [&str; 6] = ["%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%B %d, %Y", "%d %B %Y", "%Y/%m/%d"];

/// Reads one date by the column's rule.
pub fn parse(s: &str, rule: &Rule) -> Result<Date, String> {
    let s = s.trim();
    match rule {
        Rule::Fixed(formats) => {
            for f in formats {
                if let Ok(d) = Date::strptime(f, s) {
                    return Ok(d);
                }
            }
            Err(format!("not a date in any of the formats {}", formats.join(", ")))
        }
        Rule::Detected(order) => {
            // ISO, with or without a time after it (some exports write 2020-01-05T00:00:00).
            if s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
                let day = s.get(..10).unwrap_or(s);
                if s.len() == 10 || matches!(s.as_bytes()[10], b'T' | b' ') {
                    return day.parse::<Date>().map_err(|e| format!("not a valid date: {e}"));
                }
            }
            if let Some((a, b, y, _)) = numeric(s) {
                let (m, d) = match order {
                    Some(Order::MonthFirst) => (a, b),
                    Some(Order::DayFirst) => (b, a),
                    None if a == b => (a, b),
                    None if a > 12 => (b, a),
                    None if b > 12 => (a, b),
                    None => {
                        return Err(format!(
                            "{s} could be month-first or day-first: set date_formats in [hr.definition] to say which"
                        ))
                    }
                };
                return Date::new(y, m as i8, d as i8).map_err(|_| format!("{s} is not a date on the calendar"));
            }
            if let Some((d, rest)) = s.split_once('.') {
                if let Some((m, y)) = rest.split_once('.') {
                    if let (Ok(d), Ok(m), Ok(y)) = (d.parse::<i8>(), m.parse::<i8>(), y.trim().parse::<i16>()) {
                        if y >= 1000 {
                            return Date::new(y, m, d).map_err(|_| format!("{s} is not a date on the calendar"));
                        }
                    }
                }
            }
            for f in NAMED {
                if let Ok(d) = Date::strptime(f, s) {
                    return Ok(d);
                }
            }
            Err("not a date: use 2020-01-31, 31.01.2020, 01/31/2020 or 31-Jan-2020 (or set date_formats in [hr.definition])"
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn shapes_read_without_a_format() {
        let r = Rule::Detected(None);
        assert_eq!(parse("2020-01-05", &r).unwrap(), d("2020-01-05"));
        assert_eq!(parse("2020-01-05T00:00:00", &r).unwrap(), d("2020-01-05"));
        assert_eq!(parse("05.01.2020", &r).unwrap(), d("2020-01-05"));
        assert_eq!(parse("05-Jan-2020", &r).unwrap(), d("2020-01-05"));
        assert_eq!(parse("Jan 05, 2020", &r).unwrap(), d("2020-01-05"));
        assert_eq!(parse("25/01/2020", &r).unwrap(), d("2020-01-25"));
        assert!(parse("1/2/2020", &r).unwrap_err().contains("month-first or day-first"));
        assert_eq!(parse("1/2/2020", &Rule::Detected(Some(Order::DayFirst))).unwrap(), d("2020-02-01"));
        assert_eq!(parse("1/2/2020", &Rule::Detected(Some(Order::MonthFirst))).unwrap(), d("2020-01-02"));
        assert!(parse("31/02/2020", &Rule::Detected(Some(Order::DayFirst))).is_err());
        assert!(parse("tomorrow", &r).is_err());
    }

    #[test]
    fn a_column_says_its_order_or_is_refused() {
        let mut e = Evidence::default();
        for (i, v) in ["1/2/2020", "3/4/2021"].iter().enumerate() {
            e.see(i + 1, v);
        }
        assert!(e.decide("Hire Date").unwrap_err().contains("row 1: 1/2/2020 could be either"));
        e.see(3, "12/25/2020");
        let (o, said) = e.decide("Hire Date").unwrap();
        assert_eq!(o, Some(Order::MonthFirst));
        assert!(said.contains("%m/%d/%Y") && said.contains("row 3"), "{said}");
        e.see(4, "25/12/2020");
        assert!(e.decide("Hire Date").unwrap_err().contains("month-first dates (row 3"));
        let mut iso = Evidence::default();
        iso.see(1, "2020-01-02");
        assert_eq!(iso.decide("x").unwrap(), (None, "%Y-%m-%d (ISO 8601)".to_string()));
    }
}
