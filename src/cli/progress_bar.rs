//! The progress line on stderr for queries that take a while.
//!
//! Shown after a second (`FFQ_PROGRESS_AFTER_MS` changes the delay) when
//! stderr is a terminal (`FFQ_PROGRESS=1` forces it on, `0` off), redrawn
//! ten times a second, and erased before the first result rows print.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffq::progress::Progress;

pub struct ProgressBar {
    task: tokio::task::JoinHandle<()>,
    shown: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

fn enabled() -> bool {
    match std::env::var("FFQ_PROGRESS").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

impl ProgressBar {
    /// Starts the line for a query, or `None` when progress is off.
    pub fn start(progress: Progress) -> Option<ProgressBar> {
        if !enabled() {
            return None;
        }
        let delay = std::env::var("FFQ_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1));
        let shown = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let (flag, stop) = (Arc::clone(&shown), Arc::clone(&stopped));
        let start = Instant::now();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            loop {
                let p = progress.snapshot();
                let line = format!(
                    "\r\x1b[K{} rows scanned · stages {}/{} done · {:.1}s",
                    group_digits(p.rows_scanned),
                    p.stages_done,
                    p.stages_total,
                    start.elapsed().as_secs_f64()
                );
                {
                    // Under the lock, so that a line never follows the erase.
                    let mut err = std::io::stderr().lock();
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                    flag.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Some(ProgressBar {
            task,
            shown,
            stopped,
        })
    }
}

impl Drop for ProgressBar {
    /// Stops redrawing and erases the line.
    fn drop(&mut self) {
        self.task.abort();
        let mut err = std::io::stderr().lock();
        self.stopped.store(true, Ordering::Relaxed);
        if self.shown.load(Ordering::Relaxed) {
            let _ = err.write_all(b"\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// `1234567` as `1,234,567`.
fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_are_grouped() {
        assert_eq!(super::group_digits(0), "0");
        assert_eq!(super::group_digits(999), "999");
        assert_eq!(super::group_digits(1000), "1,000");
        assert_eq!(super::group_digits(6001215), "6,001,215");
    }
}
