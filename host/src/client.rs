//! The client built into `envhub`: `envhub send`, `envhub latest` and
//! `envhub stats` (docs/PROTOCOL.md, "The client"). It speaks the line
//! protocol to any envhub shell, so that trying a server needs no `nc`.
//!
//! Exit status: [`EXIT_OK`] when every reply had `"ok":true`, [`EXIT_ERROR`]
//! when a reply was an error (it is printed all the same), [`EXIT_UNREACHABLE`]
//! when the server cannot be reached, closes before answering every line, or
//! does not answer in time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

/// Every reply had `"ok":true`.
pub const EXIT_OK: u8 = 0;
/// At least one reply was an error reply.
pub const EXIT_ERROR: u8 = 1;
/// No connection, a connection closed too early, or no reply in time.
pub const EXIT_UNREACHABLE: u8 = 2;

/// The server the client talks to when `--to` is not given.
pub const DEFAULT_TO: &str = "127.0.0.1:8080";

/// Longest wait, in seconds, for connecting and for each reply, unless
/// `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: &str = "5";

/// Where to connect and how long to wait: the flags every client
/// subcommand shares.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct Target {
    /// The server: ADDR:PORT (`127.0.0.1:8080`, `[::1]:8080`) or
    /// HOST:PORT (`gateway.local:8080`).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_TO)]
    pub to: String,

    /// Print each reply as indented JSON instead of the raw line.
    #[arg(long)]
    pub pretty: bool,

    /// Longest wait for connecting and for each reply, in seconds.
    #[arg(long, value_name = "SECS", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// `envhub send`: one reading from flags, or every line of stdin.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SendArgs {
    /// The server and how to print.
    #[command(flatten)]
    pub target: Target,

    /// The reading's location (1 to 32 bytes of UTF-8).
    #[arg(long, value_name = "L", required_unless_present = "stdin")]
    pub location: Option<String>,

    /// Temperature in °C (−40 to 125).
    #[arg(long, value_name = "T", required_unless_present = "stdin", allow_negative_numbers = true, value_parser = parse_number)]
    pub temp: Option<f64>,

    /// Relative humidity in % (0 to 100).
    #[arg(long, value_name = "H", required_unless_present = "stdin", value_parser = parse_number)]
    pub hum: Option<f64>,

    /// Sequence number, echoed in the reply (0 to 4294967295).
    #[arg(long, value_name = "N")]
    pub seq: Option<u32>,

    /// `-`: send each line of standard input as written (pipelined) and
    /// print one reply per non-empty line, instead of a reading from flags.
    #[arg(value_name = "-", value_parser = parse_dash, conflicts_with_all = ["location", "temp", "hum", "seq"])]
    pub stdin: Option<Dash>,
}

/// `envhub latest`: the newest reading of every location, or of one.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct LatestArgs {
    /// The server and how to print.
    #[command(flatten)]
    pub target: Target,

    /// Only this location (`unknown_location` if it was never stored).
    #[arg(long, value_name = "L")]
    pub location: Option<String>,
}

/// `envhub stats`: the server's counters.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct StatsArgs {
    /// The server and how to print.
    #[command(flatten)]
    pub target: Target,
}

/// The `-` argument of `envhub send`: read standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dash;

fn parse_dash(text: &str) -> Result<Dash, String> {
    match text {
        "-" => Ok(Dash),
        _ => Err("the only argument `send` takes is `-` (read lines from stdin)".into()),
    }
}

/// A finite number (the server checks the range: an out-of-range value is
/// its `invalid_field` reply, which is the point of trying it).
fn parse_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a number, got {text:?}")),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{text} is not a usable number of seconds")),
    }
}

/// The request line (without its LF) for a reading. serde_json writes the
/// location with every escape JSON requires; a number is written in its
/// shortest form that reads back as the same `f64`, which is the decimal
/// that was typed for any value with up to 15 significant digits.
pub fn reading_line(location: &str, temp: f64, hum: f64, seq: Option<u32>) -> String {
    let mut reading = json!({ "location": location, "temp": temp, "hum": hum });
    if let (Some(seq), Some(map)) = (seq, reading.as_object_mut()) {
        map.insert("seq".into(), json!(seq));
    }
    reading.to_string()
}

