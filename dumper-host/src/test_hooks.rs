//! Faults the fault tests inject, armed only when storage is the local emulator: a host on real Azure
//! Storage ignores these variables, so setting one in production cannot make it abort mid-restore or
//! let its leases lapse.

use std::collections::HashMap;
use std::sync::OnceLock;

/// What the environment asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// `DILUX_TEST_CRASH_AT=<point>`: abort at that point, as a crash would.
    pub crash_at: Option<String>,
    /// `DILUX_TEST_HOLD_LEASE=1`: lease renewals never reach the queue.
    pub hold_lease: bool,
}

impl Hooks {
    pub fn from_env(env: &HashMap<String, String>) -> Hooks {
        Hooks {
            crash_at: env.get("DILUX_TEST_CRASH_AT").filter(|p| !p.is_empty()).cloned(),
            hold_lease: env.get("DILUX_TEST_HOLD_LEASE").is_some_and(|v| v == "1"),
        }
    }

    pub fn any(&self) -> bool {
        *self != Hooks::default()
    }
}

static ARMED: OnceLock<Hooks> = OnceLock::new();

/// Arms the hooks `env` asks for if storage is the local emulator. Answers whether some were asked for
/// and refused (the caller warns).
pub fn arm(env: &HashMap<String, String>, local_emulator: bool) -> bool {
    let asked = Hooks::from_env(env);
    let refused = asked.any() && !local_emulator;
    let _ = ARMED.set(if local_emulator { asked } else { Hooks::default() });
    refused
}

fn armed() -> &'static Hooks {
    ARMED.get_or_init(Hooks::default)
}

/// Aborts the process here if the tests asked for it.
pub(crate) fn crash_point(point: &str) {
    if armed().crash_at.as_deref() == Some(point) {
        eprintln!("DILUX_TEST_CRASH_AT={point}: aborting");
        std::process::abort();
    }
}

/// Whether lease renewals are to be held back.
pub(crate) fn hold_lease() -> bool {
    armed().hold_lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_name_the_hooks() {
        let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(!Hooks::from_env(&env(&[])).any());
        assert!(!Hooks::from_env(&env(&[("DILUX_TEST_HOLD_LEASE", "0"), ("DILUX_TEST_CRASH_AT", "")])).any());
        let h = Hooks::from_env(&env(&[("DILUX_TEST_HOLD_LEASE", "1"), ("DILUX_TEST_CRASH_AT", "swap-renamed")]));
        assert_eq!(h, Hooks { crash_at: Some("swap-renamed".into()), hold_lease: true });
    }

    #[test]
    fn against_real_storage_the_hooks_stay_off() {
        let env = [("DILUX_TEST_HOLD_LEASE".to_string(), "1".to_string())].into();
        assert!(arm(&env, false), "refused, so the host warns");
        assert!(!hold_lease(), "and the renewals go on");
        crash_point("dump-committed");
    }
}
