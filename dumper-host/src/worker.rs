//! The job worker: leases `backup-jobs` messages and hands each to a job-runner guest, keeping the
//! lease alive while the guest's dump runs. The guest decides what the job means; this loop only
//! owns the message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dilux_azure::queue;
use tokio::sync::{Mutex, Semaphore};
use wasmtime::component::Component;

use crate::host::job_runner::exports::dilux::dumper::job_handler::JobOutcome;
use crate::host::job_runner::JobRunnerPre;
use crate::host::{GuestConfig, HostState};
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub queue: String,
    /// How long a lease lasts; renewed every third of it while the job runs.
    pub lease: Duration,
    pub concurrency: usize,
    pub idle_poll: Duration,
    /// How long a job the guest asked to retry stays invisible.
    pub retry_delay: Duration,
}

/// Reads nothing from the environment.
impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queue: dilux_domain::JOBS_QUEUE.into(),
            lease: Duration::from_secs(120),
            concurrency: 2,
            idle_poll: Duration::from_secs(2),
            retry_delay: Duration::from_secs(30),
        }
    }
}

impl WorkerOptions {
    /// The defaults, adjusted by `DILUX_WORKER_CONCURRENCY`, `DILUX_WORKER_IDLE_POLL_MS` (at least 10)
    /// and `DILUX_WORKER_LEASE_SECS` (at least 1); values out of range or unreadable are ignored.
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let mut o = WorkerOptions::default();
        let num = |name: &str, min: u64| env.get(name).and_then(|v| v.parse::<u64>().ok()).filter(|n| *n >= min);
        if let Some(c) = num("DILUX_WORKER_CONCURRENCY", 1) {
            o.concurrency = c as usize;
        }
        if let Some(ms) = num("DILUX_WORKER_IDLE_POLL_MS", 10) {
            o.idle_poll = Duration::from_millis(ms);
        }
        if let Some(s) = num("DILUX_WORKER_LEASE_SECS", 1) {
            o.lease = Duration::from_secs(s);
        }
        o
    }
}

pub struct Worker {
    storage: Storage,
    pre: JobRunnerPre<HostState>,
    guest: GuestConfig,
    options: WorkerOptions,
}

impl Worker {
    pub fn new(
        storage: Storage,
        linker: &wasmtime::component::Linker<HostState>,
        component: &Component,
        guest: GuestConfig,
        options: WorkerOptions,
    ) -> anyhow::Result<Self> {
        let pre = JobRunnerPre::new(linker.instantiate_pre(component)?)?;
        Ok(Worker { storage, pre, guest, options })
    }

