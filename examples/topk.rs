//! A top-k query: the 10 largest orders by total price with their
//! customers' names. `ORDER BY ... LIMIT` runs as a TopK per partition
//! (no full sort) followed by a merge.
//!
//! ```sh
//! cargo run --release --example topk                          # embedded, SF 0.1
//! cargo run --release --example topk -- --distributed 3       # and on 3 worker processes
//! cargo run --release --example topk -- --connect tcp/HOST:7447
//! ```

mod common;

const SQL: &str = "
SELECT o_orderkey, c_name, o_orderdate, o_totalprice
FROM orders
JOIN customer ON c_custkey = o_custkey
ORDER BY o_totalprice DESC, o_orderkey
LIMIT 10";

fn main() -> std::process::ExitCode {
    common::main(
        "The 10 largest orders by total price, with their customers",
        SQL,
    )
}
