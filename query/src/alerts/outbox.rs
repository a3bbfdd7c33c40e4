//! Notifications waiting for delivery, and what each notifier last received.
//!
//! One slot per notifier and alert (fingerprint): a newer notification replaces a queued
//! one, so the outbox never holds more than (notifiers × alerts) items and a receiver that
//! was down gets the alert's current state once, not its whole past. A failed attempt is
//! retried after a backoff that doubles from 1 s up to `max_backoff`, forever, until it
//! succeeds or the alert resolves (a firing message nobody received is then dropped with
//! its resolution). The idempotency key stays the same across retries of one message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::notify::Notification;

const SEC: i64 = 1_000_000_000;

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// What to send.
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Earliest next attempt (ns).
    pub next_try: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// An attempt is under way (never persisted as true).
    #[serde(skip)]
    pub in_flight: bool,
}

/// The last message a notifier received about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// `firing` or `resolved`.
    pub state: String,
    /// When it was delivered (ns).
    pub at: i64,
    /// Its repeat number.
    pub repeat: u32,
    /// The alert's `since`, telling one firing episode from the next.
    pub since: String,
}

/// Queued messages and delivery records, keyed by (notifier, fingerprint).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Outbox {
    /// Waiting messages.
    #[serde(with = "pairs")]
    pub items: BTreeMap<(String, String), Item>,
    /// Last delivered message per notifier and alert.
    #[serde(with = "pairs")]
    pub sent: BTreeMap<(String, String), Sent>,
    /// Deliveries made since start.
    #[serde(skip)]
    pub delivered: u64,
    /// Failed attempts since start.
    #[serde(skip)]
    pub failures: u64,
    /// Something changed that the state file does not have yet.
    #[serde(skip)]
    pub dirty: bool,
}

impl Outbox {
    /// Queues a message, replacing any queued one for the same notifier and alert (an
    /// attempt already under way finishes; the new message goes next).
    pub fn enqueue(&mut self, notifier: &str, n: Notification, now: i64) {
        let key = (notifier.to_string(), n.fingerprint.clone());
        let in_flight = self.items.get(&key).is_some_and(|i| i.in_flight);
        self.items.insert(
            key,
            Item {
                notification: n,
                attempts: 0,
                next_try: now,
                last_error: None,
                in_flight,
            },
        );
        self.dirty = true;
    }

    /// Whether a message for this notifier and alert is queued.
    pub fn queued(&self, notifier: &str, fingerprint: &str) -> Option<&Item> {
        self.items
            .get(&(notifier.to_string(), fingerprint.to_string()))
    }

