//! Events as JSON objects, one per line, and back.
//!
//! [`Event::json`] writes the `--json` schema of observer/README.md;
//! [`Event::from_json`] reads it back, for `observer replay`. Durations
//! are written twice where the text shows them finer than a millisecond:
//! `prev_ms` for people and scripts, `prev_us` for an exact replay (the
//! text says `after 0.4 ms`, which 0 ms could not give back).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Event, Gone, Kind, LabInfo, ProcChange, SockView, WireSegment};
use crate::diag::{SockInfo, TcpInfoLite, Timer};
use crate::lab::Side;
use crate::lab::delay::{Dir, Fate};
use crate::lab::segment::{Named, Segment};
use crate::layout;
use crate::procfs::{Owner, Process};
use crate::roles::Role;
use crate::snapshot::owners_json;
use crate::tcp_state::{Missed, TcpState};

fn state_json(state: TcpState) -> Value {
    Value::String(state.name().to_string())
}

fn names(states: &[TcpState]) -> Value {
    Value::Array(states.iter().map(|s| state_json(*s)).collect())
}

fn tcp_json(tcp: &Option<TcpInfoLite>) -> Value {
    match tcp {
        Some(t) => json!({
            "bytes_acked": t.bytes_acked,
            "bytes_received": t.bytes_received,
            "total_retrans": t.total_retrans,
            "rtt_us": t.rtt_us,
        }),
        None => Value::Null,
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Seconds with microsecond precision, as `t` is written.
fn secs(d: Duration) -> Value {
    json!((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// A duration twice: `NAME_ms` (rounded down) and `NAME_us` (exact).
fn both(m: &mut Map<String, Value>, name: &str, d: Duration) {
    m.insert(format!("{name}_ms"), json!(ms(d)));
    m.insert(format!("{name}_us"), json!(us(d)));
}

fn sock_json(sock: &SockView) -> Map<String, Value> {
    let info = &sock.info;
    let mut m = Map::new();
    m.insert("state".into(), state_json(info.state));
    m.insert("local".into(), json!(info.local.to_string()));
    m.insert("remote".into(), json!(info.remote.to_string()));
    m.insert("role".into(), json!(sock.role.name()));
    m.insert("conn".into(), json!(sock.conn));
    m.insert("owners".into(), owners_json(&sock.owners));
    m.insert("recv_q".into(), json!(info.recv_q));
    m.insert("send_q".into(), json!(info.send_q));
    m.insert("timer".into(), json!(info.timer.name()));
    m.insert("expires_ms".into(), json!(info.expires_ms));
    m.insert("inode".into(), json!(info.inode));
    m.insert("uid".into(), json!(info.uid));
    m
}

fn process_json(p: &Process) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("pid".into(), json!(p.pid));
    m.insert("ppid".into(), json!(p.ppid));
    m.insert("state".into(), json!(p.state.to_string()));
    m.insert("wchan".into(), json!(p.wchan));
    m.insert("syscall".into(), json!(p.syscall));
    m.insert("meaning".into(), json!(p.meaning));
    m.insert("comm".into(), json!(p.comm));
    m.insert("args".into(), json!(p.args));
    m
}

fn missed_json(m: &mut Map<String, Value>, missed: &Missed, gap: Duration) {
    m.insert("missed".into(), names(&missed.certain));
    m.insert("missed_either".into(), names(&missed.either));
    m.insert("missed_within_ms".into(), json!(ms(gap)));
    m.insert("missed_within_us".into(), json!(us(gap)));
}

fn lab_json(lab: &LabInfo) -> Map<String, Value> {
    let value = json!({
        "name": lab.name,
        "client_ns": lab.client_ns,
        "server_ns": lab.server_ns,
        "client_addr": lab.client_addr,
        "server_addr": lab.server_addr,
        "delay_ms": lab.delay.as_secs_f64() * 1000.0,
        "delay_us": us(lab.delay),
        "loss_percent": lab.loss_percent,
        "seed": lab.seed,
        "syn_linear_timeouts": lab.syn_linear_timeouts,
        "server_cmd": lab.server_cmd,
        "client_cmd": lab.client_cmd,
        "observer": lab.observer,
    });
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn segment_json(w: &WireSegment) -> Map<String, Value> {
    let s = &w.segment;
    let value = json!({
        "dir": w.dir.name(),
        "src": s.src.to_string(),
        "dst": s.dst.to_string(),
        "flags": s.flag_names(),
        "tcp_flags": s.flags,
        "seq": s.seq,
        "ack": s.ack,
        "rel_seq": w.named.seq,
        "rel_ack": w.named.ack,
        "len": s.len,
        "win": s.window,
        "fate": match w.fate { Fate::Sent => "sent", Fate::Lost => "lost" },
        "arrives": w.arrives.map(secs),
        "from_opener": w.named.from_opener,
        "retransmission": w.named.retransmission,
        "since_first_ms": w.named.since_first.as_secs_f64() * 1000.0,
        "since_first_us": us(w.named.since_first),
    });
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Event {
    /// One JSON object (schema: observer/README.md).
    pub fn json(&self) -> Value {
        let mut m = match &self.kind {
            Kind::New {
                sock,
                missed,
                gap,
                existing,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("new"));
                m.insert("prev_state".into(), Value::Null);
                m.insert("existing".into(), json!(existing));
                missed_json(&mut m, missed, *gap);
                m
            }
            Kind::State {
                sock,
                prev,
                prev_for,
                missed,
                gap,
                freed,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("state"));
                m.insert("prev_state".into(), state_json(*prev));
                both(&mut m, "prev", *prev_for);
                m.insert("freed".into(), tcp_json(freed));
                missed_json(&mut m, missed, *gap);
                m
            }
            Kind::Countdown { sock } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("countdown"));
                m
            }
            Kind::Owners { sock, prev } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("owners"));
                m.insert("prev_owners".into(), owners_json(prev));
                m
            }
            Kind::Gone {
                sock,
                prev_for,
                how,
                gap,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("gone"));
                // Never polled: we do not know the state it was last in.
                let prev = match how {
                    Gone::Unseen(_) => Value::Null,
                    _ => state_json(sock.info.state),
                };
                m.insert("prev_state".into(), prev);
                m.insert("state".into(), state_json(TcpState::Close));
                both(&mut m, "prev", *prev_for);
                let (how, tcp, source) = match how {
                    Gone::TimeWaitOver { before_seen } => {
                        m.insert(
                            "before_seen_ms".into(),
                            before_seen.map_or(Value::Null, |d| json!(ms(d))),
                        );
                        m.insert(
                            "before_seen_us".into(),
                            before_seen.map_or(Value::Null, |d| json!(us(d))),
                        );
                        ("time_wait_over", None, "poll")
                    }
                    Gone::Closed => ("closed", None, "poll"),
                    Gone::Destroyed(t) => ("destroyed", *t, "destroy"),
                    Gone::Reset { sent: true, tcp } => ("reset_sent", *tcp, "destroy"),
                    Gone::PassiveClose { missed, tcp } => {
                        m.insert("missed".into(), names(&missed.certain));
                        ("closed", *tcp, "poll")
                    }
                    Gone::Reset { sent: false, tcp } => ("reset_received", *tcp, "destroy"),
                    Gone::Vanished => ("vanished", None, "poll"),
                    Gone::Unseen(t) => ("unseen", *t, "destroy"),
                };
                m.insert("how".into(), json!(how));
                m.insert("source".into(), json!(source));
                m.insert("final".into(), tcp_json(&tcp));
                both(&mut m, "gap", *gap);
                m
            }
            Kind::Process { process, change } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("process"));
                let (change, prev) = match change {
                    ProcChange::New => ("new", None),
                    ProcChange::Changed { state, wchan } => ("changed", Some((state, wchan))),
                    ProcChange::Exited => ("exited", None),
                };
                m.insert("change".into(), json!(change));
                if let Some((state, wchan)) = prev {
                    m.insert("prev_state".into(), json!(state.to_string()));
                    m.insert("prev_wchan".into(), json!(wchan));
                }
                m
            }
            Kind::Zombie {
                process,
                zombie_for,
                parent,
                before_start,
            } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("zombie"));
                both(&mut m, "zombie", *zombie_for);
                m.insert("before_start".into(), json!(before_start.is_some()));
                m.insert(
                    "started_ms_ago".into(),
                    before_start.map_or(Value::Null, |age| json!(ms(age))),
                );
                m.insert(
                    "started_us_ago".into(),
                    before_start.map_or(Value::Null, |age| json!(us(age))),
                );
                m.insert(
                    "parent".into(),
                    parent
                        .as_ref()
                        .map_or(Value::Null, |p| json!({"pid": p.pid, "comm": p.comm})),
                );
                m
            }
            Kind::Reaped {
                process,
                zombie_for,
                before_start,
            } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("reaped"));
                both(&mut m, "zombie", *zombie_for);
                m.insert("before_start".into(), json!(before_start));
                m
            }
            Kind::Note { text } => {
                let mut m = Map::new();
                m.insert("event".into(), json!("note"));
                m.insert("text".into(), json!(text));
                m
            }
            Kind::Transition {
                local,
                remote,
                role,
                conn,
                old,
                new,
                prev_for,
                pid,
                comm,
            } => {
                let mut m = Map::new();
                m.insert("event".into(), json!("transition"));
                m.insert("source".into(), json!("trace"));
                m.insert("state".into(), state_json(*new));
                m.insert("prev_state".into(), state_json(*old));
                m.insert(
                    "prev_us".into(),
                    prev_for.map_or(Value::Null, |d| json!(us(d))),
                );
                m.insert("local".into(), json!(local.to_string()));
                m.insert("remote".into(), json!(remote.to_string()));
                m.insert("role".into(), json!(role.name()));
                m.insert("conn".into(), json!(conn));
                m.insert("pid".into(), json!(pid));
                m.insert("comm".into(), json!(comm));
                m
            }
            Kind::Lab(lab) => {
                let mut m = lab_json(lab);
                m.insert("event".into(), json!("lab"));
                m
            }
            Kind::Segment(segment) => {
                let mut m = segment_json(segment);
                m.insert("event".into(), json!("segment"));
                m
            }
            Kind::LabDown { name } => {
                let mut m = Map::new();
                m.insert("event".into(), json!("lab_down"));
                m.insert("name".into(), json!(name));
                m
            }
        };
        m.entry("source").or_insert_with(|| json!(self.source()));
        if let Some(host) = self.host {
            m.insert("ns".into(), json!(host.name()));
        }
        m.insert("t".into(), secs(self.t));
        Value::Object(m)
    }

    /// Read back what [`Event::json`] wrote. The error names the field
    /// that is missing or wrong.
    pub fn from_json(value: &Value) -> Result<Event, String> {
        let f = Fields(
            value
                .as_object()
                .ok_or_else(|| "not a JSON object".to_string())?,
        );
        let t = f.secs("t")?;
        let host = match f.opt_str("ns")? {
            None => None,
            Some("client") => Some(Side::Client),
            Some("server") => Some(Side::Server),
            Some(other) => return Err(format!("`ns`: unknown host `{other}`")),
        };
        let event = f.str("event")?;
        let kind = match event {
            "new" => Kind::New {
                sock: f.sock(None)?,
                missed: f.missed()?,
                gap: f.us("missed_within_us")?,
                existing: f.bool("existing")?,
            },
            "state" => Kind::State {
                sock: f.sock(None)?,
                prev: f.state("prev_state")?,
                prev_for: f.us("prev_us")?,
                missed: f.missed()?,
                gap: f.us("missed_within_us")?,
                freed: f.tcp("freed")?,
            },
            "countdown" => Kind::Countdown {
                sock: f.sock(None)?,
            },
            "owners" => Kind::Owners {
                sock: f.sock(None)?,
                prev: owners(f.get("prev_owners")?)?,
            },
            "gone" => {
                let tcp = f.tcp("final")?;
                let how = match f.str("how")? {
                    "time_wait_over" => Gone::TimeWaitOver {
                        before_seen: f.opt_us("before_seen_us")?,
                    },
                    "closed" => match f.0.get("missed") {
                        Some(missed) => Gone::PassiveClose {
                            missed: Missed {
                                certain: states(missed, "missed")?,
                                either: Vec::new(),
                            },
                            tcp,
                        },
                        None => Gone::Closed,
                    },
                    "destroyed" => Gone::Destroyed(tcp),
                    "reset_sent" => Gone::Reset { sent: true, tcp },
                    "reset_received" => Gone::Reset { sent: false, tcp },
                    "vanished" => Gone::Vanished,
                    "unseen" => Gone::Unseen(tcp),
                    other => return Err(format!("`how`: unknown `{other}`")),
                };
                // The socket's last state is `prev_state` (`state` is CLOSE);
                // one never polled was recorded in CLOSE.
                let last = match f.0.get("prev_state") {
                    Some(Value::Null) | None => TcpState::Close,
                    Some(_) => f.state("prev_state")?,
                };
                Kind::Gone {
                    sock: f.sock(Some(last))?,
                    prev_for: f.us("prev_us")?,
                    how,
                    gap: f.us("gap_us")?,
                }
            }
            "process" => Kind::Process {
                process: f.process()?,
                change: match f.str("change")? {
                    "new" => ProcChange::New,
                    "exited" => ProcChange::Exited,
                    "changed" => ProcChange::Changed {
                        state: f.char("prev_state")?,
                        wchan: f.str("prev_wchan")?.to_string(),
                    },
                    other => return Err(format!("`change`: unknown `{other}`")),
                },
            },
            "zombie" => Kind::Zombie {
                process: f.process()?,
                zombie_for: f.us("zombie_us")?,
                parent: match f.get("parent")? {
                    Value::Null => None,
                    parent => {
                        let p = Fields(
                            parent
                                .as_object()
                                .ok_or_else(|| "`parent` is not an object".to_string())?,
                        );
                        Some(Process {
                            pid: p.i32("pid")?,
                            comm: p.str("comm")?.to_string(),
                            ..Process::default()
                        })
                    }
                },
                before_start: f.opt_us("started_us_ago")?,
            },
            "reaped" => Kind::Reaped {
                process: f.process()?,
                zombie_for: f.us("zombie_us")?,
                before_start: f.bool("before_start")?,
            },
            "note" => Kind::Note {
                text: f.str("text")?.to_string(),
            },
            "transition" => Kind::Transition {
                local: f.addr("local")?,
                remote: f.addr("remote")?,
                role: f.role()?,
                conn: f.opt_u32("conn")?,
                old: f.state("prev_state")?,
                new: f.state("state")?,
                prev_for: f.opt_us("prev_us")?,
                pid: f.i32("pid")?,
                comm: f.str("comm")?.to_string(),
            },
            "lab" => Kind::Lab(Box::new(LabInfo {
                name: f.str("name")?.to_string(),
                client_ns: f.str("client_ns")?.to_string(),
                server_ns: f.str("server_ns")?.to_string(),
                client_addr: f.str("client_addr")?.to_string(),
                server_addr: f.str("server_addr")?.to_string(),
                delay: f.us("delay_us")?,
                loss_percent: f.f64("loss_percent")?,
                seed: f.u64("seed")?,
                syn_linear_timeouts: f.opt_u32("syn_linear_timeouts")?,
                server_cmd: f.str("server_cmd")?.to_string(),
                client_cmd: f.str("client_cmd")?.to_string(),
                observer: f.str("observer")?.to_string(),
            })),
            "segment" => {
                let dir = match f.str("dir")? {
                    "client->server" => Dir::ClientToServer,
                    "server->client" => Dir::ServerToClient,
                    other => return Err(format!("`dir`: unknown `{other}`")),
                };
                let fate = match f.str("fate")? {
                    "sent" => Fate::Sent,
                    "lost" => Fate::Lost,
                    other => return Err(format!("`fate`: unknown `{other}`")),
                };
                Kind::Segment(Box::new(WireSegment {
                    dir,
                    segment: Segment {
                        src: f.addr("src")?,
                        dst: f.addr("dst")?,
                        seq: f.u32("seq")?,
                        ack: f.u32("ack")?,
                        flags: u8::try_from(f.u64("tcp_flags")?)
                            .map_err(|_| "`tcp_flags` is not a byte".to_string())?,
                        window: u16::try_from(f.u64("win")?)
                            .map_err(|_| "`win` is not a 16-bit number".to_string())?,
                        len: f.u64("len")? as usize,
                    },
                    named: Named {
                        seq: f.str("rel_seq")?.to_string(),
                        ack: f.opt_str("rel_ack")?.map(str::to_string),
                        from_opener: f.bool("from_opener")?,
                        retransmission: f.u32("retransmission")?,
                        since_first: f.us("since_first_us")?,
                    },
                    fate,
                    arrives: match f.get("arrives")? {
                        Value::Null => None,
                        _ => Some(f.secs("arrives")?),
                    },
                }))
            }
            "lab_down" => Kind::LabDown {
                name: f.str("name")?.to_string(),
            },
            other => return Err(format!("unknown event `{other}`")),
        };
        Ok(Event { t, host, kind })
    }
}

