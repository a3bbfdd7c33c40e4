//! Finding our own container, so the collector does not collect its own log lines (which
//! would feed back: every line it logs about shipping would be shipped, and logged again).

use std::path::Path;

/// The id (or id prefix, at least 12 hex digits) of the container we run in, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnContainer {
    id: Option<String>,
}

impl OwnContainer {
    /// Best effort: `SHIPLOG_CONTAINER_ID`, else the cgroup path, else (inside a container)
    /// the bind mounts Docker makes for `/etc/hostname` and friends, else a Docker-style
    /// host name.
    pub fn detect() -> Self {
        if let Ok(id) = std::env::var("SHIPLOG_CONTAINER_ID") {
            return OwnContainer::with_id(&id);
        }
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        if let Some(id) = id_from_cgroup(&read("/proc/self/cgroup")) {
            return OwnContainer { id: Some(id) };
        }
        // Outside a container the host's mount table lists every container's directories,
        // so only read it from inside one.
        if !Path::new("/.dockerenv").exists() {
            return OwnContainer::default();
        }
        if let Some(id) = id_from_mountinfo(&read("/proc/self/mountinfo")) {
            return OwnContainer { id: Some(id) };
        }
        let hostname = read("/proc/sys/kernel/hostname");
        OwnContainer::with_id(hostname.trim())
    }

    /// Our container given explicitly; ignored unless it looks like a container id.
    pub fn with_id(id: &str) -> Self {
        let id = id.trim().to_ascii_lowercase();
        let plausible = id.len() >= 12 && id.len() <= 64 && is_hex(&id);
        OwnContainer {
            id: plausible.then_some(id),
        }
    }

    /// Whether `container_id` (full) is ours.
    pub fn is(&self, container_id: &str) -> bool {
        self.id
            .as_deref()
            .is_some_and(|own| container_id.starts_with(own))
    }

    /// The id we believe is ours, for the log.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A 64-hex-digit token in a cgroup path (`/docker/<id>`, `docker-<id>.scope`).
fn id_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.split(['/', '-', '.']))
        .find(|token| token.len() == 64 && is_hex(token))
        .map(str::to_string)
}

/// The id in the source of the `/etc/hostname` (or hosts, resolv.conf) bind mount, which
/// Docker keeps under `.../containers/<id>/`.
fn id_from_mountinfo(text: &str) -> Option<String> {
    text.lines()
        .filter(|line| {
            let mount_point = line.split(' ').nth(4).unwrap_or_default();
            matches!(
                mount_point,
                "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
            )
        })
        .filter_map(|line| line.split(' ').nth(3))
        .filter_map(|root| {
            let (_, after) = root.split_once("/containers/")?;
            after.split('/').next()
        })
        .find(|token| token.len() == 64 && is_hex(token))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2a9e0b7d3c5a6e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

    #[test]
    fn finds_the_id_in_cgroup_v1_and_systemd_paths() {
        let v1 = format!("12:memory:/docker/{ID}\n0::/\n");
        assert_eq!(id_from_cgroup(&v1).as_deref(), Some(ID));
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(id_from_cgroup(&systemd).as_deref(), Some(ID));
        assert_eq!(id_from_cgroup("0::/\n"), None);
        assert_eq!(id_from_cgroup("garbage"), None);
    }

    #[test]
    fn finds_the_id_in_the_hostname_bind_mount() {
        let text = format!(
            "100 90 8:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(id_from_mountinfo(&text).as_deref(), Some(ID));
        let shm = format!("100 90 0:5 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs\n");
        assert_eq!(id_from_mountinfo(&shm), None);
    }

    #[test]
    fn matches_full_ids_by_prefix_and_ignores_implausible_ones() {
        let own = OwnContainer::with_id(&ID[..12]);
        assert!(own.is(ID));
        assert!(!own.is("0000000000000000"));
        assert_eq!(OwnContainer::with_id("vm"), OwnContainer::default());
        assert!(!OwnContainer::default().is(ID));
    }
}
