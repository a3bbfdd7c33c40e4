//! Docker helpers: engine detection, the test image, containers removed on drop.

use std::process::{Command, Output};
use std::sync::OnceLock;

/// Tag of the test image: Debian's static busybox in an otherwise empty image.
pub const TEST_IMAGE: &str = "shiplog-test-busybox:latest";

fn run(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// Runs `docker args` and returns its trimmed stdout; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True when a Docker engine answers. Without one: panics under `CI=true`, otherwise
/// prints a loud skip notice and returns false.
pub fn docker_or_skip(test: &str) -> bool {
    if engine_answers() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: no Docker engine answers, and CI=true requires one");
    }
    eprintln!("SKIPPED {test}: no Docker engine answers (set up Docker to run this test)");
    false
}

/// Builds the test image once per test process (idempotent across processes).
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox is missing: install Debian's busybox-static (scripts/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
        )
        .unwrap();
        let out = run(&[
            "build",
            "-q",
            "-t",
            TEST_IMAGE,
            dir.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TEST_IMAGE
}

/// A container that is removed (forcibly) when dropped.
pub struct Container {
    /// Its name.
    pub name: String,
    /// Its full id.
    pub id: String,
}

impl Container {
    /// Starts a detached container from the test image running `sh -c script`.
    pub fn sh(name_prefix: &str, script: &str) -> Container {
        Container::run(&Container::unique_name(name_prefix), &[], script)
    }

    /// A container name no other test process uses: `prefix-<pid>-<counter>`.
    pub fn unique_name(prefix: &str) -> String {
        format!("{prefix}-{}-{}", std::process::id(), unique())
    }

    /// Starts a detached container named exactly `name` (so a test can create one again
    /// under the same name) with extra `docker run` options, running `sh -c script` from
    /// the test image. It carries the `shiplog.test=1` label like every test container.
    pub fn run(name: &str, options: &[&str], script: &str) -> Container {
        let mut args = vec!["run", "-d", "--name", name, "--label", "shiplog.test=1"];
        args.extend_from_slice(options);
        args.extend([test_image(), "sh", "-c", script]);
        let id = docker(&args);
        Container {
            name: name.to_string(),
            id,
        }
    }

    /// Waits for the container to exit and returns its exit code.
    pub fn wait(&self) -> i32 {
        let out = run(&["wait", &self.id]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}
