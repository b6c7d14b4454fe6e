use datafusion_sql::parser::Statement;
use sqlparser::ast::{Expr, SetExpr, Statement as SqlStatement};

use super::{balanced, check_statement};
use crate::planner::sql::parse;

#[test]
fn balanced_keeps_the_order_and_halves_the_depth() {
    let terms: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    let tree = balanced(terms, |a, b| format!("({a} {b})"));
    assert_eq!(tree.as_deref(), Some("(((0 1) (2 3)) 4)"));
    assert_eq!(balanced(Vec::<String>::new(), |a, _| a), None);
}

/// The depth of the left and right spines of the `WHERE` of `statement`.
fn where_spines(statement: &Statement) -> (usize, usize) {
    let Statement::Statement(s) = statement else {
        panic!("not a query: {statement}")
    };
    let SqlStatement::Query(q) = s.as_ref() else {
        panic!("not a query: {s}")
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        panic!("not a select: {q}")
    };
    let spine = |left: bool| {
        let mut depth = 0;
        let mut e = select.selection.as_ref().expect("a WHERE");
        while let Expr::BinaryOp {
            left: l, right: r, ..
        } = e
        {
            depth += 1;
            e = if left { l } else { r };
        }
        depth
    };
    (spine(true), spine(false))
}

#[test]
fn long_and_chains_are_balanced_short_ones_kept() {
    let terms = |n: usize| {
        (0..n)
            .map(|i| format!("a = {i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let long = parse(&format!("SELECT 1 FROM t WHERE {}", terms(1000))).unwrap();
    // 1,000 terms: at most 10 levels of AND, then the `a = i` comparison.
    let (left, right) = where_spines(&long[0]);
    assert_eq!(left, 11);
    assert!(right <= 11, "{right}");
    assert!(long[0].to_string().contains(&terms(1000)));
    let short = parse(&format!("SELECT 1 FROM t WHERE {}", terms(4))).unwrap();
    assert_eq!(where_spines(&short[0]), (4, 2));
}

#[test]
fn deep_expressions_are_refused_with_both_numbers() {
    let plus = vec!["a"; 300].join(" + ");
    let err = parse(&format!("SELECT {plus} FROM t")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SQL error: expression nesting depth 300 exceeds the limit 256; \
         split the query or simplify it"
    );
    let mut ok = parse(&format!("SELECT {} FROM t", vec!["a"; 250].join(" + "))).unwrap();
    assert!(check_statement(&mut ok[0]).is_ok());
}
