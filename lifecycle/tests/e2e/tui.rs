//! `observer tui` in a real terminal: tmux gives it a pseudo-terminal, keys
//! go in with `send-keys`, and the screen comes back with `capture-pane`.
//! What a class would see is what is checked: the connection's two ends
//! on the diagram, ESTABLISHED, then the teardown, then TIME_WAIT; `q`
//! quits with status 0 and the terminal's modes as they were.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifecycle::bins::binaries;
use lifecycle::echo::{Client, Server};
use lifecycle::spawn::Input;
use lifecycle::wait;

use crate::{TempDir, setup};

const T: Duration = Duration::from_secs(15);

/// A tmux server of our own (its own socket), removed when dropped, with
/// one session running `command` in a terminal of `width`x`height`.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `name` keeps tests that run at once apart (each its own server).
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let socket = format!("echo-lab-{name}-{}", std::process::id());
        let tmux = Tmux { socket };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "lesson"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .expect("tmux (apt-get install tmux) runs the tui in a terminal");
        assert!(status.success(), "tmux new-session: {status}");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        c
    }

    /// The screen, as text.
    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "lesson"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let _ = self
            .cmd()
            .args(["send-keys", "-t", "lesson", keys])
            .status();
    }

    /// Wait until the screen shows a line that satisfies `pred`.
    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        wait::within(T, || {
            last = self.screen();
            last.lines().any(&pred).then_some(())
        })
        .unwrap_or_else(|| panic!("the screen never showed {what}; it shows:\n{last}"));
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The shell line the pane runs: the terminal's modes before, the tui,
/// its exit status, the modes after.
fn script(dir: &Path, observer: &Path, args: &str) -> String {
    let d = dir.display();
    format!(
        "sh -c 'stty -g > {d}/before; {} {args}; echo $? > {d}/status; stty -g > {d}/after'",
        observer.display()
    )
}

fn read(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
}

/// A connection seen from the tui: its two ends reach ESTABLISHED, then
/// (the server holding CLOSE_WAIT) FIN_WAIT2 and CLOSE_WAIT, then the
/// client's end TIME_WAIT with its countdown; `q` exits 0 and restores
/// the terminal (stty -g before and after are the same).
#[test]
fn the_tui_shows_a_connection_from_established_to_time_wait() {
    setup();
    let bins = binaries().unwrap();
    let server = Server::start(&["--close-delay", "2s"]).unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!("echo-lab-tui-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let tmux = Tmux::start(
        "live",
        &script(
            &dir.0,
            &bins.observer,
            &format!("tui --port {}", server.port()),
        ),
        100,
        30,
    );
    tmux.wait_line("the listener on LISTEN", |l| l.contains("[LISTEN] L"));

    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    tmux.wait_line("both ends in ESTABLISHED", |l| {
        l.contains("[ESTABLISHED]") && l.contains("1c") && l.contains("1s")
    });

    // Ctrl-D: the client's FIN; the server holds CLOSE_WAIT for 2 s.
    client.proc.close_stdin();
    tmux.wait_line("the server's end in CLOSE_WAIT", |l| {
        l.contains("[CLOSE_WAIT] 1s")
    });
    tmux.wait_line("the client's end in FIN_WAIT2", |l| {
        l.contains("[FIN_WAIT2] 1c")
    });
    let screen = tmux.wait_line("the client's end in TIME_WAIT, counting down", |l| {
        l.contains("[TIME_WAIT] 1c 5") // 59s, 58s...
    });
    assert!(screen.contains("LIVE"), "{screen}");

    tmux.keys("q");
    let status = wait::within(T, || read(dir.0.join("status")))
        .unwrap_or_else(|| panic!("q did not end the tui; the screen:\n{}", tmux.screen()));
    assert_eq!(status.trim(), "0");
    let after = wait::within(T, || read(dir.0.join("after"))).unwrap();
    let before = read(dir.0.join("before")).unwrap();
    assert_eq!(before, after, "the terminal's modes were not restored");
    drop(client);
    let _ = server.stop();
}

/// A replay starts paused at the start; right steps one event, and the
/// status line counts them; the same keys give the same screen.
#[test]
fn a_replay_in_the_tui_steps_event_by_event_and_the_same_keys_give_the_same_screen() {
    setup();
    let bins = binaries().unwrap();
    let recording = crate::repo_root().join("tutorial/recordings/handshake-exact.jsonl");
    let dir = TempDir(std::env::temp_dir().join(format!("echo-lab-tui-r-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut screens = Vec::new();
    for _ in 0..2 {
        let tmux = Tmux::start(
            "replay",
            &script(
                &dir.0,
                &bins.observer,
                &format!("replay {} --tui", recording.display()),
            ),
            100,
            30,
        );
        tmux.wait_line("paused at the start", |l| {
            l.contains("PAUSED at event 0 of")
        });
        for _ in 0..6 {
            tmux.keys("Right");
        }
        let screen = tmux.wait_line("six events in", |l| l.contains("PAUSED at event 6 of"));
        tmux.keys("q");
        wait::within(T, || read(dir.0.join("status"))).expect("q ends the replay");
        let _ = std::fs::remove_file(dir.0.join("status"));
        screens.push(screen);
    }
    assert_eq!(screens[0], screens[1]);
}
