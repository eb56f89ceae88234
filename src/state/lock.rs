//! The run lock kept in the state file itself: who is applying to an
//! environment and cloud right now, and until when the claim holds.
//!
//! A lock has holders. A holder with no component list holds the whole
//! environment and cloud; a holder with a list (a matrix job applying
//! `--components x`) holds only those components, so jobs that touch
//! different components run side by side. Two holders conflict when either
//! holds everything or their lists share a component. A claim that has
//! passed its `expires_at` is abandoned (its runner died) and may be taken
//! over; live runs renew theirs whenever they write the state.
//!
//! Taking and releasing the lock are changes to the state like any other, so
//! the git store's compare-and-swap makes them atomic across runners.
//! Everything here is pure: the time is passed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::Timestamp;
use crate::config::ComponentName;

/// How long a claim holds without being renewed. A running apply renews its
/// claim every time it writes the state, and at least every
/// [`RENEW_INTERVAL`].
pub const LOCK_TTL: Duration = Duration::from_secs(10 * 60);

/// How often a run that has nothing else to write renews its claim.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(2 * 60);

/// The lock of one environment and cloud: everyone holding a part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The claims, oldest first.
    pub holders: Vec<Holder>,
}

/// One run's claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// Who started the run.
    pub actor: Option<String>,
    /// Which attempt of the run (`GITHUB_RUN_ATTEMPT`; 1 locally).
    pub attempt: u32,
    /// The components held; `null` holds the whole environment and cloud.
    pub components: Option<Vec<ComponentName>>,
    /// When the claim lapses unless renewed.
    pub expires_at: Timestamp,
    /// The machine the run is on.
    pub host: Option<String>,
    /// The process of the run on that machine, so a run on the same machine
    /// can tell that the holder is gone without waiting for the expiry.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The id of the orchestrator run holding it (unique per invocation,
    /// also among the jobs of one CI run).
    pub run: u64,
    /// When the claim was made.
    pub started_at: Timestamp,
    /// A link to the CI run, when there is one.
    #[serde(default)]
    pub url: Option<String>,
}

impl Holder {
    /// Whether this claim and `other` cannot both hold.
    pub fn conflicts_with(&self, other: &Holder) -> bool {
        match (&self.components, &other.components) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => a.iter().any(|c| b.contains(c)),
        }
    }

    /// Whether both claims belong to the same run attempt.
    pub fn same_run(&self, other: &Holder) -> bool {
        self.run == other.run && self.attempt == other.attempt
    }

    /// Whether the claim has lapsed at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// What a person needs to find the holder: run, attempt, actor, host and
    /// times.
    pub fn describe(&self) -> String {
        let what = match &self.components {
            None => "the whole environment".to_string(),
            Some(c) => {
                let names: Vec<&str> = c.iter().map(ComponentName::as_str).collect();
                format!("components {}", names.join(", "))
            }
        };
        let mut text = format!(
            "run {} (attempt {}) by {} on {}, holding {what} since {}, until {}",
            self.run,
            self.attempt,
            self.actor.as_deref().unwrap_or("an unknown actor"),
            self.host.as_deref().unwrap_or("an unknown host"),
            self.started_at,
            self.expires_at
        );
        if let Some(url) = &self.url {
            text.push_str(&format!(" ({url})"));
        }
        text
    }
}

/// What trying to take a lock came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    /// The claim is recorded; these lapsed claims were removed to make room.
    Taken {
        /// Abandoned claims that were taken over.
        taken_over: Vec<Holder>,
    },
    /// A live claim stands in the way.
    Held(Holder),
}

