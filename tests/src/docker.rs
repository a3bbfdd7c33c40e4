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
        let name = format!("{name_prefix}-{}-{}", std::process::id(), unique());
        let out = run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "shiplog.test=1",
            test_image(),
            "sh",
            "-c",
            script,
        ]);
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Container { name, id }
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
