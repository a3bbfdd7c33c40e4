//! Durability under SIGKILL: concurrent writers ingest continuously while the node is
//! killed at random moments and restarted; every acknowledged event must be stored
//! exactly once at the end, and nothing may be corrupt.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shiplog_core::{Event, EventId, Timestamp};
use shiplog_tests::Node;

const WRITERS: u64 = 3;
const KILLS: usize = 20;
const BATCH: u64 = 40;

/// A small deterministic generator, so a failing run can be repeated from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn batch_body(writer: u64, batch: u64) -> Vec<u8> {
    let events: Vec<Event> = (0..BATCH)
        .map(|i| {
            let n = batch * BATCH + i;
            let mut e = Event::log(Timestamp::now(), format!("w{writer} n{n}"));
            e.id = EventId((u128::from(writer) << 64) | (u128::from(n) + 1));
            e.service = format!("writer{writer}");
            e
        })
        .collect();
    shiplog_core::codec::encode_batch(&events, Some(&format!("w{writer}-b{batch}")), 3)
}

#[test]
fn every_acked_event_survives_twenty_sigkills_exactly_once() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("crash test seed {seed} (set CRASH_SEED to repeat)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(Mutex::new(Node::start_in(dir.path(), "serve", &[], &[])));
    let url = Arc::new(Mutex::new(node.lock().unwrap().url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();

    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
        handles.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut b = 0;
            let mut attempts = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // The same batch is resent until it is acked, as a collector would.
                let body = batch_body(w, b);
                let target = format!("{}/api/v1/ingest", url.lock().unwrap());
                attempts += 1;
                let ok = http
                    .post(&target)
                    .header("content-type", "application/x-ndjson")
                    .header("content-encoding", "zstd")
                    .body(body)
                    .send()
                    .ok()
                    .filter(|r| r.status().is_success())
                    .is_some();
                if ok {
                    let mut a = acked.lock().unwrap();
                    for i in 0..BATCH {
                        a.insert(format!("w{w} n{}", b * BATCH + i));
                    }
                    b += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            (b, attempts)
        }));
    }

    for k in 0..KILLS {
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 600));
        let mut n = node.lock().unwrap();
        n.kill9();
        let before = acked.lock().unwrap().len();
        *n = Node::start_in(dir.path(), "serve", &[], &[]);
        *url.lock().unwrap() = n.url.clone();
        eprintln!("kill {}: {before} events acked so far", k + 1);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let (batches, attempts) = h.join().unwrap();
        eprintln!("writer: {batches} batches acked in {attempts} attempts");
    }

    let n = node.lock().unwrap();
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() as u64 >= WRITERS * BATCH * 5,
        "too little was acked to prove anything: {}",
        acked.len()
    );
    // Acked data is searchable within the commit interval.
    let mut stored: HashMap<String, usize> = HashMap::new();
    n.wait_until(
        Duration::from_secs(30),
        "every acked event to be searchable",
        || {
            stored.clear();
            let mut cursor: Option<String> = None;
            loop {
                let mut params = vec![("limit", "10000".to_string())];
                if let Some(c) = &cursor {
                    params.push(("cursor", c.clone()));
                }
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (status, v) = n.search(&p);
                assert_eq!(status, 200, "{v}");
                for h in v["hits"].as_array().unwrap() {
                    *stored
                        .entry(h["message"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            acked.iter().all(|m| stored.contains_key(m))
        },
    );
    let doubled: Vec<_> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        doubled.is_empty(),
        "stored more than once: {:?}",
        &doubled[..doubled.len().min(10)]
    );
    let missing: Vec<_> = acked.iter().filter(|m| !stored.contains_key(*m)).collect();
    assert!(missing.is_empty(), "acked but lost: {}", missing.len());
    eprintln!(
        "{} acked, {} stored (the rest were stored but their ack was lost to a kill)",
        acked.len(),
        stored.len()
    );
}
