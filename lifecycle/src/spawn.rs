//! Start a program, capture what it prints, and always clean it up.
//!
//! A [`Proc`] owns one child process. Its stdout and stderr are read by two
//! threads into buffers that tests can wait on ("wait until the server has
//! printed its ready line"), never by sleeping. Dropping a `Proc` that is
//! still running kills it and every descendant it left, and reaps them, so
//! a failing test leaves nothing behind.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::procfs;

/// Bytes read from one pipe, growing until the pipe closes.
#[derive(Default)]
pub struct Capture {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
    /// The program wrote more than [`Capture::LIMIT`].
    flooded: std::sync::atomic::AtomicBool,
}

impl Capture {
    /// The most we keep of one program's output: the largest echo a check
    /// asks for (10 MB) and room to spare. A program that writes more (a
    /// student's loop printing forever) has its pipe closed under it: its
    /// next write fails with EPIPE, or SIGPIPE ends it, and the harness's
    /// memory stays bounded.
    pub const LIMIT: usize = 32 << 20;

    fn start(mut pipe: impl Read + Send + 'static) -> Arc<Capture> {
        let capture = Arc::new(Capture::default());
        let writer = Arc::clone(&capture);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let mut state = writer.state.lock().unwrap();
                let room = Capture::LIMIT - state.0.len();
                if n == 0 || n > room {
                    if n > room {
                        state.0.extend_from_slice(&buf[..room]);
                        writer
                            .flooded
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    state.1 = true;
                    writer.grew.notify_all();
                    return;
                }
                state.0.extend_from_slice(&buf[..n]);
                writer.grew.notify_all();
            }
        });
        capture
    }

    /// Did the program write more than [`Capture::LIMIT`] (and so lose
    /// its pipe)?
    pub fn flooded(&self) -> bool {
        self.flooded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Everything captured so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.lock().unwrap().0.clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Complete lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        let text = self.text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_string).collect()
    }

    /// Wait until `found` returns Some for the captured lines, or time out.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&[String]) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&state.0);
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            let lines: Vec<String> = complete.lines().map(str::to_string).collect();
            if let Some(value) = found(&lines) {
                return Ok(value);
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                let why = if state.1 {
                    "the output ended"
                } else {
                    "timed out"
                };
                bail!(
                    "{why} after {:.1?} waiting for {what}; output so far:\n{}",
                    timeout.saturating_sub(deadline.saturating_duration_since(now)),
                    tail(&text, 30)
                );
            }
            state = self.grew.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Wait until the pipe is closed (the program exited or closed it).
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.grew.wait_timeout(state, deadline - now).unwrap().0;
        }
        true
    }
}

/// The last `n` lines of a text, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a child process reads on stdin.
pub enum Input<'a> {
    /// A pipe the test writes to (and closes) itself.
    Pipe,
    /// A file, opened for it: batch mode, `prog < file`.
    File(&'a Path),
    /// Nothing: /dev/null.
    Null,
}

/// A running program under test.
pub struct Proc {
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Arc<Capture>,
    pub stderr: Arc<Capture>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(
        program: &Path,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        input: Input<'_>,
    ) -> Result<Proc> {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(command, input)
    }

    pub fn spawn_command(command: Command, input: Input<'_>) -> Result<Proc> {
        Self::spawn_with(command, input, false)
    }

    /// Start `command` as a person would in a terminal: stdout and stderr
    /// through one pipe, so the lines come in the order the program wrote
    /// them (what `stdout` captures; `stderr` stays empty), stdin a pipe,
    /// and a process group of its own, so that [`Proc::interrupt`] reaches
    /// a whole pipeline, as Ctrl-C does.
    pub fn spawn_terminal(mut command: Command) -> Result<Proc> {
        command.process_group(0);
        Self::spawn_with(command, Input::Pipe, true)
    }

