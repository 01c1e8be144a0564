//! A sorting brain for `reef agent run --exec` compiled to a native program: the same job as
//! `examples/agents/sort.py` (stdin: the task as JSON; stdout: the sorted list; exit 0 = done)
//! without an interpreter's start-up. `market_bench --brain native` runs its agents with it,
//! to measure the marketplace without ~25 ms of Python start-up per task.
//!
//! ```text
//! cargo build --release -p marketplace-node --example sort_brain
//! echo '{"input": {"input": [3, 1, 2]}}' | target/release/examples/sort_brain   # [1,2,3]
//! ```

use std::io::Read;

fn main() -> std::process::ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        println!("{}", serde_json::json!({ "error": format!("reading the task: {e}") }));
        return std::process::ExitCode::from(2);
    }
    let task: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("the task is not JSON: {e}") }));
            return std::process::ExitCode::from(2);
        }
    };
    let numbers: Option<Vec<f64>> = task["input"]["input"]
        .as_array()
        .and_then(|a| a.iter().map(serde_json::Value::as_f64).collect());
    let Some(mut numbers) = numbers else {
        println!("{}", serde_json::json!({ "error": "expected a list of numbers" }));
        return std::process::ExitCode::from(2);
    };
    numbers.sort_by(f64::total_cmp);
    // Integers print as integers, as Python's json.dumps(sorted(...)) does.
    let out: Vec<serde_json::Value> = numbers
        .into_iter()
        .map(|n| {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Value::from(n)
            }
        })
        .collect();
    println!("{}", serde_json::Value::Array(out));
    std::process::ExitCode::SUCCESS
}