/// The fields of one JSON object, each read with an error that names it.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0.get(key).ok_or_else(|| format!("no field `{key}`"))
    }

    fn str(&self, key: &str) -> Result<&str, String> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| format!("`{key}` is not a string"))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    fn u64(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| format!("`{key}` is not a whole number"))
    }

    fn u32(&self, key: &str) -> Result<u32, String> {
        u32::try_from(self.u64(key)?).map_err(|_| format!("`{key}` is too large"))
    }

    fn i32(&self, key: &str) -> Result<i32, String> {
        self.get(key)?
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("`{key}` is not a process id"))
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.u32(key).map(Some),
        }
    }

    fn f64(&self, key: &str) -> Result<f64, String> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| format!("`{key}` is not a number"))
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| format!("`{key}` is not true or false"))
    }

    fn char(&self, key: &str) -> Result<char, String> {
        self.str(key)?
            .chars()
            .next()
            .ok_or_else(|| format!("`{key}` is empty"))
    }

    /// Seconds written with microsecond precision, back to whole
    /// microseconds.
    fn secs(&self, key: &str) -> Result<Duration, String> {
        let s = self.f64(key)?;
        if !(0.0..1e12).contains(&s) {
            return Err(format!("`{key}` is not a time"));
        }
        Ok(Duration::from_micros((s * 1e6).round() as u64))
    }

    fn us(&self, key: &str) -> Result<Duration, String> {
        self.u64(key).map(Duration::from_micros)
    }

    fn opt_us(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.us(key).map(Some),
        }
    }

    fn addr(&self, key: &str) -> Result<SocketAddr, String> {
        self.str(key)?
            .parse()
            .map_err(|_| format!("`{key}` is not an address"))
    }

    fn state(&self, key: &str) -> Result<TcpState, String> {
        self.str(key)?.parse().map_err(|e| format!("`{key}`: {e}"))
    }

    fn role(&self) -> Result<Role, String> {
        match self.str("role")? {
            "listener" => Ok(Role::Listener),
            "server" => Ok(Role::Server),
            "client" => Ok(Role::Client),
            "-" => Ok(Role::Unknown),
            other => Err(format!("`role`: unknown `{other}`")),
        }
    }

    fn tcp(&self, key: &str) -> Result<Option<TcpInfoLite>, String> {
        match self.get(key)? {
            Value::Null => Ok(None),
            value => {
                let t = Fields(
                    value
                        .as_object()
                        .ok_or_else(|| format!("`{key}` is not an object"))?,
                );
                Ok(Some(TcpInfoLite {
                    bytes_acked: t.u64("bytes_acked")?,
                    bytes_received: t.u64("bytes_received")?,
                    total_retrans: t.u32("total_retrans")?,
                    rtt_us: t.u32("rtt_us")?,
                }))
            }
        }
    }

    fn missed(&self) -> Result<Missed, String> {
        Ok(Missed {
            certain: states(self.get("missed")?, "missed")?,
            either: states(self.get("missed_either")?, "missed_either")?,
        })
    }

    /// The socket fields; `state` overrides the `state` field (`gone`).
    fn sock(&self, state: Option<TcpState>) -> Result<SockView, String> {
        let local = self.addr("local")?;
        let timer = match self.str("timer")? {
            "on" => Timer::On,
            "keepalive" => Timer::Keepalive,
            "timewait" => Timer::TimeWait,
            "persist" => Timer::Persist,
            _ => Timer::Off,
        };
        Ok(SockView {
            info: SockInfo {
                family: if local.is_ipv6() {
                    layout::AF_INET6
                } else {
                    layout::AF_INET
                },
                state: match state {
                    Some(s) => s,
                    None => self.state("state")?,
                },
                local,
                remote: self.addr("remote")?,
                recv_q: self.u32("recv_q")?,
                send_q: self.u32("send_q")?,
                timer,
                expires_ms: self.u32("expires_ms")?,
                retrans: 0,
                uid: self.u32("uid")?,
                inode: self.u32("inode")?,
                cookie: 0,
                tcp_info: None,
            },
            role: self.role()?,
            conn: self.opt_u32("conn")?,
            owners: owners(self.get("owners")?)?,
        })
    }

    fn process(&self) -> Result<Process, String> {
        Ok(Process {
            pid: self.i32("pid")?,
            ppid: self.i32("ppid")?,
            state: self.char("state")?,
            comm: self.str("comm")?.to_string(),
            wchan: self.str("wchan")?.to_string(),
            syscall: self.str("syscall")?.to_string(),
            args: self.str("args")?.to_string(),
            meaning: self.opt_str("meaning")?.map(str::to_string),
        })
    }
}

fn states(value: &Value, key: &str) -> Result<Vec<TcpState>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("`{key}` is not a list"))?
        .iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| format!("`{key}` holds a non-string"))?
                .parse()
                .map_err(|e| format!("`{key}`: {e}"))
        })
        .collect()
}

fn owners(value: &Value) -> Result<Vec<Owner>, String> {
    value
        .as_array()
        .ok_or_else(|| "`owners` is not a list".to_string())?
        .iter()
        .map(|o| {
            let o = Fields(
                o.as_object()
                    .ok_or_else(|| "an owner is not an object".to_string())?,
            );
            Ok(Owner {
                pid: o.i32("pid")?,
                comm: o.str("comm")?.to_string(),
                fd: o.i32("fd")?,
            })
        })
        .collect()
}
