//! Output without a database: the exact `/metrics` text for a hand-built store, the router
//! answered with `oneshot`, and the scheduler's timing under paused time.

mod exposition;
mod fixtures;
mod router;
mod scheduler;
