//! Shows a run's progress on the terminal: a bar on a TTY, plain lines otherwise.

use crate::pipeline::{Progress, RunState};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Display {
    task: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Display {
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub fn spawn(mut rx: watch::Receiver<Progress>, tty: bool) -> Display {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let bar = tty.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<30} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let started = std::time::Instant::now();
        let mut last_line = std::time::Instant::now();
        let mut last_object = None;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            let p = rx.borrow_and_update().clone();
            if let Some(bar) = &bar {
                let (done, total) = (p.processed(), p.total());
                bar.set_length(total.max(1));
                bar.set_position(done);
                bar.set_prefix(p.phase.clone());
                bar.set_message(rate_line(done, total, started.elapsed()));
            } else {
                // Plain lines for logs and pipes: one when an object finishes, one every 5 s.
                if p.current != last_object {
                    if let Some(o) = last_object.and_then(|i| p.objects.get(i)) {
                        tell!("{}", line(o));
                    }
                    last_object = p.current;
                    last_line = std::time::Instant::now();
                } else if last_line.elapsed() > Duration::from_secs(5)
                    && let Some(o) = p.current.and_then(|i| p.objects.get(i))
                {
                    tell!("{}", line(o));
                    last_line = std::time::Instant::now();
                }
                if matches!(p.state, RunState::Completed | RunState::Halted(_) | RunState::Failed(_))
                    && let Some(o) = p.current.and_then(|i| p.objects.get(i))
                {
                    tell!("{}", line(o));
                }
            }
            if matches!(p.state, RunState::Completed | RunState::Halted(_) | RunState::Failed(_)) {
                break;
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    });
    Display { task, stop }
}

fn line(o: &crate::pipeline::progress::ObjectProgress) -> String {
    match o.total.filter(|&t| t > 0) {
        Some(total) => format!("{}: {} of {total} records processed", o.name, o.counts.extracted),
        // A delta or a sample knows its total only at the end.
        None => format!("{}: {} records processed", o.name, o.counts.extracted),
    }
}

/// "84,000 / 400,000 · 30,123 records/s · about 11 s left"
fn rate_line(done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.5 { done as f64 / secs } else { 0.0 };
    let mut line = if total > 0 { format!("{} / {}", thousands(done), thousands(total)) } else { thousands(done) };
    if rate > 0.0 {
        line.push_str(&format!(" · {} records/s", thousands(rate as u64)));
        if total > done {
            line.push_str(&format!(" · about {} s left", ((total - done) as f64 / rate).ceil() as u64));
        }
    }
    line
}

use crate::text::thousands;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_line_reads_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(
            rate_line(84_000, 400_000, Duration::from_secs(2)),
            "84,000 / 400,000 · 42,000 records/s · about 8 s left"
        );
        assert_eq!(rate_line(0, 10, Duration::ZERO), "0 / 10");
    }
}
