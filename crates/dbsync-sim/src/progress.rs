//! Progress bars: one per phase, drawn on stderr by indicatif, or nothing at all (tests,
//! library callers, non-terminals).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where phase bars go.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    visible: bool,
}

impl Progress {
    /// Bars on stderr when `visible` (indicatif hides them itself when stderr is not a
    /// terminal), or none.
    pub fn new(visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            visible,
        }
    }

    /// A bar for a phase of `total` units (rows or steps).
    pub fn phase(&self, name: &str, total: u64) -> Phase {
        let bar = self.multi.add(ProgressBar::new(total.max(1)));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {human_pos:>11}/{human_len:<11} {elapsed:>4} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Phase { bar }
    }

    /// Prints a line above the bars (or to stderr when bars are hidden and `visible`).
    pub fn println(&self, line: &str) {
        if self.visible {
            if self.multi.is_hidden() {
                eprintln!("{line}");
            } else {
                let _ = self.multi.println(line);
            }
        }
    }
}

/// One phase's bar.
pub struct Phase {
    bar: ProgressBar,
}

impl Phase {
    /// Advances by `n` units.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets a short note (e.g. the epoch range being written).
    pub fn note(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Marks the phase done.
    pub fn finish(self) {
        self.bar.set_message("");
        self.bar.finish();
    }
}