    fn spawn_with(mut command: Command, input: Input<'_>, merged: bool) -> Result<Proc> {
        let label = format!("{command:?}");
        let stdin = match input {
            Input::Pipe => Stdio::piped(),
            Input::File(path) => Stdio::from(
                std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
            ),
            Input::Null => Stdio::null(),
        };
        command.stdin(stdin);
        let mut merged_output = None;
        if merged {
            // O_CLOEXEC: only the descriptors 1 and 2 made from it reach
            // the program; a stray copy of either end would show up as its
            // descriptor 3 (and keep the pipe open after it exits).
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            command
                .stdout(Stdio::from(write.try_clone()?))
                .stderr(Stdio::from(write));
            merged_output = Some(std::fs::File::from(read));
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        // SAFETY: the closure runs in the forked child before exec and calls
        // only prctl(2), sigemptyset(3) and sigprocmask(2): async-signal-safe,
        // touching only a local signal set.
        unsafe {
            command.pre_exec(|| {
                // If the harness dies (even by SIGKILL), the kernel sends the
                // program SIGTERM: no server outlives a killed test run.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // The signal mask survives exec: the lifecycle binary blocks
                // SIGINT/SIGTERM in its threads, the programs must not inherit that.
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child =
            spawn_tracked(&mut command).with_context(|| format!("cannot start {label}"))?;
        let (stdout, stderr) = match merged_output {
            Some(output) => {
                // Our copies of the write end must go, or the reader would
                // never see the end of the output.
                drop(command);
                (Capture::start(output), Capture::start(std::io::empty()))
            }
            None => (
                Capture::start(child.stdout.take().context("stdout")?),
                Capture::start(child.stderr.take().context("stderr")?),
            ),
        };
        Ok(Proc {
            label,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Write to the program's stdin (it must have been spawned with `Input::Pipe`).
    pub fn write_stdin(&mut self, bytes: &[u8]) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("stdin is not a pipe, or closed")?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// Write all of `bytes` to stdin from a thread, then close it: for inputs
    /// larger than a pipe holds, while the program's output is being read.
    pub fn feed_stdin(&mut self, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
        let stdin = self.stdin.take();
        std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&bytes);
            }
        })
    }

    /// Close the program's stdin: it reads EOF.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid()), signal)?;
        }
        Ok(())
    }

    /// Send `signal` to the program's process group (Ctrl-C is SIGINT to
    /// the terminal's foreground group); see [`Proc::spawn_terminal`].
    pub fn interrupt(&self, signal: Signal) -> Result<()> {
        if self.status.is_none() {
            kill(Pid::from_raw(-self.pid()), signal)?;
        }
        Ok(())
    }

    /// Has it exited? (Reaps it if so.)
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_some() {
                crate::interrupt::untrack(self.pid());
            }
        }
        self.status
    }

    /// Wait for the program to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(status) = crate::wait::within(timeout, || self.try_status()) else {
            bail!(
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.label,
                tail(&self.stderr.text(), 20)
            );
        };
        // The pipes close at exit; let the readers catch up.
        self.stdout.wait_closed(Duration::from_secs(5));
        self.stderr.wait_closed(Duration::from_secs(5));
        Ok(status)
    }

    /// Kill the program and everything it started at once (SIGKILL: no
    /// clean-up of its own), and reap them all.
    pub fn kill_tree(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        // Find the descendants first: once their parent dies they are
        // reparented (to us, if we are a subreaper) and harder to find.
        let descendants = procfs::descendants(self.pid());
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait().map(|s| self.status = Some(s));
        crate::interrupt::untrack(self.pid());
        finish_off(self.pid(), &descendants);
    }
}