    /// Runs forever: at most `concurrency` jobs at once.
    pub async fn run(self: Arc<Self>) {
        let create = queue::create_queue(&self.storage.account, Utc::now(), &self.options.queue);
        if let Err(e) = self.storage.send("create queue", create).await {
            tracing::warn!(error = %e, "could not create the jobs queue; will keep trying to read it");
        }
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("semaphore never closes");
            let req = queue::get_messages(
                &self.storage.account,
                Utc::now(),
                &self.options.queue,
                1,
                self.options.lease.as_secs() as u32,
            );
            let msgs = match self
                .storage
                .send("get messages", req)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| queue::parse_get_messages(r).map_err(|e| e.to_string()))
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the jobs queue; retrying");
                    drop(permit);
                    tokio::time::sleep(self.options.idle_poll * 2).await;
                    continue;
                }
            };
            let Some(msg) = msgs.into_iter().next() else {
                drop(permit);
                tokio::time::sleep(self.options.idle_poll).await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.process(msg).await;
                drop(permit);
            });
        }
    }

    async fn process(&self, msg: queue::Message) {
        let receipt = Arc::new(Mutex::new(msg.pop_receipt.clone()));
        // Keep the lease while the guest works: a long dump must not reappear for another worker. The
        // keeper ends only when the lease is lost (the queue no longer knows this receipt, or no renewal
        // got through before the lease ran out): another worker may run the job by then, so this one stops.
        let keeper = {
            let (storage, q, id, receipt, lease) =
                (self.storage.clone(), self.options.queue.clone(), msg.id.clone(), receipt.clone(), self.options.lease);
            let hold_back = crate::test_hooks::hold_lease();
            async move {
                let (mut renewed, mut held) = (tokio::time::Instant::now(), 0);
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if hold_back {
                        // Fault tests: renewals never reach the queue, and the loss is noticed at the first
                        // tick after the lease ran out (when another worker may hold the job already).
                        held += 1;
                        if held > 3 {
                            return "renewals were held back (DILUX_TEST_HOLD_LEASE)".to_string();
                        }
                        continue;
                    }
                    let mut r = receipt.lock().await;
                    let req =
                        queue::update_visibility(&storage.account, Utc::now(), &q, &id, &r, lease.as_secs() as u32);
                    match storage.send("update message", req).await.and_then(queue::parse_update_visibility) {
                        Ok(new) => {
                            *r = new;
                            renewed = tokio::time::Instant::now();
                        }
                        Err(e) if e.status() == Some(404) || e.status() == Some(400) => {
                            return format!("the queue no longer knows this lease ({e})");
                        }
                        Err(e) if renewed.elapsed() >= lease => return format!("no renewal got through: {e}"),
                        Err(e) => tracing::warn!(message = %id, error = %e, "could not extend the job's lease"),
                    }
                }
            }
        };
        let outcome = tokio::select! {
            outcome = self.run_guest(&msg) => outcome,
            why = keeper => {
                // Dropping the guest kills its dump tool and abandons its upload: uncommitted blocks are never
                // part of a backup, and its own block ids keep them out of the other worker's commit.
                let id = &msg.id;
                tracing::warn!(message = %id, reason = %why, "lost the lease; stopped (another worker runs the job)");
                return;
            }
        };
        let r = receipt.lock().await.clone();
        let settled = match &outcome {
            Ok(JobOutcome::Done) => "done",
            Ok(JobOutcome::RetryLater(_)) => "retry_later",
            Err(_) => "guest_failed",
        };
        crate::metrics::global().job_settled(&self.options.queue, settled);
        let (req, op) = match &outcome {
            Ok(JobOutcome::Done) => (
                queue::delete_message(&self.storage.account, Utc::now(), &self.options.queue, &msg.id, &r),
                "delete message",
            ),
            Ok(JobOutcome::RetryLater(why)) => {
                tracing::warn!(message = %msg.id, reason = %why, "job will be retried");
                (
                    queue::update_visibility(
                        &self.storage.account,
                        Utc::now(),
                        &self.options.queue,
                        &msg.id,
                        &r,
                        self.options.retry_delay.as_secs() as u32,
                    ),
                    "update message",
                )
            }
            Err(e) => {
                // A trapped guest is a bug, not a job outcome: the message reappears after the lease.
                tracing::error!(message = %msg.id, error = ?e, "job-runner guest failed");
                return;
            }
        };
        if let Err(e) = self.storage.send(op, req).await {
            tracing::warn!(message = %msg.id, error = %e, "could not settle the job message");
        }
    }

    async fn run_guest(&self, msg: &queue::Message) -> anyhow::Result<JobOutcome> {
        let mut store = crate::host::store(self.pre.engine(), HostState::new(&self.guest)?);
        let runner = self.pre.instantiate_async(&mut store).await?;
        Ok(runner.dilux_dumper_job_handler().call_handle_job(&mut store, &msg.text, msg.dequeue_count).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_options_read_only_the_given_environment() {
        let env: HashMap<String, String> =
            [("DILUX_WORKER_CONCURRENCY", "4"), ("DILUX_WORKER_IDLE_POLL_MS", "50"), ("DILUX_WORKER_LEASE_SECS", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let o = WorkerOptions::from_env(&env);
        assert_eq!((o.concurrency, o.idle_poll, o.lease), (4, Duration::from_millis(50), Duration::from_secs(2)));
        let bad: HashMap<String, String> =
            [("DILUX_WORKER_IDLE_POLL_MS", "5"), ("DILUX_WORKER_LEASE_SECS", "0"), ("DILUX_WORKER_CONCURRENCY", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let (o, d) = (WorkerOptions::from_env(&bad), WorkerOptions::default());
        assert_eq!((o.concurrency, o.idle_poll, o.lease), (d.concurrency, d.idle_poll, d.lease));
    }
}
