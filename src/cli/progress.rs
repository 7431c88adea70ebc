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
                ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let mut last_line = std::time::Instant::now();
        let mut last_object = None;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            let p = rx.borrow_and_update().clone();
            if let Some(bar) = &bar {
                bar.set_length(p.total().max(1));
                bar.set_position(p.processed());
                bar.set_message(p.phase.clone());
            } else {
                // Plain lines for logs and pipes: one when an object finishes, one every 5 s.
                if p.current != last_object {
                    if let Some(o) = last_object.and_then(|i| p.objects.get(i)) {
                        eprintln!("{}", line(o));
                    }
                    last_object = p.current;
                    last_line = std::time::Instant::now();
                } else if last_line.elapsed() > Duration::from_secs(5)
                    && let Some(o) = p.current.and_then(|i| p.objects.get(i))
                {
                    eprintln!("{}", line(o));
                    last_line = std::time::Instant::now();
                }
                if matches!(p.state, RunState::Completed | RunState::Halted(_) | RunState::Failed(_))
                    && let Some(o) = p.current.and_then(|i| p.objects.get(i))
                {
                    eprintln!("{}", line(o));
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
    format!("{}: {} of {} records processed", o.name, o.counts.extracted, o.total.unwrap_or(0))
}
