//! The terminal UI end to end: the real `shiplog tui` binary in a real terminal (a private
//! tmux server, driven with `send-keys` and read with `capture-pane`) against a real
//! `shiplog up` following a real container (and a prediction posted to it). Timings are printed, never asserted.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shiplog_tests::{Container, Node, docker_or_skip, shiplog_bin};

/// A tmux server of our own (its own socket), killed on drop and its socket file removed
/// so nothing is left behind.
struct Tmux {
    socket: String,
    socket_path: Option<String>,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux {args:?}: {e}"))
    }

    /// Starts `command` in a detached 160x48 session named `tui`.
    fn start(command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: format!("shiplog-e2e-{}", std::process::id()),
            socket_path: None,
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            "160",
            "-y",
            "48",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = tmux
            .run(&["display-message", "-p", "#{socket_path}"])
            .stdout;
        let path = String::from_utf8_lossy(&path).trim().to_string();
        tmux.socket_path = (!path.is_empty()).then_some(path);
        tmux
    }

    /// Sends keys by tmux name (`Enter`, `q`) one argument each.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "tui", "-l", text])
                .status
                .success(),
            "send-keys -l {text}"
        );
    }

    /// The visible screen as text.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned()
    }

    /// Polls the screen until `check` holds; panics with the screen after `limit`.
    fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if check(&screen) {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!("timed out after {limit:?} waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        // tmux leaves the socket file behind when its server is killed.
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn tmux_or_skip(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: tmux is missing, and CI=true requires it");
    }
    eprintln!("SKIPPED {test}: tmux is missing (scripts/test.sh installs it)");
    false
}

#[test]
fn the_tui_tails_searches_and_lists_a_container_and_restores_the_terminal() {
    let test = "the_tui_tails_searches_and_lists_a_container";
    if !docker_or_skip(test) || !tmux_or_skip(test) {
        return;
    }
    let node = Node::start(&[], &[]);
    // One word, so the query language reads it as one term.
    let marker = format!("tuimarker{}x", std::process::id());
    let c = Container::sh(
        "tui",
        &format!("i=0; while true; do echo \"{marker} line $i\"; i=$((i+1)); sleep 0.5; done"),
    );
    // The shell around the TUI reports how it exited and the terminal modes afterwards, and
    // stays open so the pane can still be read.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run-tui.sh");
    std::fs::write(
        &script,
        format!(
            "'{}' tui --url '{}'\necho \"TUI-EXITED $?\"\n\
             stty -a | tr ' ;' '\\n\\n' | grep -x -e '-\\{{0,1\\}}icanon' -e '-\\{{0,1\\}}echo' | tr '\\n' ' '\n\
             echo\nsleep 600\n",
            shiplog_bin().display(),
            node.url
        ),
    )
    .unwrap();
    let command = format!("sh {}", script.display());
    let tmux = Tmux::start(&command);

    // Tail: the container's line shows up live.
    let took = tmux.wait_for(Duration::from_secs(60), "the line in Tail", |s| {
        s.contains(&marker) && s.contains("● live")
    });
    eprintln!(
        "line on the Tail screen {:.0} ms after start",
        took.as_secs_f64() * 1e3
    );
    let screen = tmux.screen();
    assert!(screen.contains("1 Tail"), "{screen}");
    assert!(screen.contains("FOLLOW"), "{screen}");

    // Search: once the server has the line indexed (the tail is faster than the index
    // commit), type the marker, run it, see a hit.
    node.wait_until(Duration::from_secs(30), "the line to be searchable", || {
        let (_, v) = node.search(&[("q", marker.as_str()), ("limit", "1")]);
        v["total"].as_u64().is_some_and(|n| n > 0)
    });
    tmux.keys(&["2"]);
    tmux.wait_for(Duration::from_secs(10), "the Search view", |s| {
        s.contains("hits over time")
    });
    tmux.keys(&["/"]);
    tmux.type_text(&marker);
    tmux.keys(&["Enter"]);
    let took = tmux.wait_for(Duration::from_secs(30), "a search hit", |s| {
        s.lines()
            .any(|l| l.contains(&marker) && l.contains(" line ") && !l.starts_with("query"))
            && s.contains(" hits · page 1")
    });
    eprintln!(
        "search hit on screen {:.0} ms after Enter",
        took.as_secs_f64() * 1e3
    );
    let screen = tmux.screen();
    assert!(!screen.contains(" 0 hits"), "{screen}");

    // Services: the container is listed (service = container name without compose labels).
    tmux.keys(&["3"]);
    let prefix = format!("tui-{}-", std::process::id());
    let took = tmux.wait_for(Duration::from_secs(60), "the container in Services", |s| {
        s.lines()
            .any(|l| l.contains(&prefix) && l.contains("started"))
    });
    eprintln!(
        "container listed in Services after {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    let screen = tmux.screen();
    let row = screen
        .lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_default();
    assert!(row.contains("shiplog-test-busybox"), "{screen}");

    // Predictions: a record posted to the node shows up under its model, with its request id.
    let model = format!("e2emodel{}", std::process::id());
    let record = serde_json::json!({"model": model, "model_version": "v1",
        "request_id": format!("req-{model}"), "latency_ms": 12.5, "status": "ok",
        "input": {"x": 1}, "output": {"y": 2}});
    let resp = node
        .http()
        .post(format!("{}/api/v1/predictions", node.url))
        .header("content-type", "application/x-ndjson")
        .body(record.to_string())
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    node.wait_until(
        Duration::from_secs(30),
        "the prediction in the summary",
        || {
            let resp = node
                .http()
                .get(format!("{}/api/v1/predictions/summary?since=1h", node.url))
                .send()
                .unwrap();
            resp.text().unwrap_or_default().contains(&model)
        },
    );
    tmux.keys(&["5"]);
    tmux.keys(&["r"]);
    let took = tmux.wait_for(Duration::from_secs(30), "the model in Predictions", |s| {
        s.contains(&model) && s.contains(&format!("req-{model}"))
    });
    eprintln!("prediction listed after {:.0} ms", took.as_secs_f64() * 1e3);

    // Quit: the shell gets the normal screen back, in cooked mode with echo.
    tmux.keys(&["q"]);
    // The shell prints the exit status, then the terminal modes: wait for both, as the
    // screen can be read between the two.
    tmux.wait_for(Duration::from_secs(10), "the TUI to exit", |s| {
        s.contains("TUI-EXITED") && s.contains("icanon")
    });
    let screen = tmux.screen();
    assert!(screen.contains("TUI-EXITED 0"), "{screen}");
    let modes = screen
        .lines()
        .find(|l| l.contains("icanon"))
        .unwrap_or_else(|| panic!("no terminal modes printed:\n{screen}"));
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "still in raw mode: {modes}");
    assert!(words.contains(&"echo"), "echo still off: {modes}");
    // The alternate screen is gone: the TUI's tab bar is no longer on screen.
    assert!(!screen.contains("1 Tail  2 Search"), "{screen}");
    drop(c);
}

#[test]
fn a_terminated_tui_restores_the_terminal_and_dies_of_the_signal() {
    let test = "a_terminated_tui_restores_the_terminal";
    if !tmux_or_skip(test) {
        return;
    }
    // No server needed: the TUI starts and shows the tail reconnecting. The inner shell
    // writes its pid and becomes the TUI, so the test knows whom to signal.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("tui.pid");
    let script = dir.path().join("run-tui.sh");
    std::fs::write(
        &script,
        format!(
            "sh -c 'echo $$ > \"{}\"; exec \"{}\" tui --url http://127.0.0.1:9'\n\
             echo \"TUI-EXITED $?\"\n\
             stty -a | tr ' ;' '\\n\\n' | grep -x -e '-\\{{0,1\\}}icanon' -e '-\\{{0,1\\}}echo' | tr '\\n' ' '\n\
             echo\nsleep 600\n",
            pidfile.display(),
            shiplog_bin().display(),
        ),
    )
    .unwrap();
    let tmux = Tmux::start(&format!("sh {}", script.display()));
    tmux.wait_for(Duration::from_secs(30), "the TUI's tab bar", |s| {
        s.contains("1 Tail")
    });
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}");
    // The shell prints the exit status, then the terminal modes: wait for both, as the
    // screen can be read between the two.
    tmux.wait_for(Duration::from_secs(10), "the TUI to exit", |s| {
        s.contains("TUI-EXITED") && s.contains("icanon")
    });
    let screen = tmux.screen();
    // 128 + 15: the shell saw the process end by SIGTERM, after it restored the terminal.
    assert!(screen.contains("TUI-EXITED 143"), "{screen}");
    let modes = screen
        .lines()
        .find(|l| l.contains("icanon"))
        .unwrap_or_else(|| panic!("no terminal modes printed:\n{screen}"));
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "still in raw mode: {modes}");
    assert!(words.contains(&"echo"), "echo still off: {modes}");
    assert!(!screen.contains("1 Tail  2 Search"), "{screen}");
}
