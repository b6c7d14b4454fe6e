//! SQL `SIMILAR TO` patterns as anchored regular expressions.
//!
//! The standard's pattern language, as PostgreSQL reads it: `%` is any
//! string, `_` any character, `|`, `*`, `+`, `?`, `{m,n}`, `(...)` and
//! bracket expressions `[...]` are regular-expression operators, and every
//! other character is itself (a `.` is a dot, not any character). The
//! escape character (backslash unless `ESCAPE` names another; none when
//! empty) makes the next character literal. The whole string must match.

use regex::Regex;

use datafusion_common::{exec_datafusion_err, not_impl_err, DataFusionError, Result};

/// The regex source for `pattern` (see the module doc).
pub fn to_regex(pattern: &str, escape: Option<char>) -> Result<String> {
    let bad = |why: &str| exec_datafusion_err!("invalid SIMILAR TO pattern {pattern:?}: {why}");
    // `(?s)`: `%` and `_` also match newlines.
    let mut out = String::from(r"(?s)\A(?:");
    let mut chars = pattern.chars().peekable();
    let mut in_bracket = false;
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some('"') => {
                    return not_impl_err!(
                        "the escaped double quote (SUBSTRING ... SIMILAR) in a SIMILAR TO pattern"
                    )
                }
                Some(literal) => push_literal(&mut out, literal),
                None => return Err(bad("it ends with the escape character")),
            }
            continue;
        }
        if in_bracket {
            match c {
                ']' => {
                    in_bracket = false;
                    out.push(']');
                }
                // A POSIX class `[:alpha:]` passes whole.
                '[' if chars.peek() == Some(&':') => {
                    out.push('[');
                    let mut class = String::new();
                    for d in chars.by_ref() {
                        class.push(d);
                        if class.len() > 2 && class.ends_with(":]") {
                            break;
                        }
                    }
                    out.push_str(&class);
                }
                // The regex crate reads these as nested classes and set
                // operations inside brackets; in SQL they are characters.
                '[' | '&' | '~' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '(' => out.push_str("(?:"),
            '|' | '*' | '+' | '?' | ')' | '{' | '}' => out.push(c),
            '[' => {
                in_bracket = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                // A `]` first in the brackets is a member, not the end.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str(r"\]");
                }
            }
            _ => push_literal(&mut out, c),
        }
    }
    if in_bracket {
        return Err(bad("a bracket expression [ is not closed"));
    }
    out.push_str(r")\z");
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// The compiled regex for `pattern`.
pub fn compile(pattern: &str, escape: Option<char>) -> Result<Regex> {
    let source = to_regex(pattern, escape)?;
    Regex::new(&source).map_err(|e| {
        DataFusionError::Execution(format!("invalid SIMILAR TO pattern {pattern:?}: {e}"))
    })
}
