//! The one retry policy for Azure Storage requests, sans-io: it says how long to pause and whether to
//! try again; each transport sleeps and sends in its own way (tokio in the dumper-host, Spin's
//! outbound HTTP in the components).
//!
//! ```
//! # use dilux_azure::retry::{Outcome, RetryPolicy};
//! # use dilux_azure::Response;
//! # fn send_once() -> Outcome { Outcome::Answered(Response { status: 200, ..Default::default() }) }
//! # fn sleep(_: std::time::Duration) {}
//! fn send() -> Result<Response, dilux_azure::AzureError> {
//!     let mut retry = RetryPolicy::DEFAULT.start("get entity");
//!     while let Some(pause) = retry.next_attempt() {
//!         sleep(pause);
//!         if let Some(response) = retry.record(send_once()) {
//!             return Ok(response);
//!         }
//!     }
//!     Err(retry.give_up())
//! }
//! # assert_eq!(send().unwrap().status, 200);
//! ```

use std::time::Duration;

use crate::{AzureError, Response};

/// How often and how patiently to try: exponential backoff from `base_delay`, capped at `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause before the second attempt; it doubles for each one after.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 5 attempts, pausing 200, 400, 800, 1600 ms: enough to ride out Azurite's connection resets under
    /// load and Azure's throttling, short enough for an interactive request.
    pub const DEFAULT: RetryPolicy =
        RetryPolicy { attempts: 5, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(2) };

    /// For a backup's or a restore's own data (blocks, the commit, ranges): 40 attempts, backing off to 15 s
    /// between them, about 9 minutes in all. A storage outage of minutes must not fail a dump of hours,
    /// and every one of these requests is safe to repeat (the commit's `If-None-Match: *` included).
    pub const PATIENT: RetryPolicy =
        RetryPolicy { attempts: 40, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(15) };

    /// The longest a request is retried under this policy, pauses only.
    pub fn patience(&self) -> Duration {
        (1..=self.attempts).map(|a| self.delay_before(a)).sum()
    }

    /// The pause before attempt `attempt` (1-based): none before the first.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Whether an attempt that ended this way is worth another.
    pub fn is_retryable(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Answered(r) => is_retryable_status(r.status),
            Outcome::Unsent(_) | Outcome::Transport(_) => true,
            Outcome::Refused(_) => false,
        }
    }

    /// Starts one request's way through this policy: a request that may be applied twice (reads, puts,
    /// deletes, conditional writes, inserts whose conflict is checked, see [`Retry::may_have_applied`]).
    pub fn start(&self, operation: &'static str) -> Retry {
        Retry { policy: *self, operation, attempt: 0, last: String::new(), stop: false, once: false, unsure: false }
    }

    /// Starts a request that must not be applied twice (Put Message: a second copy is a second job). It
    /// is tried again only when the service cannot have applied it: no connection was made, or it
    /// answered that it did not (throttled). After a lost answer it gives up with
    /// [`AzureError::Unconfirmed`], and the caller undoes what the request would have completed.
    pub fn start_once(&self, operation: &'static str) -> Retry {
        Retry { once: true, ..self.start(operation) }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// Whether an answer with this status is transient (Azure's and Azurite's timeouts, throttling and
/// server errors). 501 and 505 are not: they will not change.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether the service may have applied a request that got this answer: it timed out or failed
/// inside (408, 500, 504); throttling (429, 503) is refused before anything is done.
fn may_have_applied(status: u16) -> bool {
    matches!(status, 408 | 500 | 504)
}

/// How one attempt ended, as the transport saw it.
#[derive(Debug)]
pub enum Outcome {
    /// The service answered, with any status.
    Answered(Response),
    /// No connection was made (refused, name resolution, connect timeout, TLS handshake): the service
    /// never saw the request.
    Unsent(String),
    /// The request was sent, or may have been, but no whole answer came back (reset, read timeout).
    Transport(String),
    /// Trying again cannot help: the request cannot be sent (e.g. the platform denies the host).
    Refused(String),
}

/// One request under a [`RetryPolicy`]: which attempt it is on and why the last one failed.
#[derive(Debug)]
pub struct Retry {
    policy: RetryPolicy,
    operation: &'static str,
    attempt: u32,
    last: String,
    stop: bool,
    /// Not to be applied twice ([`RetryPolicy::start_once`]).
    once: bool,
    /// An earlier attempt may have been applied with its answer lost.
    unsure: bool,
}

impl Retry {
    /// Begins the next attempt: the pause to take before sending, or `None` when none is left.
    pub fn next_attempt(&mut self) -> Option<Duration> {
        if self.stop || self.attempt >= self.policy.attempts.max(1) {
            return None;
        }
        self.attempt += 1;
        Some(self.policy.delay_before(self.attempt))
    }

    /// Records how the current attempt ended. `Some` is the answer for the caller's parser (which
    /// turns non-transient errors such as 404 into an [`AzureError`]); `None` means try again.
    pub fn record(&mut self, outcome: Outcome) -> Option<Response> {
        let unsure = match &outcome {
            Outcome::Answered(r) => may_have_applied(r.status),
            Outcome::Transport(_) => true,
            Outcome::Unsent(_) | Outcome::Refused(_) => false,
        };
        self.stop = !self.policy.is_retryable(&outcome) || (self.once && unsure);
        self.unsure |= unsure;
        match outcome {
            Outcome::Answered(r) if self.stop => return Some(r),
            Outcome::Answered(r) => self.last = describe(&r),
            Outcome::Unsent(detail) | Outcome::Transport(detail) | Outcome::Refused(detail) => self.last = detail,
        }
        None
    }

    /// Whether an earlier attempt may have been applied although its answer was lost: an insert then
    /// refused as a conflict (409), or a conditional write refused as changed (412), may be refused
    /// because of itself. Such a caller reads the record and takes it as written if it holds exactly
    /// what was sent.
    pub fn may_have_applied(&self) -> bool {
        self.unsure
    }

    /// The attempt under way (1-based), 0 before the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Why the last attempt failed.
    pub fn last_error(&self) -> &str {
        &self.last
    }

    /// The error once no attempt is left.
    pub fn give_up(self) -> AzureError {
        if self.once && self.unsure {
            return AzureError::Unconfirmed { operation: self.operation, detail: self.last };
        }
        AzureError::Unreachable { operation: self.operation, attempts: self.attempt, detail: self.last }
    }
}

/// A transient answer in words: its status and the service's code and message.
fn describe(r: &Response) -> String {
    let AzureError::Service { status, code, message, .. } = AzureError::from_response("", r) else {
        return format!("HTTP {}", r.status);
    };
    let mut s = format!("HTTP {status}");
    if !code.is_empty() {
        s = format!("{s} {code}");
    }
    if !message.is_empty() {
        s = format!("{s}: {message}");
    }
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_patient_policy_rides_out_minutes() {
        let p = RetryPolicy::PATIENT;
        assert!(p.patience() > Duration::from_secs(8 * 60) && p.patience() < Duration::from_secs(10 * 60));
        assert_eq!(p.delay_before(2), Duration::from_millis(500));
        assert_eq!(p.delay_before(40), Duration::from_secs(15));
        assert!(RetryPolicy::DEFAULT.patience() < Duration::from_secs(5), "interactive requests stay quick");
    }

    use super::*;

    fn answer(status: u16) -> Outcome {
        Outcome::Answered(Response { status, ..Default::default() })
    }

    #[test]
    fn delays_double_from_the_base_and_stop_at_the_cap() {
        let p = RetryPolicy::DEFAULT;
        let ms: Vec<u128> = (1..=5).map(|n| p.delay_before(n).as_millis()).collect();
        assert_eq!(ms, vec![0, 200, 400, 800, 1600]);
        assert_eq!(p.delay_before(6), Duration::from_secs(2), "capped");
        assert_eq!(p.delay_before(40), Duration::from_secs(2), "no overflow");
        assert_eq!(p.delay_before(0), Duration::ZERO);
        assert_eq!(RetryPolicy::default(), p);
    }

    #[test]
    fn transient_statuses_and_transport_errors_are_retried() {
        let p = RetryPolicy::DEFAULT;
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(p.is_retryable(&answer(s)), "{s}");
        }
        for s in [200, 201, 204, 304, 400, 403, 404, 409, 412, 501, 505] {
            assert!(!p.is_retryable(&answer(s)), "{s}");
        }
        assert!(p.is_retryable(&Outcome::Transport("connection reset".into())));
        assert!(!p.is_retryable(&Outcome::Refused("denied".into())));
    }

    #[test]
    fn gives_up_after_the_last_attempt_naming_the_last_failure() {
        let mut r = RetryPolicy::DEFAULT.start("get entity");
        let mut pauses = Vec::new();
        while let Some(pause) = r.next_attempt() {
            pauses.push(pause.as_millis());
            let outcome = if r.attempt() % 2 == 1 {
                Outcome::Transport("connection reset".into())
            } else {
                let body = br#"{"odata.error":{"code":"ServerBusy","message":{"value":"busy\nRequestId:1"}}}"#;
                Outcome::Answered(Response { status: 503, headers: vec![], body: body.to_vec() })
            };
            assert!(r.record(outcome).is_none());
        }
        assert_eq!(pauses, vec![0, 200, 400, 800, 1600]);
        assert_eq!(r.last_error(), "connection reset");
        let e = r.give_up();
        assert_eq!(
            e,
            AzureError::Unreachable { operation: "get entity", attempts: 5, detail: "connection reset".into() }
        );
        assert_eq!(e.to_string(), "get entity: could not reach Azure Storage (attempts: 5): connection reset");
        assert_eq!(e.status(), None);
    }

    #[test]
    fn an_answer_that_will_not_change_is_handed_back_at_once() {
        let mut r = RetryPolicy::DEFAULT.start("get entity");
        assert_eq!(r.next_attempt(), Some(Duration::ZERO));
        assert!(r.record(answer(503)).is_none());
        assert_eq!(r.last_error(), "HTTP 503");
        assert_eq!(r.next_attempt(), Some(Duration::from_millis(200)));
        assert_eq!(r.record(answer(404)).map(|x| x.status), Some(404));
    }

    #[test]
    fn a_refused_request_is_not_tried_again() {
        let mut r = RetryPolicy { attempts: 3, ..RetryPolicy::DEFAULT }.start("put message");
        assert!(r.next_attempt().is_some());
        assert!(r.record(Outcome::Refused("HttpRequestDenied".into())).is_none());
        assert_eq!(r.next_attempt(), None);
        assert!(matches!(r.give_up(), AzureError::Unreachable { attempts: 1, .. }));
    }

    #[test]
    fn a_request_not_to_be_applied_twice_is_repeated_only_when_it_cannot_have_been_applied() {
        let mut r = RetryPolicy::DEFAULT.start_once("put message");
        assert!(r.next_attempt().is_some());
        assert!(r.record(Outcome::Unsent("connection refused".into())).is_none());
        assert!(r.next_attempt().is_some(), "never sent: tried again");
        assert!(r.record(answer(503)).is_none());
        assert!(r.next_attempt().is_some(), "throttled: tried again");
        assert!(!r.may_have_applied());
        assert!(r.record(Outcome::Transport("connection reset".into())).is_none());
        assert_eq!(r.next_attempt(), None, "sent, answer lost: not repeated");
        let e = r.give_up();
        assert_eq!(e, AzureError::Unconfirmed { operation: "put message", detail: "connection reset".into() });
        assert!(e.to_string().contains("may or may not have been applied"), "{e}");

        // A timeout inside the service is handed to the parser, not repeated.
        let mut r = RetryPolicy::DEFAULT.start_once("put message");
        r.next_attempt();
        assert_eq!(r.record(answer(500)).map(|x| x.status), Some(500));
    }

    #[test]
    fn a_repeatable_request_says_when_an_earlier_attempt_may_have_been_applied() {
        let mut r = RetryPolicy::DEFAULT.start("insert entity");
        r.next_attempt();
        r.record(Outcome::Unsent("connection refused".into()));
        r.next_attempt();
        r.record(answer(503));
        assert!(!r.may_have_applied(), "neither reached the table");
        r.next_attempt();
        r.record(Outcome::Transport("read timeout".into()));
        assert!(r.next_attempt().is_some(), "repeated: a conflict it meets is checked");
        assert_eq!(r.record(answer(409)).map(|x| x.status), Some(409));
        assert!(r.may_have_applied());
        let mut r = RetryPolicy::DEFAULT.start("insert entity");
        r.next_attempt();
        r.record(answer(504));
        assert!(r.may_have_applied());
    }

    #[test]
    fn a_policy_of_zero_attempts_still_tries_once() {
        let mut r = RetryPolicy { attempts: 0, ..RetryPolicy::DEFAULT }.start("x");
        assert!(r.next_attempt().is_some());
        assert!(r.record(answer(500)).is_none());
        assert!(r.next_attempt().is_none());
    }

    #[test]
    fn transient_answers_are_described_with_the_services_words() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>ServerBusy</Code><Message>Busy.\nRequestId:x</Message></Error>";
        let r = Response { status: 503, headers: vec![], body: xml.as_bytes().to_vec() };
        assert_eq!(describe(&r), "HTTP 503 ServerBusy: Busy.");
        let r =
            Response { status: 500, headers: vec![("x-ms-error-code".into(), "InternalError".into())], body: vec![] };
        assert_eq!(describe(&r), "HTTP 500 InternalError");
    }
}
