//! What the prediction endpoints share: the field mapping and redaction rules applied at
//! direct ingest, counters of what came in, the audit access record, and the manifests of
//! recent exports.
//!
//! The access record is `<data_dir>/audit/access.log`: one JSON event per line (kind `log`,
//! service `shiplog-audit`, the token name, route, query, record count and, for exports,
//! the SHA-256 of what was sent). Every audit query and export appends one line, synced to
//! disk before the answer completes, and `GET /api/v1/audit/access` (admin) searches it
//! with the query language. It grows by one short line per audit request; it is not rotated
//! (audit requests are rare next to ingest, and an access record that rotates itself away
//! would defeat its purpose).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};
use shiplog_core::prediction_config::PredictionRules;
use shiplog_core::query::Query;
use shiplog_core::{Event, Timestamp};

use crate::auth::Caller;

/// Service name of access records.
pub const ACCESS_SERVICE: &str = "shiplog-audit";
/// Export manifests kept for `GET /api/v1/predictions/exports/{id}`, newest last; older
/// ones are dropped (their checksum stays in the access record).
pub const MANIFESTS_KEPT: usize = 1024;
/// Longest access record line read back; longer lines (only possible if the file was
/// edited by hand) are skipped with a warning instead of filling memory.
const MAX_ACCESS_LINE: usize = 1024 * 1024;

/// Shared by the prediction and audit routes.
pub struct PredictionService {
    /// How records sent to `POST /api/v1/predictions` (and OTLP records with model
    /// attributes) map onto prediction keys, and the redaction applied to them before
    /// anything is stored: the same `[predictions]` rules the collector applies.
    pub rules: PredictionRules,
    accepted: AtomicU64,
    malformed: AtomicU64,
    redacted: AtomicU64,
    access_path: PathBuf,
    access: Mutex<Option<File>>,
    manifests: Mutex<VecDeque<ExportManifest>>,
    next_export: AtomicU64,
}

/// What an export produced; the `sha256` is over exactly the bytes of the response body.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ExportManifest {
    /// The export's id, as sent in the `X-Shiplog-Export-Id` header.
    pub id: String,
    /// `ndjson` or `csv`.
    pub format: String,
    /// The query the export ran (filters included), in the query language.
    pub query: String,
    /// Lower bound of the window, if any.
    pub since: Option<Timestamp>,
    /// Upper bound of the window, if any.
    pub until: Option<Timestamp>,
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the body, lower-case hex.
    pub sha256: String,
    /// Whether every matching record was sent (false when the client went away).
    pub complete: bool,
    /// When the export started.
    pub started: Timestamp,
    /// Token that asked for it.
    pub token: String,
}

/// Counters of the prediction endpoints, for `/metrics` and the summary.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PredictionCounters {
    /// Records stored as predictions by `POST /api/v1/predictions`.
    pub accepted: u64,
    /// Records kept as logs because a required key was missing or ill-typed.
    pub malformed: u64,
    /// Records a redaction rule changed.
    pub redacted: u64,
}

impl PredictionService {
    /// A service keeping its access record under `data_dir/audit/`.
    pub fn new(data_dir: &Path, rules: PredictionRules) -> Self {
        PredictionService {
            rules,
            accepted: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            redacted: AtomicU64::new(0),
            access_path: data_dir.join("audit").join("access.log"),
            access: Mutex::new(None),
            manifests: Mutex::new(VecDeque::new()),
            next_export: AtomicU64::new(0),
        }
    }

    /// Counts one ingest request's records.
    pub fn count(&self, accepted: u64, malformed: u64, redacted: u64) {
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.malformed.fetch_add(malformed, Ordering::Relaxed);
        self.redacted.fetch_add(redacted, Ordering::Relaxed);
    }

    /// The counters so far (since start).
    pub fn counters(&self) -> PredictionCounters {
        PredictionCounters {
            accepted: self.accepted.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            redacted: self.redacted.load(Ordering::Relaxed),
        }
    }

    /// A fresh export id: start time and a counter, unique within this server's life.
    pub fn export_id(&self) -> String {
        let n = self.next_export.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{n}", Timestamp::now().as_nanos())
    }

    /// Keeps a finished export's manifest.
    pub fn keep_manifest(&self, manifest: ExportManifest) {
        let mut m = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MANIFESTS_KEPT {
            m.pop_front();
        }
        m.push_back(manifest);
    }

