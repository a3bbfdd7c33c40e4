//! shiplog's own traces and metrics over OTLP/HTTP (`[telemetry] otlp_endpoint`), checked
//! against a real `shiplog serve` process.
//!
//! The receiver here is a few lines of HTTP on 127.0.0.1 that stands in for an
//! OpenTelemetry Collector (no collector package exists on the test machines): it records
//! each POST and answers 200 with an empty protobuf body, as a collector's OTLP/HTTP
//! receiver does. The bodies are decoded with `opentelemetry-proto`, so what is checked is
//! the wire format a collector would read.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use shiplog_tests::Node;

/// One POST the receiver took.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// The stand-in OTLP/HTTP receiver.
struct OtlpReceiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
    stop: Arc<AtomicBool>,
}

impl OtlpReceiver {
    /// Listens on a port chosen by the OS; `answer = false` accepts connections and reads
    /// the request but never answers (a receiver that hangs).
    fn start(answer: bool) -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (posts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let p = p.clone();
                        std::thread::spawn(move || serve(stream, &p, answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        OtlpReceiver { addr, posts, stop }
    }

    fn posts(&self, path: &str) -> Vec<Post> {
        let posts = self.posts.lock().unwrap();
        posts.iter().filter(|p| p.path == path).cloned().collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads requests off one connection (the exporter keeps connections alive) until it closes.
fn serve(stream: std::net::TcpStream, posts: &Mutex<Vec<Post>>, answer: bool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        posts.lock().unwrap().push(Post {
            path,
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            body,
        });
        if !answer {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        // An empty Export*ServiceResponse: full success.
        if out
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            )
            .is_err()
        {
            return;
        }
    }
}

fn config_file(dir: &std::path::Path, telemetry: &str) -> std::path::PathBuf {
    let path = dir.join("shiplog.toml");
    std::fs::write(
        &path,
        format!("[docker]\nenabled = false\n\n[telemetry]\n{telemetry}"),
    )
    .unwrap();
    path
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn service_name(resource: Option<&Resource>) -> Option<&str> {
    string_attr(&resource?.attributes, "service.name")
}

fn start_serve(data: &std::path::Path, config: &std::path::Path) -> Node {
    Node::start_in(data, "serve", &["--config", config.to_str().unwrap()], &[])
}

#[test]
fn request_spans_and_request_metrics_reach_an_otlp_receiver() {
    let receiver = OtlpReceiver::start(true);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "otlp_endpoint = \"http://{}\"\nservice_name = \"shiplog-otlp-test\"\nexport_interval = \"500ms\"\n",
            receiver.addr
        ),
    );
    let mut node = start_serve(&dir.path().join("data"), &config);
    let (status, _) = node.ingest(
        b"{\"message\":\"hello otlp\",\"service\":\"web\"}\n".to_vec(),
        None,
    );
    assert_eq!(status, 200, "{}", node.log());
    for _ in 0..3 {
        let (status, _) = node.search(&[("q", "hello")]);
        assert_eq!(status, 200);
    }

    // Traces: a server span per request, named after the route, on the configured service.
    let span = wait_for(
        "a span for GET /api/v1/search",
        Duration::from_secs(20),
        || {
            receiver.posts("/v1/traces").into_iter().find_map(|post| {
                assert_eq!(post.content_type, "application/x-protobuf");
                let req = ExportTraceServiceRequest::decode(post.body.as_slice())
                    .expect("a protobuf ExportTraceServiceRequest");
                req.resource_spans.into_iter().find_map(|rs| {
                    assert_eq!(
                        service_name(rs.resource.as_ref()),
                        Some("shiplog-otlp-test")
                    );
                    rs.scope_spans
                        .into_iter()
                        .flat_map(|ss| ss.spans)
                        .find(|s| {
                            string_attr(&s.attributes, "http.route") == Some("/api/v1/search")
                        })
                })
            })
        },
    );
    assert_eq!(span.name, "GET /api/v1/search");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        string_attr(&span.attributes, "http.request.method"),
        Some("GET")
    );
    let status = span
        .attributes
        .iter()
        .find(|kv| kv.key == "http.response.status_code")
        .and_then(|kv| kv.value.clone());
    assert!(
        matches!(
            status,
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(200))
            })
        ),
        "{status:?}"
    );
    assert_eq!(span.trace_id.len(), 16);

    // Metrics: the request counter per route (3 searches) and the ingest counter, with the
    // resource's service.name.
    let (requests, events) = wait_for(
        "request and ingest counts in an OTLP metrics export",
        Duration::from_secs(20),
        || {
            let last = receiver.posts("/v1/metrics").pop()?;
            assert_eq!(last.content_type, "application/x-protobuf");
            let req = ExportMetricsServiceRequest::decode(last.body.as_slice())
                .expect("a protobuf ExportMetricsServiceRequest");
            let mut requests = 0;
            let mut events = 0;
            for rm in req.resource_metrics {
                assert_eq!(
                    service_name(rm.resource.as_ref()),
                    Some("shiplog-otlp-test")
                );
                for m in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                    let Some(metric::Data::Sum(sum)) = m.data else {
                        continue;
                    };
                    for p in sum.data_points {
                        let value = match p.value {
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
                            _ => continue,
                        };
                        if m.name == "shiplog.http.requests"
                            && string_attr(&p.attributes, "http.route") == Some("/api/v1/search")
                        {
                            assert!(sum.is_monotonic);
                            requests += value;
                        }
                        if m.name == "shiplog.ingest.events" {
                            events += value;
                        }
                    }
                }
            }
            (requests >= 3 && events >= 1).then_some((requests, events))
        },
    );
    assert_eq!(requests, 3);
    assert_eq!(events, 1);
    let histogram = receiver.posts("/v1/metrics").iter().any(|post| {
        let req = ExportMetricsServiceRequest::decode(post.body.as_slice()).unwrap();
        req.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .any(|m| {
                m.name == "shiplog.http.request.duration"
                    && matches!(&m.data, Some(metric::Data::Histogram(h))
                        if h.data_points.iter().any(|p| p.count >= 3))
            })
    });
    assert!(histogram, "no latency histogram with the searches in it");

    let started = Instant::now();
    assert!(node.stop().success(), "{}", node.log());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!node.log().contains("OTLP export failed"), "{}", node.log());
}

