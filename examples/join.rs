//! A three-way join with an aggregation: 1995 revenue by customer market
//! segment, from customer ⋈ orders ⋈ lineitem (TPC-H tables generated
//! in-process), embedded and optionally on a cluster.
//!
//! ```sh
//! cargo run --release --example join                         # embedded, SF 0.1
//! cargo run --release --example join -- --distributed 2      # and on 2 worker processes
//! cargo run --release --example join -- --connect tcp/HOST:7447
//! ```

mod common;

const SQL: &str = "
SELECT c_mktsegment,
       count(DISTINCT o_orderkey)              AS orders,
       count(*)                                AS lineitems,
       sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM customer
JOIN orders   ON o_custkey = c_custkey
JOIN lineitem ON l_orderkey = o_orderkey
WHERE o_orderdate >= DATE '1995-01-01'
  AND o_orderdate <  DATE '1996-01-01'
GROUP BY c_mktsegment
ORDER BY revenue DESC, c_mktsegment";

fn main() -> std::process::ExitCode {
    common::main(
        "1995 revenue by market segment: customer ⋈ orders ⋈ lineitem, grouped",
        SQL,
    )
}