/// Records `claim` in `lock` unless a live claim of another run conflicts
/// with it. Lapsed conflicting claims (expired, or whose run `is_gone`
/// says has ended) are taken over; this run's earlier claim, if any, is
/// replaced.
pub fn acquire(
    lock: &mut Option<Lock>,
    claim: Holder,
    now: Timestamp,
    is_gone: &dyn Fn(&Holder) -> bool,
) -> Acquired {
    let holders = lock.get_or_insert_with(|| Lock {
        holders: Vec::new(),
    });
    let blocking = holders.holders.iter().find(|h| {
        !h.same_run(&claim) && h.conflicts_with(&claim) && !h.expired(now) && !is_gone(h)
    });
    if let Some(holder) = blocking {
        let holder = holder.clone();
        tidy(lock);
        return Acquired::Held(holder);
    }
    let (taken_over, kept): (Vec<Holder>, Vec<Holder>) = std::mem::take(&mut holders.holders)
        .into_iter()
        .partition(|h| !h.same_run(&claim) && h.conflicts_with(&claim));
    holders.holders = kept.into_iter().filter(|h| !h.same_run(&claim)).collect();
    holders.holders.push(claim);
    Acquired::Taken { taken_over }
}

/// Pushes this run's claim out to `expires_at`; false when the run holds
/// nothing (someone released it by force).
pub fn renew(lock: &mut Option<Lock>, claim: &Holder, expires_at: Timestamp) -> bool {
    let Some(held) = lock
        .as_mut()
        .and_then(|l| l.holders.iter_mut().find(|h| h.same_run(claim)))
    else {
        return false;
    };
    held.expires_at = expires_at;
    true
}

/// Removes this run's claim; returns whether there was one.
pub fn release(lock: &mut Option<Lock>, claim: &Holder) -> bool {
    let Some(l) = lock.as_mut() else {
        return false;
    };
    let before = l.holders.len();
    l.holders.retain(|h| !h.same_run(claim));
    let released = l.holders.len() != before;
    tidy(lock);
    released
}

/// Removes this run's claim; returns the history note saying so, or `None`
/// when it held nothing.
pub fn release_noted(lock: &mut Option<Lock>, claim: &Holder) -> Option<String> {
    release(lock, claim).then(|| format!("lock released by run {}", claim.run))
}

/// Removes the claims `gone` says have ended; returns them.
pub fn remove_gone(lock: &mut Option<Lock>, gone: &dyn Fn(&Holder) -> bool) -> Vec<Holder> {
    let Some(l) = lock.as_mut() else {
        return Vec::new();
    };
    let (removed, kept) = std::mem::take(&mut l.holders)
        .into_iter()
        .partition(|h| gone(h));
    l.holders = kept;
    tidy(lock);
    removed
}

/// Removes every claim (a forced unlock); returns the claims removed.
pub fn clear(lock: &mut Option<Lock>) -> Vec<Holder> {
    lock.take().map(|l| l.holders).unwrap_or_default()
}

