//! observer's entry point: parse the command line, run the command.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use echo_lab_cli::stop;
use echo_lab_cli::{at_least, between, duration, duration_between};
use observer::diag::{DiagSocket, Query};
use observer::render::Style;
use observer::source::replay;
use observer::tui::{self, app::App};
use observer::view::View;
use observer::view::record::{self, Header, Recorder};
use observer::view::text::TextView;
use observer::{explain, kernel_echo, lab, snapshot, tcp_state, watch};

const EXAMPLES: &str = "\
Examples:
  observer                          watch port 6666 live (the lesson's port)
  observer --port 7000 --json       the same for port 7000, as JSON lines
  observer snapshot --all           every TCP socket now, with owners (like ss -tanep)
  observer snapshot --state TIME_WAIT
  observer --pid 4100               also watch process 4100 and its children
  observer explain --port 6666      one dump, every byte sent and received, annotated
  observer explain --legacy         the seed's own request (TCPDIAG_GETSOCK), and what differs
  observer kernel-echo hi           the kernel sends our message back (inside NLMSG_ERROR)
  sudo observer lab                 two hosts, a 300 ms wire: every segment and state
  sudo observer lab --loss 30       the same, losing segments: retransmissions, RTO doubling
  sudo observer --exact --record hs.jsonl   every transition, kept in a file
  observer replay hs.jsonl          print a recording as the watch printed it
  observer replay hs.jsonl --speed 0.001   ...paced: 100 us of the recording take 100 ms
  observer tui                      the watch as a picture: the state diagram, live
  observer replay hs.jsonl --tui    step through a recording, arrow by arrow
  sudo observer lab --tui --pcap wire.pcap   the lab as a picture; its segments for Wireshark

Exit status: 0 when stopped (Ctrl-C, SIGTERM, --duration), 1 when the kernel
cannot be asked or a recording cannot be read (one line says why), 2 for a
usage error (a --record file that cannot be created included).";

const TUI_EXAMPLES: &str = "\
Examples:
  observer tui                      port 6666, live: the lesson's sockets on the diagram
  observer tui --port 7000 --pid 4100   port 7000, and process 4100's children
  sudo observer tui --exact         every transition from the tracepoint, even 100 us ones
  observer tui --record class.jsonl keep what was shown, for `observer replay`

Works from 80x24 up; NO_COLOR=1 draws it in one colour (seen, implied and
zombie still differ). Exit status: 0 on q, Ctrl-C or SIGTERM (the terminal
is restored), 1 when the kernel cannot be asked, 2 for a usage error (no
terminal, --json).";

const REPLAY_EXAMPLES: &str = "\
Examples:
  observer replay tutorial/recordings/handshake-exact.jsonl
                                    print it at once, as the watch printed it
  observer replay hs.jsonl --json   the same events as JSON lines
  observer replay hs.jsonl --speed 0.001   paced: 100 us of the recording take 100 ms
  observer replay hs.jsonl --tui    in the tui, paused at the first event: step with the arrows
  observer replay tutorial/recordings/lost-syn-lab.jsonl --tui --speed 0.5

Exit status: 0 when played to the end (or quit), 1 when the file cannot be
read (another format version, a damaged line: the line is named), 2 for a
usage error.";

const LAB_EXAMPLES: &str = "\
Examples:
  sudo observer lab                 two hosts, a 300 ms wire: every segment and state
  sudo observer lab --loss 30 --seed 7   losing segments: retransmissions, RTO doubling
  sudo observer lab --delay 50ms --duration 30s
  sudo observer lab --tui           the same as a picture: both hosts on the diagram, the ladder
  sudo observer lab --pcap wire.pcap   and tcpdump -r wire.pcap (or Wireshark) afterwards
  sudo observer lab --record lab.jsonl   for `observer replay lab.jsonl --tui`
  sudo observer lab exec client -- echo-client 10.66.0.2   run a program on a host

The lab removes its namespaces, its wire and its files when it ends (Ctrl-C,
SIGTERM, --duration). Exit status: 0 when stopped, 1 when the lab cannot be
built (no /dev/net/tun, a lab of that name already runs), 2 for a usage
error or without root.";

/// `observer tui --help` and `replay --help`: the examples, then the
/// same table of keys that `?` shows inside the tui (tui::draw::KEYS).
fn with_tui_keys(examples: &str) -> String {
    let keys: String = tui::draw::KEYS
        .iter()
        .map(|(key, what)| format!("\n  {key:<13} {what}"))
        .collect();
    format!("{examples}\n\nKeys:{keys}")
}

#[derive(Debug, Parser)]
#[command(
    name = "observer",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
/// observer: which TCP sockets exist, in which state, owned by whom, live.
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    watch: WatchArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch sockets and processes live: one line per change (the default).
    Watch(WatchArgs),
    /// One dump, as a table: state, queues, addresses, timer, uid, inode, owners.
    Snapshot(SnapshotArgs),
    /// Perform one dump and show every byte sent and received, annotated.
    Explain(ExplainArgs),
    /// Send the kernel a message it rejects: its answer carries a copy.
    KernelEcho(KernelEchoArgs),
    /// Root: two network namespaces joined by a slow wire; every segment and
    /// every state of both hosts on one timeline.
    #[command(after_help = LAB_EXAMPLES)]
    Lab(LabArgs),
    /// Play back a recording made with --record, as the watch printed it.
    #[command(after_help = with_tui_keys(REPLAY_EXAMPLES))]
    Replay(ReplayArgs),
    /// The watch as a picture: the state diagram with the real sockets on
    /// it, the timeline, the processes; pause and step through it.
    #[command(after_help = with_tui_keys(TUI_EXAMPLES))]
    Tui(WatchArgs),
}