/// The processes of a tree that outlived its root: SIGKILL to each that
/// is still the process we saw (its parent is still one of the tree, or
/// it was adopted by us or by init: not a new process that got a recycled
/// pid), then collect those that came to us as subreaper, briefly.
///
/// socat's and ncat's per-connection processes outlive a listener that
/// exits on SIGTERM; a pair of them deadlocked on full pipes never ends.
fn finish_off(root: i32, descendants: &[procfs::Stat]) {
    let tree: std::collections::HashSet<i32> = std::iter::once(root)
        .chain(descendants.iter().map(|p| p.pid))
        .collect();
    let me = std::process::id() as i32;
    for p in descendants {
        let same = procfs::info(p.pid).is_some_and(|now| {
            now.state != 'Z' && (tree.contains(&now.ppid) || now.ppid == me || now.ppid == 1)
        });
        if same {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for p in descendants {
        // Reaped, or not our child (init has it): either way done.
        crate::wait::by(deadline, || {
            match waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => None,
                _ => Some(()),
            }
        });
    }
}

/// Held while a child is started and recorded, and while the orphan
/// reaper looks: a child we started is always recorded before the reaper
/// can see it.
static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Start `command` and record its pid (for Ctrl-C, and so that the orphan
/// reaper leaves it to its owner). Every child of a program that runs
/// [`reap_adopted_orphans`] must be started this way.
pub fn spawn_tracked(command: &mut Command) -> std::io::Result<Child> {
    let _spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
    let child = command.spawn()?;
    crate::interrupt::track(child.id() as i32);
    Ok(child)
}

/// Run `command` to completion (tracked, see [`spawn_tracked`]).
pub fn status_tracked(command: &mut Command) -> std::io::Result<ExitStatus> {
    output_tracked(command).map(|out| out.status)
}

/// Run `command` to completion, its stdout captured unless it was
/// redirected already (tracked, see [`spawn_tracked`]).
pub fn output_tracked(command: &mut Command) -> std::io::Result<std::process::Output> {
    let child = spawn_tracked(command)?;
    let pid = child.id() as i32;
    let output = child.wait_with_output();
    crate::interrupt::untrack(pid);
    output
}

/// As a subreaper (`procfs::become_subreaper`) we inherit the orphans of
/// the servers we start: socat's `cat`, left running when its socat child
/// exits, comes to us, and when it exits it is our zombie. Nobody else
/// will wait() for it; this thread does, every 20 ms, for each exited
/// child of ours that we did not start ourselves.
///
/// waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT) names one exited child
/// without collecting it (wait(2)): an orphan is then collected with
/// waitpid(pid), and the next one named. A child we started is left for
/// its owner's wait(); as the kernel names that same child until it is
/// collected, the orphans behind it are looked up in /proc instead
/// ([`procfs::zombie_children`]: /proc/self/task/TID/children, or a scan
/// of every process on kernels built without CONFIG_PROC_CHILDREN, as
/// this project's CI kernel is), at most twice a second: a benchmark
/// holding a thousand connections has two thousand processes to scan. No
/// exited child at all, the usual case, costs one system call.
pub fn reap_adopted_orphans() {
    std::thread::spawn(|| {
        let me = std::process::id() as i32;
        let mut scanned = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let _spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
            let ours = crate::interrupt::live();
            while let Some(pid) = exited_child() {
                if ours.contains(&pid) {
                    if scanned.elapsed() < Duration::from_millis(500) {
                        break;
                    }
                    scanned = Instant::now();
                    for orphan in procfs::zombie_children(me) {
                        if !ours.contains(&orphan) {
                            let _ = waitpid(Pid::from_raw(orphan), Some(WaitPidFlag::WNOHANG));
                        }
                    }
                    break;
                }
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
    });
}

/// One exited child of ours, not yet collected (WNOWAIT leaves it
/// waitable): the first the kernel finds on its list, or `None`.
fn exited_child() -> Option<i32> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let status = nix::sys::wait::waitid(nix::sys::wait::Id::All, flags).ok()?;
    status.pid().map(Pid::as_raw)
}

/// How long a program gets to clean up after SIGTERM (a lab removing its
/// namespaces, an observer its tracefs instance) before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

impl Proc {
    /// Ask the program to stop (SIGTERM) and give it `GRACE` to clean up
    /// after itself; then kill whatever is left, of it and of the
    /// processes it had started. A client dies at once, a server reaps its
    /// children, a lab removes its namespaces.
    pub fn stop_tree(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        let descendants = procfs::descendants(self.pid());
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        if crate::wait::within(GRACE, || self.try_status()).is_none() {
            self.kill_tree();
        } else {
            finish_off(self.pid(), &descendants);
        }
    }
}

impl Drop for Proc {
    /// A test that fails half-way still leaves nothing behind.
    fn drop(&mut self) {
        self.stop_tree();
    }
}