/// An empty lock is written as `null`.
fn tidy(lock: &mut Option<Lock>) {
    if lock.as_ref().is_some_and(|l| l.holders.is_empty()) {
        *lock = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Run 1 holding `dns` and run 2 holding `registry`, both until 100.
    fn dns_and_registry() -> Option<Lock> {
        let mut lock = None;
        acquire(&mut lock, claim(1, Some(&["dns"]), 100), at(10), &|_| false);
        let second = acquire(
            &mut lock,
            claim(2, Some(&["registry"]), 100),
            at(10),
            &|_| false,
        );
        assert_eq!(second, Acquired::Taken { taken_over: vec![] });
        lock
    }

    fn claim(run: u64, components: Option<&[&str]>, expires: u64) -> Holder {
        Holder {
            actor: Some("octocat".into()),
            attempt: 1,
            components: components
                .map(|c| c.iter().map(|n| ComponentName::parse(n).unwrap()).collect()),
            expires_at: at(expires),
            host: Some("runner-1".into()),
            pid: None,
            run,
            started_at: at(0),
            url: None,
        }
    }

    #[test]
    fn a_free_lock_is_taken() {
        let mut lock = None;
        let result = acquire(&mut lock, claim(1, None, 100), at(10), &|_| false);
        assert_eq!(result, Acquired::Taken { taken_over: vec![] });
        assert_eq!(lock.unwrap().holders.len(), 1);
    }

    #[test]
    fn a_live_whole_lock_blocks_everyone_else() {
        let mut lock = None;
        acquire(&mut lock, claim(1, None, 100), at(10), &|_| false);
        let result = acquire(&mut lock, claim(2, Some(&["dns"]), 100), at(20), &|_| false);
        assert_eq!(result, Acquired::Held(claim(1, None, 100)));
        assert_eq!(lock.unwrap().holders.len(), 1);
    }

    #[test]
    fn claims_on_different_components_hold_side_by_side() {
        // Both taken at once: the helper checks the second took nothing over.
        let mut lock = dns_and_registry();
        let overlapping = acquire(
            &mut lock,
            claim(3, Some(&["registry", "x"]), 100),
            at(10),
            &|_| false,
        );
        assert!(matches!(overlapping, Acquired::Held(h) if h.run == 2));
        assert_eq!(lock.unwrap().holders.len(), 2);
    }

    #[test]
    fn a_lapsed_claim_is_taken_over_and_reported() {
        let mut lock = None;
        acquire(&mut lock, claim(1, None, 100), at(10), &|_| false);
        let result = acquire(&mut lock, claim(2, None, 900), at(100), &|_| false);
        assert_eq!(
            result,
            Acquired::Taken {
                taken_over: vec![claim(1, None, 100)]
            }
        );
        assert_eq!(lock.unwrap().holders, vec![claim(2, None, 900)]);
    }

    #[test]
    fn a_claim_whose_run_has_ended_is_taken_over_before_it_expires() {
        let mut lock = None;
        acquire(&mut lock, claim(1, None, 100), at(10), &|_| false);
        let result = acquire(&mut lock, claim(2, None, 900), at(20), &|h| h.run == 1);
        assert_eq!(
            result,
            Acquired::Taken {
                taken_over: vec![claim(1, None, 100)]
            }
        );
    }

    #[test]
    fn the_same_run_retaking_its_lock_replaces_its_claim() {
        let mut lock = None;
        acquire(&mut lock, claim(1, None, 100), at(10), &|_| false);
        acquire(&mut lock, claim(1, None, 200), at(20), &|_| false);
        assert_eq!(lock.unwrap().holders, vec![claim(1, None, 200)]);
    }

    #[test]
    fn releasing_the_last_claim_writes_null() {
        let mut lock = dns_and_registry();
        assert!(release(&mut lock, &claim(1, None, 0)));
        assert_eq!(lock.as_ref().unwrap().holders.len(), 1);
        assert!(release(&mut lock, &claim(2, None, 0)));
        assert_eq!(lock, None);
        assert!(!release(&mut lock, &claim(2, None, 0)));
    }

    #[test]
    fn renewing_moves_only_this_runs_expiry() {
        let mut lock = dns_and_registry();
        assert!(renew(&mut lock, &claim(2, None, 0), at(500)));
        let holders = &lock.as_ref().unwrap().holders;
        assert_eq!(holders[0].expires_at, at(100));
        assert_eq!(holders[1].expires_at, at(500));
        assert!(!renew(&mut lock, &claim(3, None, 0), at(500)));
    }

    #[test]
    fn clearing_removes_every_claim() {
        let mut lock = dns_and_registry();
        assert_eq!(clear(&mut lock).len(), 2);
        assert_eq!(lock, None);
    }

    #[test]
    fn the_holder_is_described_so_a_person_can_find_it() {
        let text = claim(42, Some(&["dns"]), 100).describe();
        assert!(text.contains("run 42"), "{text}");
        assert!(
            text.contains("octocat") && text.contains("runner-1"),
            "{text}"
        );
        assert!(text.contains("components dns"), "{text}");
    }
}