    /// The manifest of a recent export.
    pub fn manifest(&self, id: &str) -> Option<ExportManifest> {
        let m = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().rev().find(|x| x.id == id).cloned()
    }

    /// Appends one access record and syncs it to disk. Blocking: call from a blocking
    /// thread.
    pub fn record_access(
        &self,
        caller: &Caller,
        route: &str,
        query: &str,
        count: u64,
        extra: Map<String, Value>,
    ) -> std::io::Result<()> {
        let mut event = Event::log(
            Timestamp::now(),
            format!("{} {route} by {}: {count} records", "audit", caller.name),
        );
        event.kind = shiplog_core::Kind::Log;
        event.service = ACCESS_SERVICE.to_string();
        event
            .fields
            .insert("token".into(), caller.name.clone().into());
        event.fields.insert("route".into(), route.into());
        event.fields.insert("query".into(), query.into());
        event.fields.insert("count".into(), count.into());
        event.fields.extend(extra);
        event.ensure_id();
        let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut guard = self.access.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.access_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.access_path)?,
            );
        }
        let file = guard.as_mut().expect("opened above");
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Access records matching `query` between `since` and `until`, newest first, at most
    /// `limit`. Reads the file front to back keeping only the last `limit` matches, so
    /// memory stays bounded whatever its size. Blocking.
    pub fn search_access(
        &self,
        query: &Query,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: usize,
    ) -> std::io::Result<(Vec<Event>, u64)> {
        let file = match File::open(&self.access_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut kept: VecDeque<Event> = VecDeque::with_capacity(limit.min(1024));
        let mut total = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_ACCESS_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_ACCESS_LINE && !line.ends_with(b"\n") {
                tracing::warn!(path = %self.access_path.display(), "skipping an over-long access record line");
                // Skip the rest of that line.
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest)?;
                continue;
            }
            let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                tracing::warn!(path = %self.access_path.display(), "skipping an unreadable access record line");
                continue;
            };
            if since.is_some_and(|s| event.ts < s) || until.is_some_and(|u| event.ts > u) {
                continue;
            }
            if !query.matches(&event) {
                continue;
            }
            total += 1;
            if kept.len() == limit {
                kept.pop_front();
            }
            if limit > 0 {
                kept.push_back(event);
            }
        }
        Ok((kept.into_iter().rev().collect(), total))
    }
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn access_records_are_appended_and_searchable_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let svc = PredictionService::new(dir.path(), PredictionRules::default());
        let alice = Caller {
            name: "alice".into(),
            roles: vec![Role::Audit],
        };
        let bob = Caller {
            name: "bob".into(),
            roles: vec![Role::Audit],
        };
        for i in 0..5 {
            let who = if i % 2 == 0 { &alice } else { &bob };
            svc.record_access(
                who,
                "/api/v1/predictions",
                &format!("model:m{i}"),
                i,
                Map::new(),
            )
            .unwrap();
        }
        let q = shiplog_core::query::parse("fields.token:alice").unwrap();
        let (hits, total) = svc.search_access(&q, None, None, 2).unwrap();
        assert_eq!(total, 3);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].fields["query"], "model:m4", "newest first");
        assert_eq!(hits[1].fields["query"], "model:m2");
        assert!(hits.iter().all(|h| h.service == ACCESS_SERVICE));
        // Garbage appended by hand is skipped, not fatal.
        let path = dir.path().join("audit/access.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not json\n").unwrap();
        f.write_all(&vec![b'x'; MAX_ACCESS_LINE + 10]).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        svc.record_access(&bob, "/x", "q", 1, Map::new()).unwrap();
        let (hits, total) = svc.search_access(&Query::All, None, None, 100).unwrap();
        assert_eq!(total, 6);
        assert_eq!(hits[0].fields["route"], "/x");
    }

    #[test]
    fn manifests_are_kept_up_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let svc = PredictionService::new(dir.path(), PredictionRules::default());
        for i in 0..(MANIFESTS_KEPT + 5) {
            svc.keep_manifest(ExportManifest {
                id: format!("e{i}"),
                format: "csv".into(),
                query: String::new(),
                since: None,
                until: None,
                records: i as u64,
                bytes: 0,
                sha256: String::new(),
                complete: true,
                started: Timestamp(0),
                token: "t".into(),
            });
        }
        assert!(svc.manifest("e0").is_none());
        assert_eq!(svc.manifest("e1028").unwrap().records, 1028);
    }
}
