//! Ctrl-C on a headless run: the first pauses it at the next batch boundary (that batch's
//! outcomes and the checkpoint after it are committed); Enter then continues, a second Ctrl-C —
//! or SIGTERM at any time — stops it there. `cutover run --resume` continues a stopped run.

use crate::pipeline::progress::Control;
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Signals {
    task: JoinHandle<()>,
}

impl Signals {
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn terminate() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

pub fn watch(control: Arc<watch::Sender<Control>>) -> Signals {
    let task = tokio::spawn(async move {
        let mut interrupts = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_err() {
                        return;
                    }
                    interrupts += 1;
                }
                () = terminate() => interrupts = 2,
            }
            // Without a terminal (cron, nohup, CI) nobody can press Enter: a pause would last
            // forever, so the first Ctrl-C stops at the batch boundary, as SIGTERM does.
            let enter = std::io::stdin().is_terminal();
            if interrupts == 1 && !enter {
                interrupts = 2;
            }
            if interrupts == 1 {
                control.send_replace(Control::Pause);
                tell!(
                    "\nPausing after the current batch: its outcomes and the checkpoint after it are committed.\n\
                     {}Ctrl-C again stops the run there; `cutover run --resume` continues it later.",
                    if enter { "Enter continues; " } else { "" }
                );
                if enter {
                    let resume = control.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut line = String::new();
                        if std::io::stdin().read_line(&mut line).is_ok() && *resume.borrow() == Control::Pause {
                            resume.send_replace(Control::Go);
                            tell!("Continuing.");
                        }
                    });
                }
            } else {
                control.send_replace(Control::Cancel);
                tell!("\nStopping at the next checkpoint…");
                return;
            }
        }
    });
    Signals { task }
}
