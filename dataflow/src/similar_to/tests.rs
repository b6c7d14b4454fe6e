use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Field};
use datafusion_common::config::ConfigOptions;
use datafusion_common::ScalarValue;
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs};

use super::pattern::{compile, to_regex};

fn matches(s: &str, p: &str) -> bool {
    compile(p, Some('\\')).unwrap().is_match(s)
}

#[test]
fn standard_patterns_match_as_in_postgresql() {
    let cases = [
        ("abc", "abc", true),
        ("abc", "a", false),
        ("abc", "%(b|d)%", true),
        ("abc", "(b|c)%", false),
        ("abc", "a_c", true),
        ("abc", "a_", false),
        // `.` is a character, not a wildcard.
        ("abc", "a.*", false),
        ("a..", "a.*", true),
        ("a", "a.*", true),
        ("aa", "a{2}", true),
        ("aaa", "a{1,2}", false),
        ("ab", "a+b?", true),
        ("", "%", true),
        ("", "_", false),
        ("a%c", r"a\%c", true),
        ("abc", r"a\%c", false),
        ("$a^", "$a^", true),
        ("a]", "[]a]+", true),
        ("b", "[^a]", true),
        ("a", "[^a]", false),
        ("x&&y", "[x&y]+", true),
        ("a1", "[[:alpha:]][[:digit:]]", true),
        ("line1\nline2", "line1%", true),
        ("back\\slash", "back\\\\slash", true),
    ];
    for (s, p, expected) in cases {
        assert_eq!(
            matches(s, p),
            expected,
            "{s:?} SIMILAR TO {p:?} ({})",
            to_regex(p, Some('\\')).unwrap()
        );
    }
}

#[test]
fn escape_character_can_be_another_or_none() {
    let hash = |s: &str, p: &str| compile(p, Some('#')).unwrap().is_match(s);
    assert!(hash("a_c", "a#_c"));
    assert!(!hash("abc", "a#_c"));
    // With `#` as the escape, a backslash is an ordinary character.
    assert!(hash(r"a\b", r"a\b"));
    let none = |s: &str, p: &str| compile(p, None).unwrap().is_match(s);
    assert!(none(r"a\b", r"a\_"));
    assert!(!none("a_", r"a\_"));
}

#[test]
fn bad_patterns_are_errors_naming_the_pattern() {
    for p in ["a\\", "[ab", "a{2"] {
        let err = compile(p, Some('\\')).unwrap_err().to_string();
        assert!(err.contains("invalid SIMILAR TO pattern"), "{p}: {err}");
    }
    let err = compile("a\\\"b\\\"c", Some('\\')).unwrap_err().to_string();
    assert!(err.contains("double quote"), "{err}");
}

fn invoke(args: Vec<ColumnarValue>, rows: usize) -> ColumnarValue {
    let f = super::function();
    let arg_fields = args
        .iter()
        .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
        .collect();
    f.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: rows,
        return_field: Arc::new(Field::new("r", DataType::Boolean, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })
    .unwrap()
}

fn utf8(v: &str) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.into())))
}

#[test]
fn constant_and_per_row_patterns_with_nulls() {
    let strings: ArrayRef = Arc::new(StringArray::from(vec![
        Some("abc"),
        None,
        Some("a.c"),
        Some("xbc"),
    ]));
    let out = invoke(
        vec![
            ColumnarValue::Array(Arc::clone(&strings)),
            utf8("a.c"),
            utf8("\\"),
        ],
        4,
    )
    .to_array(4)
    .unwrap();
    let out = out.as_boolean();
    assert_eq!(
        out.iter().collect::<Vec<_>>(),
        vec![Some(false), None, Some(true), Some(false)]
    );

    let patterns: ArrayRef = Arc::new(StringArray::from(vec![
        Some("a%"),
        Some("%"),
        None,
        Some("_bc"),
    ]));
    let out = invoke(
        vec![
            ColumnarValue::Array(strings),
            ColumnarValue::Array(patterns),
            utf8("\\"),
        ],
        4,
    )
    .to_array(4)
    .unwrap();
    assert_eq!(
        out.as_boolean().iter().collect::<Vec<_>>(),
        vec![Some(true), None, None, Some(true)]
    );

    let null = invoke(
        vec![
            utf8("a"),
            ColumnarValue::Scalar(ScalarValue::Utf8(None)),
            utf8("\\"),
        ],
        1,
    );
    match null {
        ColumnarValue::Scalar(s) => assert!(s.is_null()),
        other => panic!("expected a scalar, got {other:?}"),
    }
    assert_eq!(out.len(), 4);
}