#[derive(Debug, Clone, Args)]
struct ReplayArgs {
    /// The recording (`--record FILE` of the watch, `--exact` or the lab).
    file: std::path::PathBuf,
    /// One JSON object per line, as `--json` printed them.
    #[arg(long)]
    json: bool,
    /// Play at this speed instead of printing at once: 1 is real time,
    /// 0.001 turns 100 microseconds into 100 ms.
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    speed: Option<f64>,
    /// Show it in the tui, paused at the start: step through it event by
    /// event (left, right), or play it (space) at --speed.
    #[arg(long, conflicts_with = "json")]
    tui: bool,
}

/// `--speed`: a factor between a thousandth of a thousandth and a thousand.
fn parse_speed(text: &str) -> Result<f64, String> {
    let x: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (1e-6..=1000.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("`{text}` is not between 0.000001 and 1000"))
    }
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
struct LabArgs {
    #[command(subcommand)]
    command: Option<LabCommand>,
    /// One-way delay of the wire.
    #[arg(long, allow_hyphen_values = true, default_value = "300ms", value_parser = duration)]
    delay: Duration,
    /// Percent of TCP segments lost, to see retransmissions (RTO doubling).
    #[arg(long, default_value_t = 0.0, value_name = "PCT", value_parser = parse_percent)]
    loss: f64,
    /// Seed of the loss: the same seed loses the same segments.
    #[arg(long, default_value_t = 1, value_parser = at_least::<u64>(0))]
    seed: u64,
    /// Set net.ipv4.tcp_syn_linear_timeouts in the lab: how many SYN
    /// retransmissions wait a fixed 1 s before the timeout doubles (Linux
    /// 6.5+ defaults to 4; 0 gives the textbook 1 s, 2 s, 4 s...).
    #[arg(long, value_name = "N", value_parser = at_least::<u32>(0))]
    syn_linear_timeouts: Option<u32>,
    /// Name of the lab: its namespaces are NAME-client and NAME-server.
    #[arg(long, default_value = "echolab", value_parser = parse_lab_name)]
    name: String,
    /// How often to ask inet_diag in each namespace.
    #[arg(long, allow_hyphen_values = true, default_value = "10ms", value_parser = parse_interval)]
    interval: Duration,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Tear down after this long (e.g. 30s) instead of waiting for Ctrl-C.
    #[arg(long, allow_hyphen_values = true, value_parser = duration_between(MIN_DURATION, MAX_DURATION))]
    duration: Option<Duration>,
    /// Also write every event to FILE as JSON lines, for `observer replay`.
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// Also write every TCP segment that enters the wire to FILE, as a pcap
    /// capture (tcpdump -r FILE, Wireshark), with its real timestamp.
    #[arg(long, value_name = "FILE")]
    pcap: Option<std::path::PathBuf>,
    /// Show it as a picture: both hosts' sockets on the state diagram, the
    /// segments on the wire beside them.
    #[arg(long, conflicts_with = "json")]
    tui: bool,
}

