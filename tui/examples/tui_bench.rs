//! Headless benchmark of the TUI's main loop: lines arrive at a fixed rate over the same
//! bounded channel the tail thread uses, keys arrive every 100 ms over the input channel,
//! and the real `event_loop` draws into a `TestBackend`. Reports redraws per second,
//! keypress-to-redraw latency and resident memory against the buffer setting.
//!
//! ```text
//! cargo run --release -p shiplog-tui --example tui_bench -- [--rate 10000] [--secs 30]
//!     [--buffer 100000] [--width 160] [--height 48]
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as InputEvent, KeyCode, KeyEvent, KeyModifiers};
use shiplog_core::{Event, Level, Stream, Timestamp};
use shiplog_tui::app::App;
use shiplog_tui::client::{CHANNEL_CAPACITY, ClientMsg};
use shiplog_tui::{Links, Probe, event_loop};

struct Args {
    rate: u64,
    secs: u64,
    buffer: usize,
    width: u16,
    height: u16,
}

fn args() -> Args {
    let mut a = Args {
        rate: 10_000,
        secs: 30,
        buffer: 100_000,
        width: 160,
        height: 48,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--rate" => a.rate = parse(&pair[0], value),
            "--secs" => a.secs = parse(&pair[0], value),
            "--buffer" => a.buffer = parse(&pair[0], value),
            "--width" => a.width = parse(&pair[0], value),
            "--height" => a.height = parse(&pair[0], value),
            other => {
                panic!("unknown flag {other}: use --rate, --secs, --buffer, --width, --height")
            }
        }
    }
    a
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad value '{value}' for {flag}"))
}

/// Resident memory of this process, in bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A log line like a busy service writes: ~120 bytes of message, a few fields.
fn line(n: u64) -> ClientMsg {
    const SERVICES: [&str; 6] = ["api", "web", "inference-server", "worker", "db", "gateway"];
    const LEVELS: [Option<Level>; 5] = [
        Some(Level::Info),
        Some(Level::Info),
        Some(Level::Debug),
        Some(Level::Warn),
        Some(Level::Error),
    ];
    let service = SERVICES[(n % 6) as usize];
    let mut e = Event::log(
        Timestamp::now(),
        format!(
            "GET /api/v1/items/{n} 200 {}ms user={} trace=4bf92f3577b34da6a3ce929d0e0e{:04x} bytes={}",
            n % 250,
            n % 9973,
            n % 65536,
            n * 37 % 100_000
        ),
    );
    e.service = service.into();
    e.container_name = format!("{service}-{}", n % 3);
    e.container_id = format!("{:064x}", n % 18);
    e.node = "node-a".into();
    e.image = format!("registry.local/{service}:1.4.2");
    e.stream = Some(if n.is_multiple_of(7) {
        Stream::Stderr
    } else {
        Stream::Stdout
    });
    e.level = LEVELS[(n % 5) as usize];
    e.fields.insert("status".into(), 200.into());
    e.fields.insert("latency_ms".into(), (n % 250).into());
    ClientMsg::Event(Box::new(e))
}

/// Times each key from the moment it was sent to the end of the first frame after it was
/// handled.
struct KeyProbe {
    sent: Arc<Mutex<VecDeque<Instant>>>,
    handled: Vec<Instant>,
    latencies: Vec<Duration>,
    draws: u64,
}

impl Probe for KeyProbe {
    fn input_handled(&mut self) {
        if let Some(t) = self.sent.lock().unwrap().pop_front() {
            self.handled.push(t);
        }
    }