#[test]
fn a_receiver_that_is_down_costs_one_warning_and_no_request_time() {
    // A port nobody listens on: every export is refused at once.
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!("otlp_endpoint = \"http://{down}\"\nexport_interval = \"100ms\"\n"),
    );
    let mut node = start_serve(&dir.path().join("data"), &config);
    let started = Instant::now();
    for _ in 0..20 {
        let (status, _) = node.search(&[("q", "anything")]);
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Many failed exports by now (every 100 ms for metrics), one warning per signal.
    wait_for("the export warnings", Duration::from_secs(10), || {
        let log = node.log();
        (log.contains("/v1/metrics") && log.contains("/v1/traces")).then_some(())
    });
    let stopped = Instant::now();
    assert!(node.stop().success(), "{}", node.log());
    assert!(stopped.elapsed() < Duration::from_secs(15));
    let log = node.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("OTLP export failed"))
        .count();
    assert_eq!(warnings, 2, "one warning per signal expected:\n{log}");
}

#[test]
fn a_receiver_that_never_answers_delays_shutdown_by_a_bounded_time() {
    let receiver = OtlpReceiver::start(false);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "otlp_endpoint = \"http://{}\"\nexport_interval = \"200ms\"\n",
            receiver.addr
        ),
    );
    let mut node = start_serve(&dir.path().join("data"), &config);
    let started = Instant::now();
    for _ in 0..5 {
        let (status, _) = node.search(&[("q", "anything")]);
        assert_eq!(status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited on the exporter"
    );
    wait_for("an export to hang", Duration::from_secs(10), || {
        (!receiver.posts("/v1/metrics").is_empty()).then_some(())
    });
    let stopped = Instant::now();
    assert!(node.stop().success(), "{}", node.log());
    // Drain, then at most the exporter's 5 s shutdown bound (plus process teardown).
    assert!(
        stopped.elapsed() < Duration::from_secs(12),
        "shutdown took {:?}:\n{}",
        stopped.elapsed(),
        node.log()
    );
}
