//! Support for shiplog's end-to-end tests: real `shiplog` processes on loopback ports,
//! real Docker containers from a locally built `FROM scratch` image, temporary data dirs.
//!
//! Tests that need Docker call [`docker_or_skip`]: under `CI=true` a missing engine fails
//! the test; elsewhere the test prints that it was skipped and passes.

pub mod docker;
pub mod node;
pub mod process;
pub mod receiver;

pub use docker::{Container, docker_or_skip, test_image};
pub use node::Node;
pub use receiver::Receiver;

/// The instance of container `id` in service `service` of a `GET /api/v1/services` answer,
/// if listed.
pub fn service_instance(
    services: &serde_json::Value,
    service: &str,
    id: &str,
) -> Option<serde_json::Value> {
    services["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == service)?["instances"]
        .as_array()?
        .iter()
        .find(|i| i["container_id"] == id)
        .cloned()
}

/// Path of the `shiplog` binary under test: `SHIPLOG_BIN`, else the workspace's
/// `target/debug/shiplog` (the test script builds it before the suite runs).
pub fn shiplog_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("SHIPLOG_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/shiplog");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p shiplog` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}