    fn drawn(&mut self) {
        self.draws += 1;
        let now = Instant::now();
        for t in self.handled.drain(..) {
            self.latencies.push(now - t);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let a = args();
    let rss_start = rss_bytes();
    let mut app = App::new("http://bench", a.buffer, true);
    let mut terminal = Terminal::new(TestBackend::new(a.width, a.height)).unwrap();
    let (input_tx, input_rx) = crossbeam_channel::bounded(1024);
    let (tail_tx, tail_rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let (_reply_tx, reply_rx) = crossbeam_channel::bounded(16);
    let (request_tx, request_rx) = crossbeam_channel::bounded(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let run_for = Duration::from_secs(a.secs);

    // Requests the views make go nowhere: the bench measures the UI, not a server.
    std::thread::spawn(move || for _ in request_rx {});

    tail_tx.send(ClientMsg::Connected).unwrap();
    let producer = {
        let stop = stop.clone();
        let rate = a.rate;
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                while sent < due {
                    if tail_tx.send(line(sent)).is_err() {
                        return sent;
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })
    };

    let sent_keys = Arc::new(Mutex::new(VecDeque::new()));
    let keys = {
        let sent_keys = sent_keys.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Move the cursor, page, and go back to following: keys that change the screen.
            let cycle = [
                KeyCode::Up,
                KeyCode::Up,
                KeyCode::PageUp,
                KeyCode::Down,
                KeyCode::End,
            ];
            let mut n = 0;
            while started.elapsed() < run_for {
                std::thread::sleep(Duration::from_millis(100));
                let key = KeyEvent::new(cycle[n % cycle.len()], KeyModifiers::NONE);
                sent_keys.lock().unwrap().push_back(Instant::now());
                if input_tx.send(InputEvent::Key(key)).is_err() {
                    return;
                }
                n += 1;
            }
            stop.store(true, Ordering::Relaxed);
            sent_keys.lock().unwrap().push_back(Instant::now());
            let _ = input_tx.send(InputEvent::Key(KeyEvent::new(
                KeyCode::Char('q'),
                KeyModifiers::NONE,
            )));
        })
    };

    let rss_samples = Arc::new(Mutex::new(Vec::new()));
    {
        let rss_samples = rss_samples.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                rss_samples
                    .lock()
                    .unwrap()
                    .push((started.elapsed().as_secs(), rss_bytes()));
            }
        });
    }

    let mut probe = KeyProbe {
        sent: sent_keys,
        handled: Vec::new(),
        latencies: Vec::new(),
        draws: 0,
    };
    let mut copy = |_: &str| {};
    let links = Links {
        input: &input_rx,
        tail: &tail_rx,
        replies: &reply_rx,
        requests: &request_tx,
        set_filter: &|_| {},
        copy: &mut copy,
        signals: &crossbeam_channel::never(),
    };
    event_loop(&mut terminal, &mut app, links, &mut probe).unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    drop(tail_rx);
    keys.join().unwrap();
    let produced = producer.join().unwrap();

    let mut lat = probe.latencies.clone();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "terminal {}x{}, buffer {} lines, target {} lines/s, {:.1} s",
        a.width,
        a.height,
        a.buffer,
        a.rate,
        elapsed.as_secs_f64()
    );
    println!(
        "lines received {} ({:.0}/s), produced {}, kept in buffer {}, evicted {}",
        app.tail.received,
        app.tail.received as f64 / elapsed.as_secs_f64(),
        produced,
        app.tail.lines().len(),
        app.tail.evicted
    );
    println!(
        "redraws {} ({:.1}/s)",
        probe.draws,
        probe.draws as f64 / elapsed.as_secs_f64()
    );
    println!(
        "keypress-to-redraw over {} keys: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    let samples = rss_samples.lock().unwrap().clone();
    let every5: Vec<String> = samples
        .iter()
        .filter(|(s, _)| s.is_multiple_of(5))
        .map(|(s, b)| format!("{s}s {:.0}", mib(*b)))
        .collect();
    println!(
        "rss MiB: start {:.0}; {}; max {:.0}",
        mib(rss_start),
        every5.join(", "),
        mib(samples.iter().map(|(_, b)| *b).max().unwrap_or(0))
    );
}