/// The request line (without its LF) for `latest`, of one location or all.
pub fn latest_line(location: Option<&str>) -> String {
    match location {
        Some(location) => json!({ "cmd": "latest", "location": location }).to_string(),
        None => json!({ "cmd": "latest" }).to_string(),
    }
}

/// The request line (without its LF) for `stats`.
pub fn stats_line() -> String {
    json!({ "cmd": "stats" }).to_string()
}

/// Why the client gave up: printed on stderr, exit status [`EXIT_UNREACHABLE`].
#[derive(Debug)]
pub struct Unreachable(pub String);

/// Whether a reply line says `"ok":true`. A line that is not a JSON object
/// (an echo-mode server, say) is not.
pub fn reply_ok(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v.get("ok").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// `line` as the user sees it: the raw reply, or indented JSON with
/// `--pretty` (a line that is not JSON is printed raw).
pub fn render(line: &str, pretty: bool) -> String {
    let raw = line.trim_end_matches(['\n', '\r']);
    if pretty {
        if let Ok(value) = serde_json::from_str::<Value>(raw) {
            if let Ok(text) = serde_json::to_string_pretty(&value) {
                return text;
            }
        }
    }
    raw.to_string()
}

/// Connects to `to` (each address it resolves to, in turn), waiting at most
/// `timeout` for each.
pub fn connect(to: &str, timeout: Duration) -> Result<TcpStream, Unreachable> {
    let addrs: Vec<SocketAddr> = to
        .to_socket_addrs()
        .map_err(|e| Unreachable(format!("cannot resolve {to}: {e}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                // Requests are small and answered at once: no Nagle delay.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(format!("cannot connect to {addr}: {e}")),
        }
    }
    Err(Unreachable(
        last.unwrap_or_else(|| format!("{to} resolves to no address")),
    ))
}

/// Sends one request line and returns its reply line (with its LF).
pub fn request(target: &Target, line: &str) -> Result<String, Unreachable> {
    let mut stream = connect(&target.to, target.timeout)?;
    stream
        .set_read_timeout(Some(target.timeout))
        .and_then(|()| stream.set_write_timeout(Some(target.timeout)))
        .map_err(|e| Unreachable(format!("cannot set a timeout: {e}")))?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    stream
        .write_all(&bytes)
        .map_err(|e| Unreachable(format!("cannot send to {}: {e}", target.to)))?;
    let mut reader = BufReader::new(stream);
    let mut reply = Vec::new();
    match reader.read_until(b'\n', &mut reply) {
        Ok(_) if reply.ends_with(b"\n") => Ok(String::from_utf8_lossy(&reply).into_owned()),
        Ok(_) => Err(Unreachable(format!(
            "{} closed the connection without a reply",
            target.to
        ))),
        Err(e) if timed_out(&e) => Err(Unreachable(format!(
            "no reply from {} within {:?}",
            target.to, target.timeout
        ))),
        Err(e) => Err(Unreachable(format!("cannot read from {}: {e}", target.to))),
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// How long the reader waits, after the server closed, for the feeder to
/// reach the end of its input.
const END_OF_INPUT_GRACE: Duration = Duration::from_millis(500);

/// Whether the server answers `line` (one input line, without its LF): it
/// does unless the line is empty or only spaces and tabs, after dropping
/// one CR at its end (docs/PROTOCOL.md, "Transport and framing").
pub fn answered(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.iter().any(|b| *b != b' ' && *b != b'\t')
}

/// What a pipelined session ended with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Session {
    /// Lines sent that the server answers.
    pub sent: u64,
    /// Replies received.
    pub replies: u64,
    /// Replies that were not `"ok":true`.
    pub errors: u64,
}

/// Sends every line of `input` over one connection, without waiting for
/// replies in between (pipelining), and hands each reply line to `out` as
/// it arrives. Returns once the server has answered every line and closed
/// (it closes after the client's end of input), or with [`Unreachable`]
/// when it closes early or a reply takes longer than `target.timeout`.
pub fn pipeline(
    target: &Target,
    input: impl Read + Send + 'static,
    mut out: impl FnMut(&str),
) -> Result<Session, Unreachable> {
    let stream = connect(&target.to, target.timeout)?;
    // Short reads, so that a wait is measured against the lines still owed
    // (a person typing slowly on stdin owes nothing while they think).
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| Unreachable(format!("cannot set a timeout: {e}")))?;
    let writer = stream
        .try_clone()
        .map_err(|e| Unreachable(format!("cannot share the socket: {e}")))?;
    let sent = Arc::new(AtomicU64::new(0));
    let input_done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let sent = Arc::clone(&sent);
        let input_done = Arc::clone(&input_done);
        thread::spawn(move || feed(input, writer, &sent, &input_done))
    };

    let mut session = Session::default();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut waiting_since = Instant::now();
    let result = loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) if line.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&line);
                session.replies += 1;
                if !reply_ok(&text) {
                    session.errors += 1;
                }
                out(&text);
                line.clear();
                waiting_since = Instant::now();
            }
            // A partial line before EOF: the next read returns 0.
            Ok(_) => {}
            Err(e) if timed_out(&e) => {
                let owed = sent.load(Ordering::Acquire) > session.replies;
                let input_done = input_done.load(Ordering::Acquire);
                if !owed && !input_done {
                    waiting_since = Instant::now();
                } else if waiting_since.elapsed() >= target.timeout {
                    if !owed {
                        // Every line answered; the server just did not close.
                        break Ok(());
                    }
                    break Err(Unreachable(format!(
                        "no reply from {} within {:?}",
                        target.to, target.timeout
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(Unreachable(format!("cannot read from {}: {e}", target.to))),
        }
    };
    // A server that closes right after answering the last line (`bye`)
    // may do so before the feeder has seen the end of its input.
    let grace = Instant::now();
    while !input_done.load(Ordering::Acquire) && grace.elapsed() < END_OF_INPUT_GRACE {
        thread::sleep(Duration::from_millis(5));
    }
    // The feeder ends when its input does, or at its next write once the
    // socket is gone; a person's stdin may never end, so it is not joined
    // unless finished.
    let _ = reader.get_ref().shutdown(Shutdown::Both);
    if feeder.is_finished() {
        if let Ok(Err(e)) = feeder.join() {
            return Err(Unreachable(format!("cannot read stdin: {e}")));
        }
    }
    result?;
    session.sent = sent.load(Ordering::Acquire);
    if !input_done.load(Ordering::Acquire) {
        return Err(Unreachable(format!(
            "{} closed the connection before the end of the input ({} replies)",
            target.to, session.replies
        )));
    }
    if session.replies < session.sent {
        return Err(Unreachable(format!(
            "{} closed the connection after {} of {} replies",
            target.to, session.replies, session.sent
        )));
    }
    Ok(session)
}

/// Copies `input` to the socket line by line, counting the lines that the
/// server answers, then closes the sending side so that the server answers
/// the rest and closes. A write error (the server closed) ends it quietly:
/// the reader tells what happened.
fn feed(
    input: impl Read,
    mut socket: TcpStream,
    sent: &AtomicU64,
    done: &AtomicBool,
) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    let result = loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                // Counted before it is sent: a reply can only follow.
                if answered(body) {
                    sent.fetch_add(1, Ordering::AcqRel);
                }
                // A last line without LF is answered at EOF; send it whole.
                if socket.write_all(&line).is_err() {
                    break Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // Set before the FIN goes out, so that the reader, which sees the
    // server close only after that, knows the input was complete.
    done.store(true, Ordering::Release);
    let _ = socket.shutdown(Shutdown::Write);
    result
}

/// Prints a one-line reason on stderr and returns [`EXIT_UNREACHABLE`].
fn unreachable(why: &Unreachable) -> ExitCode {
    eprintln!("envhub: {}", why.0);
    ExitCode::from(EXIT_UNREACHABLE)
}

/// Runs one request and prints its reply.
fn one(target: &Target, line: &str) -> ExitCode {
    match request(target, line) {
        Ok(reply) => {
            println!("{}", render(&reply, target.pretty));
            ExitCode::from(if reply_ok(&reply) {
                EXIT_OK
            } else {
                EXIT_ERROR
            })
        }
        Err(why) => unreachable(&why),
    }
}

/// `envhub send`.
pub fn send(args: &SendArgs) -> ExitCode {
    if args.stdin.is_some() {
        let pretty = args.target.pretty;
        let mut stdout = io::stdout();
        let result = pipeline(&args.target, io::stdin(), |reply| {
            let _ = writeln!(stdout, "{}", render(reply, pretty)).and_then(|()| stdout.flush());
        });
        return match result {
            Ok(session) if session.errors == 0 => ExitCode::from(EXIT_OK),
            Ok(_) => ExitCode::from(EXIT_ERROR),
            Err(why) => unreachable(&why),
        };
    }
    match (&args.location, args.temp, args.hum) {
        (Some(location), Some(temp), Some(hum)) => {
            one(&args.target, &reading_line(location, temp, hum, args.seq))
        }
        // clap requires all three unless `-` is given.
        _ => {
            eprintln!("envhub: send needs --location, --temp and --hum, or `-`");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

/// `envhub latest`.
pub fn latest(args: &LatestArgs) -> ExitCode {
    one(&args.target, &latest_line(args.location.as_deref()))
}

/// `envhub stats`.
pub fn stats(args: &StatsArgs) -> ExitCode {
    one(&args.target, &stats_line())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_json_with_the_location_escaped() {
        assert_eq!(
            reading_line("living_room", 25.5, 60.0, Some(7)),
            r#"{"location":"living_room","temp":25.5,"hum":60.0,"seq":7}"#
        );
        let line = reading_line("a \"b\" \\ c\n\u{1}客厅", -0.15, 45.55, None);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["location"], "a \"b\" \\ c\n\u{1}客厅");
        assert!(line.contains("\"temp\":-0.15,"), "{line}");
        assert!(line.contains("\"hum\":45.55}"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(
            latest_line(Some("k\"")),
            r#"{"cmd":"latest","location":"k\""}"#
        );
        assert_eq!(latest_line(None), r#"{"cmd":"latest"}"#);
        assert_eq!(stats_line(), r#"{"cmd":"stats"}"#);
    }

    #[test]
    fn typed_decimals_survive() {
        for text in [
            "21.04", "0.15", "25.55", "-39.95", "124.95", "99.99", "1e-1",
        ] {
            let v = parse_number(text).unwrap();
            let line = reading_line("x", v, v, None);
            let back: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(back["temp"].as_f64(), Some(v), "{text}");
            assert_eq!(v.to_string().parse::<f64>(), Ok(v));
        }
        assert!(parse_number("inf").is_err());
        assert!(parse_number("NaN").is_err());
        assert!(parse_number("1e400").is_err());
        assert!(parse_number("warm").is_err());
    }

    #[test]
    fn which_lines_are_answered() {
        assert!(answered(b"{\"cmd\":\"ping\"}"));
        assert!(answered(b"x\r"));
        assert!(answered(b"\r\r"));
        assert!(!answered(b""));
        assert!(!answered(b" \t "));
        assert!(!answered(b"\r"));
        assert!(!answered(b"  \r"));
    }

    #[test]
    fn ok_and_pretty() {
        assert!(reply_ok("{\"ok\":true,\"pong\":true}\n"));
        assert!(!reply_ok("{\"ok\":false,\"error\":\"busy\"}\n"));
        assert!(!reply_ok("{\"cmd\":\"ping\"}"));
        assert!(!reply_ok("not json"));
        assert_eq!(
            render("{\"ok\":true,\"readings\":[]}\n", false),
            "{\"ok\":true,\"readings\":[]}"
        );
        assert_eq!(
            render("{\"ok\":true,\"hum\":60.0,\"age_ms\":3}\n", true),
            "{\n  \"ok\": true,\n  \"hum\": 60.0,\n  \"age_ms\": 3\n}"
        );
        assert_eq!(render("garbage\n", true), "garbage");
    }
}