#[derive(Debug, Clone, Subcommand)]
enum LabCommand {
    /// Run a command inside the lab's client or server namespace.
    Exec {
        #[arg(value_enum)]
        side: LabSide,
        /// The lab's name.
        #[arg(long, default_value = "echolab", value_parser = parse_lab_name)]
        name: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LabSide {
    Client,
    Server,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let pct: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if pct < 0.0 {
        return Err(format!("`{text}` must not be negative"));
    }
    if (0.0..=100.0).contains(&pct) {
        Ok(pct)
    } else {
        Err(format!("`{text}` is not between 0 and 100"))
    }
}

/// Namespace names become file names and interface-free labels: keep them
/// short and plain.
fn parse_lab_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 40
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}`: use letters, digits, - and _ (at most 40)"
        ))
    }
}

#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
struct ExplainArgs {
    /// Attach the port filter (bytecode) and show each instruction.
    #[arg(long, value_parser = between::<u16>(1, u16::MAX))]
    port: Option<u16>,
    /// Send the seed's request instead: TCPDIAG_GETSOCK, NLM_F_ROOT, the
    /// old struct inet_diag_req; and show what differs.
    #[arg(long)]
    legacy: bool,
    /// How many answer messages to annotate in full.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = at_least::<usize>(0))]
    max: usize,
    /// The same facts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Args)]
struct KernelEchoArgs {
    /// What to send (default: the classic NETLINK_TEST greeting), at most
    /// 65,499 bytes: the kernel's answer carries it back whole.
    #[arg(value_parser = echo_text)]
    message: Option<String>,
    /// The same facts as JSON.
    #[arg(long)]
    json: bool,
}

/// Which sockets.
#[derive(Debug, Clone, Args)]
struct Filter {
    /// Only sockets whose local or remote port is P (compiled to kernel
    /// bytecode: the kernel filters, we never see the rest).
    #[arg(long, default_value_t = echo_lab_cli::LESSON_PORT, value_parser = between::<u16>(1, u16::MAX))]
    port: u16,
    /// Every TCP socket, whatever its port.
    #[arg(long, conflicts_with = "port")]
    all: bool,
    /// Only these states, e.g. LISTEN,TIME_WAIT (kernel names; ss names work).
    #[arg(long, value_name = "S[,S..]", value_parser = parse_states)]
    state: Option<u32>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6_only")]
    ipv4_only: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    ipv6_only: bool,
    /// One JSON object per line instead of text (schema: observer/README.md).
    #[arg(long)]
    json: bool,
    /// Look inside this network namespace (`ip netns` name).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
}

fn parse_states(text: &str) -> Result<u32, String> {
    tcp_state::parse_state_list(text).map(|(_, mask)| mask)
}

impl Filter {
    fn query(&self) -> Query {
        Query {
            ipv4: !self.ipv6_only,
            ipv6: !self.ipv4_only,
            states: self.state.unwrap_or(Query::ALL_STATES),
            port: (!self.all).then_some(self.port),
            extensions: 0,
        }
    }
}

#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
struct WatchArgs {
    #[command(flatten)]
    filter: Filter,
    /// How often to ask the kernel: 10ms feels live; states shorter than
    /// this may be missed (the timeline says so when it happens).
    #[arg(long, allow_hyphen_values = true, default_value = "10ms", value_parser = parse_interval)]
    interval: Duration,
    /// Also watch this process (and its children); repeatable.
    #[arg(long = "pid", value_name = "PID", value_parser = live_pid)]
    pids: Vec<i32>,
    /// Stop after this long (e.g. 30s) instead of waiting for Ctrl-C.
    #[arg(long, allow_hyphen_values = true, value_parser = duration_between(MIN_DURATION, MAX_DURATION))]
    duration: Option<Duration>,
    /// Root: also read every state change from the kernel's tracepoint
    /// (sock:inet_sock_set_state), with the time spent in each state.
    #[arg(long)]
    exact: bool,
    /// Also write every event to FILE as JSON lines, for `observer replay`.
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
}

/// The sampling interval: from 100us (a dump takes about 1 ms, so less
/// only burns a core) to 60s.
fn parse_interval(text: &str) -> Result<Duration, String> {
    duration_between(Duration::from_micros(100), Duration::from_secs(60))(text)
}

/// `--duration`: 0 would end before the first look; a day is the most.
const MIN_DURATION: Duration = Duration::from_millis(1);
const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// `--pid`: a process that exists now (/proc/PID). 0 is not a process (to
/// kill(2) it means "my process group"), and one that does not exist would
/// be watched in silence.
fn live_pid(text: &str) -> Result<i32, String> {
    let pid = at_least::<i32>(1)(text)?;
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        Ok(pid)
    } else {
        Err(format!("`{pid}`: no such process"))
    }
}

/// `kernel-echo`'s text: refused before anything is sent if the answer
/// could not carry it back.
fn echo_text(text: &str) -> Result<String, String> {
    if text.len() > kernel_echo::MAX_TEXT {
        return Err(format!(
            "{} bytes is too long: the kernel's answer carries at most {} bytes of text back",
            text.len(),
            kernel_echo::MAX_TEXT
        ));
    }
    Ok(text.to_string())
}

#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
struct SnapshotArgs {
    #[command(flatten)]
    filter: Filter,
    /// Skip the /proc scan for owners (what ss does without -p): faster
    /// when processes hold many descriptors.
    #[arg(long)]
    no_owners: bool,
}

fn main() -> ExitCode {
    // A usage error is one line and exit status 2 (echo-lab-cli).
    let cli: Cli = match echo_lab_cli::parse("observer") {
        Ok(cli) => cli,
        Err(code) => return code,
    };

    let style = Style::detect();
    let result = match cli.command.unwrap_or(Command::Watch(cli.watch)) {
        Command::Watch(args) => return run_watch(args, style),
        Command::Snapshot(args) => run_snapshot(&args, style),
        Command::Explain(args) => {
            let options = explain::Options {
                port: args.port,
                legacy: args.legacy,
                max: args.max,
            };
            explain::explain(&options)
                .map(|sections| print_sections(&sections, args.json))
                .map_err(|e| e.to_string())
        }
        Command::Lab(args) => return run_lab(args, style),
        Command::Replay(args) if args.tui => return run_replay_tui(&args),
        Command::Replay(args) => run_replay(&args, style),
        Command::Tui(args) => return run_tui(args),
        Command::KernelEcho(args) => {
            let text = args.message.as_deref().unwrap_or(kernel_echo::GREETING);
            kernel_echo::explain(text)
                .map(|(sections, _, _)| print_sections(&sections, args.json))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("observer: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_lab(args: LabArgs, style: Style) -> ExitCode {
    let result = match args.command {
        Some(LabCommand::Exec {
            side,
            name,
            command,
        }) => {
            let side = match side {
                LabSide::Client => lab::Side::Client,
                LabSide::Server => lab::Side::Server,
            };
            Err(lab::exec(&lab::Names { prefix: name }, side, &command))
        }
        None => {
            let header = Header {
                command: "lab".to_string(),
                kernel: record::kernel_release(),
                filter: serde_json::json!({"port": null, "states": "all", "lab": args.name}),
                interval: args.interval,
                sources: ["poll", "destroy", "proc", "wire"]
                    .map(String::from)
                    .to_vec(),
            };
            let mut recorder = match open_recorder(args.record.as_deref(), &header) {
                Ok(r) => r,
                Err(code) => return code,
            };
            if args.tui && !stdout_is_terminal() {
                return usage_error("--tui needs a terminal (standard output is not one)");
            }
            // Said before the screen is taken over, with the exit status
            // the text lab gives.
            if args.tui
                && let Err(err) = lab::require_root()
            {
                eprintln!("observer: {err}");
                return ExitCode::from(err.exit_code());
            }
            let _ = stop::install();
            let options = lab::Options {
                name: args.name,
                syn_linear_timeouts: args.syn_linear_timeouts,
                delay: args.delay,
                loss_percent: args.loss,
                seed: args.seed,
                interval: args.interval,
                duration: args.duration,
                pcap: args.pcap,
                quiet: args.tui,
            };
            if args.tui {
                let interval = options.interval;
                return in_tui(App::live(interval), move |tx, quit| {
                    let mut channel = tui::ChannelView(tx);
                    let mut views: Vec<&mut dyn View> = vec![&mut channel];
                    views.extend(recorder.as_mut().map(|r| r as &mut dyn View));
                    lab::run(&options, &mut observer::view::Tee(views), &|| {
                        quit() || stop::requested().is_some()
                    })
                    .map_err(|e| e.to_string())
                });
            }
            let mut text = TextView::new(args.json, style, std::io::stdout().lock());
            let mut views: Vec<&mut dyn View> = vec![&mut text];
            views.extend(recorder.as_mut().map(|r| r as &mut dyn View));
            lab::run(&options, &mut observer::view::Tee(views), &|| {
                stop::requested().is_some()
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("observer: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `--record FILE`: the file is created (and its header written) before
/// anything starts; a path that cannot be written is a usage error.
fn open_recorder(
    path: Option<&std::path::Path>,
    header: &Header,
) -> Result<Option<Recorder>, ExitCode> {
    match path {
        None => Ok(None),
        Some(path) => Recorder::create(path, header).map(Some).map_err(|e| {
            eprintln!("observer: --record {}: {e}", path.display());
            ExitCode::from(2)
        }),
    }
}

/// The header's `filter`: which sockets the watch was asked for.
fn filter_json(filter: &Filter) -> serde_json::Value {
    serde_json::json!({
        "port": (!filter.all).then_some(filter.port),
        "states": filter.state.map_or(serde_json::json!("all"), |mask| {
            serde_json::json!(tcp_state::TcpState::ALL
                .iter()
                .filter(|s| mask & s.bit() != 0)
                .map(|s| s.name())
                .collect::<Vec<_>>())
        }),
        "family": match (filter.ipv4_only, filter.ipv6_only) {
            (true, _) => "4",
            (_, true) => "6",
            _ => "any",
        },
        "netns": filter.netns,
    })
}

/// One line on stderr and exit status 2, as a usage error from clap would.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("observer: {message}");
    ExitCode::from(2)
}

fn stdout_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// Run `source` on a thread of its own, feeding the tui on this one, until
/// the tui quits (q, Ctrl-C, SIGTERM) or the source fails. `source` gets
/// the channel to send its events on and a function that says when to stop.
fn in_tui<F>(app: App, source: F) -> ExitCode
where
    F: FnOnce(std::sync::mpsc::Sender<tui::Msg>, &dyn Fn() -> bool) -> Result<(), String>
        + Send
        + 'static,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (tx, rx) = std::sync::mpsc::channel();
    let quit = Arc::new(AtomicBool::new(false));
    let thread = {
        let tx = tx.clone();
        let quit = Arc::clone(&quit);
        std::thread::spawn(move || {
            let result = source(tx.clone(), &|| quit.load(Ordering::Relaxed));
            let _ = tx.send(tui::Msg::Ended(result.err()));
        })
    };
    let shown = tui::run(app, tx, rx, &|| stop::requested().is_some());
    // The terminal is restored; now stop the source and wait for it (it
    // removes what it made: a tracefs instance, the lab's namespaces).
    quit.store(true, Ordering::Relaxed);
    let _ = thread.join();
    match shown {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(failure)) => {
            eprintln!("observer: {failure}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("observer: the terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `observer tui`: the watch, as a picture.
fn run_tui(args: WatchArgs) -> ExitCode {
    if args.filter.json {
        return usage_error("--json has no meaning in the tui (use `observer watch --json`)");
    }
    if !stdout_is_terminal() {
        return usage_error("tui needs a terminal (standard output is not one)");
    }
    let header = watch_header(&args);
    let mut recorder = match open_recorder(args.record.as_deref(), &header) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _ = stop::install();
    let options = watch_options(args, true);
    in_tui(App::live(options.interval), move |tx, quit| {
        let mut channel = tui::ChannelView(tx);
        let mut views: Vec<&mut dyn View> = vec![&mut channel];
        views.extend(recorder.as_mut().map(|r| r as &mut dyn View));
        watch::run(&options, &mut observer::view::Tee(views), &|| {
            quit() || stop::requested().is_some()
        })
        .map_err(|e| e.to_string())
    })
}

/// `observer replay FILE --tui`: paused at the start.
fn run_replay_tui(args: &ReplayArgs) -> ExitCode {
    let recording = match replay::read(&args.file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("observer: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !stdout_is_terminal() {
        return usage_error("--tui needs a terminal (standard output is not one)");
    }
    let _ = stop::install();
    let name = args
        .file
        .file_name()
        .map_or(args.file.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
    let mut app = App::replay(recording.events, name);
    if let Some(speed) = args.speed {
        app.speed = speed;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    match tui::run(app, tx, rx, &|| stop::requested().is_some()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("observer: the terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

fn watch_header(args: &WatchArgs) -> Header {
    let mut sources = vec!["poll", "destroy", "proc"];
    if args.exact {
        sources.push("trace");
    }
    Header {
        command: "watch".to_string(),
        kernel: record::kernel_release(),
        filter: filter_json(&args.filter),
        interval: args.interval,
        sources: sources.into_iter().map(String::from).collect(),
    }
}

fn watch_options(args: WatchArgs, quiet: bool) -> watch::Options {
    watch::Options {
        query: args.filter.query(),
        interval: args.interval,
        pids: args.pids,
        duration: args.duration,
        netns: args.filter.netns,
        exact: args.exact,
        quiet,
    }
}

fn run_watch(args: WatchArgs, style: Style) -> ExitCode {
    let header = watch_header(&args);
    let mut recorder = match open_recorder(args.record.as_deref(), &header) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Ctrl-C and SIGTERM end the watch cleanly (see echo_lab_cli::stop).
    let _ = stop::install();
    let json = args.filter.json;
    let options = watch_options(args, false);
    let mut text = TextView::new(json, style, std::io::stdout().lock());
    let mut views: Vec<&mut dyn View> = vec![&mut text];
    views.extend(recorder.as_mut().map(|r| r as &mut dyn View));
    match watch::run(&options, &mut observer::view::Tee(views), &|| {
        stop::requested().is_some()
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("observer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `observer replay FILE`: read it whole (a damaged line is one error,
/// before anything is printed), then print it at once or at `--speed`.
fn run_replay(args: &ReplayArgs, style: Style) -> Result<(), String> {
    let recording = replay::read(&args.file).map_err(|e| e.to_string())?;
    let _ = stop::install();
    let mut text = TextView::new(args.json, style, std::io::stdout().lock());
    let start = std::time::Instant::now();
    for event in &recording.events {
        if let Some(speed) = args.speed {
            // Wait until the event's time, scaled; Ctrl-C ends the wait.
            let due = start + event.t.div_f64(speed);
            while let Some(left) = due.checked_duration_since(std::time::Instant::now()) {
                if stop::requested().is_some() {
                    return Ok(());
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
        if !text.show(std::slice::from_ref(event)) {
            break;
        }
    }
    Ok(())
}

fn print_sections(sections: &[explain::Section], json: bool) {
    if json {
        println!("{:#}", explain::render_json(sections));
    } else {
        print!("{}", explain::render_text(sections));
    }
}

fn run_snapshot(args: &SnapshotArgs, style: Style) -> Result<(), String> {
    let mut socket =
        DiagSocket::open_in(args.filter.netns.as_deref()).map_err(|e| e.to_string())?;
    let snap = snapshot::take(&mut socket, &args.filter.query(), !args.no_owners)
        .map_err(|e| e.to_string())?;
    // One large buffer, flushed once: stdout is line-buffered, and 10,000
    // rows would otherwise be 10,000 write() calls.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match snapshot::print(&snap, args.filter.json, style, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
    {
        // `observer snapshot --all | head`: the reader left. Rust ignores
        // SIGPIPE, so the write fails with EPIPE instead of killing us;
        // like a program killed by SIGPIPE, say nothing.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e.to_string()),
        Ok(()) => {}
    }
    if snap.owners_hidden {
        eprintln!("observer: not root: owners of other users' sockets are not shown");
    }
    Ok(())
}
