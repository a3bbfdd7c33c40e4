//! Registrations end to end: a real `shiplog up`, a real container with Registrator-style
//! settings, the catalog behind `GET /api/v1/services`. Timings are printed, never
//! asserted.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_tests::docker::docker;
use shiplog_tests::{Node, docker_or_skip, test_image};

/// Removes the container however the test ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn get(node: &Node, path: &str) -> (u16, Value) {
    let resp = node
        .http()
        .get(format!("{}{path}", node.url))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The instance of container `id` in service `service`, if listed.
fn instance(node: &Node, service: &str, id: &str) -> Option<Value> {
    let (_, v) = get(node, "/api/v1/services");
    shiplog_tests::service_instance(&v, service, id)
}

#[test]
fn a_container_with_service_settings_is_listed_and_its_state_follows_docker_stop() {
    if !docker_or_skip("a_container_with_service_settings_is_listed") {
        return;
    }
    let node = Node::start(&[], &[]);
    let service = format!("demo-{}", std::process::id());
    let name = format!("shiplog-e2e-svc-{}", std::process::id());
    let env_name = format!("SERVICE_NAME={service}");
    let started = Instant::now();
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "shiplog.test=1",
        "-e",
        &env_name,
        "-e",
        "SERVICE_TAGS=a,b",
        "--expose",
        "8080",
        "-p",
        "127.0.0.1::8080",
        test_image(),
        "sh",
        "-c",
        "trap 'exit 3' TERM; while true; do sleep 0.2; done",
    ]);
    let _remove = Remove(id.clone());

    let listed = node.wait_until(Duration::from_secs(60), "the service to be listed", || {
        instance(&node, &service, &id).is_some()
    });
    eprintln!(
        "listed in /api/v1/services {:.0} ms after docker run returned (docker run took {:.0} ms)",
        listed.as_secs_f64() * 1e3,
        (started.elapsed() - listed).as_secs_f64() * 1e3
    );
    let running = instance(&node, &service, &id).unwrap();
    assert_eq!(running["state"], "started", "{running}");
    assert_eq!(running["container_name"], name);
    assert_eq!(running["tags"], serde_json::json!(["a", "b"]));
    assert!(running["since"].is_string(), "{running}");
    let ports = running["ports"].as_array().unwrap();
    let published = ports
        .iter()
        .find(|p| p["private"] == 8080 && p["public"].is_u64())
        .unwrap_or_else(|| panic!("no published 8080 in {running}"));
    assert_eq!(published["host_ip"], "127.0.0.1");
    assert_eq!(published["proto"], "tcp");
    let host_port = docker(&["port", &id, "8080/tcp"]);
    assert!(
        host_port.ends_with(&format!(":{}", published["public"])),
        "{host_port} vs {published}"
    );

    let stopping = Instant::now();
    docker(&["stop", "-t", "5", &id]);
    let changed = node.wait_until(Duration::from_secs(60), "the state to change", || {
        instance(&node, &service, &id).is_some_and(|i| i["state"] == "stopped")
    });
    eprintln!(
        "state stopped in the catalog {:.0} ms after docker stop returned",
        changed.as_secs_f64() * 1e3
    );
    let _ = stopping;
    let (status, detail) = get(&node, &format!("/api/v1/services/{service}"));
    assert_eq!(status, 200, "{detail}");
    let history: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert!(
        history.contains(&"died") && history.contains(&"started"),
        "{history:?}"
    );
    let died = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "died")
        .unwrap();
    assert_eq!(died["exit_code"], 3, "{died}");

    let (status, body) = get(&node, "/api/v1/services/no-such-service-here");
    assert_eq!(status, 404, "{body}");
}