    /// Drops a queued message (unless it is being sent); says whether one was dropped.
    pub fn cancel(&mut self, notifier: &str, fingerprint: &str) -> bool {
        let key = (notifier.to_string(), fingerprint.to_string());
        match self.items.get(&key) {
            Some(i) if !i.in_flight => {
                self.items.remove(&key);
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// What the notifier last received about the alert.
    pub fn sent(&self, notifier: &str, fingerprint: &str) -> Option<&Sent> {
        self.sent
            .get(&(notifier.to_string(), fingerprint.to_string()))
    }

    /// Whether any message about the alert waits for delivery, and the last error.
    pub fn pending(&self, fingerprint: &str) -> (bool, Option<String>) {
        let mut pending = false;
        let mut error = None;
        for ((_, fp), item) in &self.items {
            if fp == fingerprint {
                pending = true;
                if item.last_error.is_some() {
                    error.clone_from(&item.last_error);
                }
            }
        }
        (pending, error)
    }

    /// Messages due now, marked as under way: (notifier, message).
    pub fn due(&mut self, now: i64, limit: usize) -> Vec<(String, Notification)> {
        let mut out = Vec::new();
        for ((notifier, _), item) in self.items.iter_mut() {
            if out.len() >= limit {
                break;
            }
            if item.in_flight || item.next_try > now {
                continue;
            }
            item.in_flight = true;
            out.push((notifier.clone(), item.notification.clone()));
        }
        out
    }

    /// Records the outcome of an attempt at `sent`.
    pub fn finish(
        &mut self,
        notifier: &str,
        sent: &Notification,
        result: Result<(), String>,
        now: i64,
        max_backoff_ns: i64,
    ) {
        let key = (notifier.to_string(), sent.fingerprint.clone());
        self.dirty = true;
        let same = self
            .items
            .get(&key)
            .is_some_and(|i| i.notification.idempotency_key == sent.idempotency_key);
        match result {
            Ok(()) => {
                self.delivered += 1;
                if sent.state == "resolved" {
                    self.sent.remove(&key);
                } else {
                    self.sent.insert(
                        key.clone(),
                        Sent {
                            state: sent.state.clone(),
                            at: now,
                            repeat: sent.repeat,
                            since: sent.since.clone(),
                        },
                    );
                }
                if same {
                    self.items.remove(&key);
                } else if let Some(i) = self.items.get_mut(&key) {
                    i.in_flight = false;
                }
            }
            Err(e) => {
                self.failures += 1;
                if let Some(i) = self.items.get_mut(&key) {
                    i.in_flight = false;
                    if same {
                        i.attempts += 1;
                        let shift = i.attempts.saturating_sub(1).min(20);
                        let wait = (SEC << shift).min(max_backoff_ns.max(SEC));
                        i.next_try = now + wait;
                        i.last_error = Some(e);
                    }
                }
            }
        }
    }

    /// Forgets queued messages and records of notifiers that no longer exist.
    pub fn retain_notifiers(&mut self, names: &[String]) {
        self.items.retain(|(n, _), _| names.contains(n));
        self.sent.retain(|(n, _), _| names.contains(n));
    }
}

/// Maps keyed by (notifier, fingerprint) as JSON lists of `[notifier, fingerprint, value]`
/// (JSON object keys must be strings).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<V: Serialize, S: Serializer>(
        m: &BTreeMap<(String, String), V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|((a, b), v)| (a, b, v)))
    }

    pub fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(String, String), V>, D::Error> {
        let list: Vec<(String, String, V)> = Vec::deserialize(d)?;
        Ok(list.into_iter().map(|(a, b, v)| ((a, b), v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(state: &str, key: &str) -> Notification {
        serde_json::from_value(serde_json::json!({
            "version": "1", "idempotency_key": key, "fingerprint": "fp", "rule": "r",
            "state": state, "severity": "warning", "group": {}, "labels": {},
            "annotations": {}, "value": 1.0, "threshold": 0.5, "op": ">",
            "since": "2026-11-22T00:00:00Z", "ends_at": null, "query": "", "link": "",
            "repeat": 0
        }))
        .unwrap()
    }

    #[test]
    fn failed_attempts_back_off_and_keep_their_key_until_delivered() {
        let mut o = Outbox::default();
        o.enqueue("hook", note("firing", "k1"), 0);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let due = o.due(now, 10);
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].1.idempotency_key, "k1");
            o.finish("hook", &due[0].1, Err("down".into()), now, 30 * SEC);
            let next = o.queued("hook", "fp").unwrap().next_try;
            waits.push((next - now) / SEC);
            assert!(o.due(now, 10).is_empty());
            now = next;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(o.pending("fp"), (true, Some("down".into())));
        let due = o.due(now, 10);
        o.finish("hook", &due[0].1, Ok(()), now, 30 * SEC);
        assert_eq!(o.pending("fp"), (false, None));
        assert_eq!(o.sent("hook", "fp").unwrap().state, "firing");
    }

    #[test]
    fn a_newer_message_replaces_one_in_flight_and_goes_next() {
        let mut o = Outbox::default();
        o.enqueue("hook", note("firing", "k1"), 0);
        let due = o.due(0, 10);
        o.enqueue("hook", note("resolved", "k2"), 0);
        assert!(!o.cancel("hook", "fp"), "in flight");
        o.finish("hook", &due[0].1, Ok(()), 1, SEC);
        assert_eq!(o.sent("hook", "fp").unwrap().state, "firing");
        let due = o.due(1, 10);
        assert_eq!(due[0].1.idempotency_key, "k2");
        o.finish("hook", &due[0].1, Ok(()), 2, SEC);
        assert!(o.items.is_empty());
        assert!(o.sent("hook", "fp").is_none());
    }
}
