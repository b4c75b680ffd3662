//! The client built into the host binary (`envhub send`, `latest`, `stats`)
//! against a real server, and the README's tour run as written. The client
//! is the host's program, so these run where the host shell runs; the
//! server they talk to is the host server.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use envhub_tests::*;

/// Runs `envhub ARGS` with `stdin` as its standard input.
fn envhub(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(Shell::Host.binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start envhub");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    // Written from a thread, so that replies can flow while input does.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("wait for envhub");
    writer.join().expect("stdin writer");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code, stdout, stderr.
fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let out = envhub(args, stdin);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn send_reading(server: &Server, location: &str, temp: &str, hum: &str) -> (i32, String, String) {
    let to = server.addr().to_string();
    run(
        &[
            "send",
            "--to",
            &to,
            "--location",
            location,
            "--temp",
            temp,
            "--hum",
            hum,
        ],
        b"",
    )
}

/// A loopback address where nothing listens (bound, then released).
fn nobody_listens() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

fn send_one_reading(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let to = server.addr().to_string();
    let (code, out, err) = run(
        &[
            "send",
            "--to",
            &to,
            "--location",
            "living_room",
            "--temp",
            "25.55",
            "--hum",
            "60",
            "--seq",
            "4294967295",
        ],
        b"",
    );
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out,
        "{\"ok\":true,\"location\":\"living_room\",\"temp\":25.6,\"hum\":60.0,\"seq\":4294967295}\n"
    );
    // A name that needs escaping in JSON (a space and non-ASCII are sent
    // as they are; quotes and backslashes would be escaped, and the server
    // refuses them in a location).
    let (code, out, _) = send_reading(&server, "salle à manger", "-0.04", "0");
    assert_eq!(code, 0);
    assert_eq!(out, stored("salle à manger", "0.0", "0.0", None) + "\n");

    // The reading is there for everyone, and `latest` prints it.
    let mut c = server.connect();
    let (reply, ages) = mask(
        &c.request(r#"{"cmd":"latest","location":"living_room"}"#),
        "age_ms",
    );
    assert_eq!(ages.len(), 1);
    let (code, out, _) = run(&["latest", "--to", &to, "--location", "living_room"], b"");
    assert_eq!(code, 0);
    assert_eq!(mask(out.trim_end(), "age_ms").0, reply);
    let (code, out, _) = run(&["latest", "--to", &to], b"");
    assert_eq!(code, 0);
    let all: serde_json::Value = serde_json::from_str(&out).expect("latest is JSON");
    assert_eq!(all["readings"].as_array().map(Vec::len), Some(2), "{out}");

    // --pretty: the same reply, indented, keys in the protocol's order.
    let (code, out, _) = run(
        &[
            "latest",
            "--to",
            &to,
            "--location",
            "living_room",
            "--pretty",
        ],
        b"",
    );
    assert_eq!(code, 0);
    assert!(
        out.starts_with("{\n  \"ok\": true,\n  \"readings\": [\n    {\n      \"location\": \"living_room\",\n      \"temp\": 25.6,\n      \"hum\": 60.0,\n      \"age_ms\": "),
        "{out}"
    );

    // `stats` counts what the client did: its own connection is the 7th.
    let (code, out, _) = run(&["stats", "--to", &to], b"");
    assert_eq!(code, 0);
    let stats = Stats::parse(out.trim_end());
    assert_eq!(
        (stats.client, stats.readings, stats.errors),
        (7, 2, 0),
        "{out}"
    );
}

fn send_gets_an_error_reply(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let to = server.addr().to_string();
    let (code, out, _) = send_reading(&server, "attic", "130", "40");
    assert_eq!(code, 1);
    assert_eq!(out, invalid("temp") + "\n");
    let (code, out, _) = send_reading(&server, "a\"b", "20", "40");
    assert_eq!(code, 1);
    assert_eq!(out, invalid("location") + "\n");
    let long = "x".repeat(33);
    let (code, out, _) = send_reading(&server, &long, "20", "40");
    assert_eq!(code, 1);
    assert_eq!(out, invalid("location") + "\n");
    let (code, out, _) = run(&["latest", "--to", &to, "--location", "cellar"], b"");
    assert_eq!(code, 1);
    assert_eq!(out, error("unknown_location") + "\n");
    // Nothing was stored.
    let (code, out, _) = run(&["latest", "--to", &to], b"");
    assert_eq!((code, out.as_str()), (0, "{\"ok\":true,\"readings\":[]}\n"));
}

fn send_to_a_full_server_gets_busy(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(1));
    let mut held = server.connect();
    held.expect(r#"{"cmd":"ping"}"#, r#"{"ok":true,"pong":true}"#);
    let (code, out, _) = send_reading(&server, "hall", "20", "40");
    assert_eq!(code, 1);
    assert_eq!(out, error("busy") + "\n");
}

fn no_server_exits_2(_shell: Shell) {
    let to = nobody_listens().to_string();
    for args in [
        &[
            "send",
            "--to",
            &to,
            "--location",
            "x",
            "--temp",
            "1",
            "--hum",
            "2",
        ][..],
        &["send", "--to", &to, "-"],
        &["latest", "--to", &to],
        &["stats", "--to", &to, "--pretty"],
    ] {
        let (code, out, err) = run(args, b"{\"cmd\":\"ping\"}\n");
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(out, "", "{args:?}");
        assert!(
            err.starts_with("envhub: cannot connect to ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    // A usage error is exit 2 as well, with clap's message.
    let (code, _, err) = run(&["send", "--to", &to, "--location", "x"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("--temp"), "{err}");
}

fn stdin_lines_are_pipelined(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let to = server.addr().to_string();
    // 300 answered lines, blank ones (no reply) between them, and a last
    // line without its LF (answered at EOF).
    let mut input = String::new();
    let mut expected = String::new();
    for i in 0..299 {
        if i % 3 == 0 {
            input.push_str(&format!(
                "{{\"location\":\"room{}\",\"temp\":{}.25,\"hum\":50,\"seq\":{i}}}\n",
                i % 10,
                i % 40
            ));
            expected.push_str(&stored(
                &format!("room{}", i % 10),
                &format!("{}.3", i % 40),
                "50.0",
                Some(i),
            ));
        } else {
            input.push_str("{\"cmd\":\"ping\"}\r\n");
            expected.push_str("{\"ok\":true,\"pong\":true}");
        }
        expected.push('\n');
        if i % 50 == 0 {
            input.push_str("\n \t\n\r\n");
        }
    }
    input.push_str("{\"cmd\":\"stats\"}");
    let out = envhub(&["send", "--to", &to, "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (body, last) = stdout
        .trim_end()
        .rsplit_once('\n')
        .expect("more than one reply");
    assert_eq!(format!("{body}\n"), expected);
    // All of it went over one connection (the first), in one session.
    let stats = Stats::parse(last);
    assert_eq!((stats.client, stats.readings), (1, 100), "{last}");

    // One error among them: every line is still answered, in order; exit 1.
    let input = "{\"cmd\":\"ping\"}\n{\"cmd\":\"nope\"}\nnot json\n{\"cmd\":\"ping\"}\n";
    let (code, out, _) = run(&["send", "--to", &to, "-"], input.as_bytes());
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "{{\"ok\":true,\"pong\":true}}\n{}\n{}\n{{\"ok\":true,\"pong\":true}}\n",
            error("unknown_cmd"),
            error("invalid_json")
        )
    );

    // No input: nothing to say, exit 0.
    let (code, out, _) = run(&["send", "--to", &to, "-"], b"");
    assert_eq!((code, out.as_str()), (0, ""));

    // The server closes before answering every line (`bye`): exit 2.
    let input = "{\"cmd\":\"bye\"}\n{\"cmd\":\"ping\"}\n";
    let (code, out, err) = run(&["send", "--to", &to, "-"], input.as_bytes());
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out, "{\"ok\":true,\"bye\":true}\n");
    assert!(err.contains("closed the connection"), "{err}");
}

fn readme_tour_runs_as_written(shell: Shell) {
    let readme = repo().join("README.md");
    let readme = std::fs::read_to_string(&readme).expect("read README.md");
    let tour = tour(&readme);
    assert!(tour.len() >= 5, "the tour has only {} commands", tour.len());
    let server = Server::start(shell, Opts::default());
    let to = server.addr().to_string();
    let bin_dir = Shell::Host.binary().parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (command, expected) in tour {
        assert!(command.contains("127.0.0.1:8080"), "{command}");
        let line = command.replace("127.0.0.1:8080", &to);
        let out = Command::new("sh")
            .args(["-c", &line])
            .env("PATH", &path)
            .output()
            .expect("run sh");
        let got = text(&out.stdout);
        assert_eq!(
            normalize(&got),
            normalize(&expected),
            "`{command}` printed\n{got}stderr: {}",
            text(&out.stderr)
        );
        let ok = expected
            .lines()
            .filter(|l| l.starts_with('{') && l.ends_with('}'))
            .all(|l| l.contains("\"ok\":true"));
        let want = if ok { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "`{command}`");
    }
}

fn protocol_python_sensor_runs(shell: Shell) {
    if !tools::require(
        "protocol_python_sensor_runs",
        "python3",
        &["--version"],
        "python3",
    ) {
        return;
    }
    let protocol = std::fs::read_to_string(repo().join("docs/PROTOCOL.md")).expect("read");
    let start = protocol.find("### Python").expect("a Python section");
    let code = fenced(&protocol[start..], "```python").expect("a python block");
    let server = Server::start(shell, Opts::default());
    let port = server.addr().port().to_string();
    assert!(code.contains("8080"));
    let out = Command::new("python3")
        .arg("-c")
        .arg(code.replace("8080", &port))
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("'ok': True"), "{printed}");
    let mut c = server.connect();
    let (reply, _) = mask(&c.request(r#"{"cmd":"latest"}"#), "age_ms");
    let (want, _) = mask(&latest(&[("living_room", "21.5", "40.0")]), "age_ms");
    assert_eq!(reply, want);
}

e2e_tests!(
    #[shells(host)] // the client is the host's program
    send_one_reading,
    send_gets_an_error_reply,
    send_to_a_full_server_gets_busy,
    no_server_exits_2,
    stdin_lines_are_pipelined,
    readme_tour_runs_as_written,
    protocol_python_sensor_runs,
);

/// The repository's top folder.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The first fenced block after `opening` in `text`.
fn fenced(text: &str, opening: &str) -> Option<String> {
    let start = text.find(opening)? + opening.len();
    let body = &text[start..];
    let body = body.strip_prefix('\n')?;
    let end = body.find("\n```")?;
    Some(body[..end].to_string())
}

/// The README's tour: the console block after the `<!-- tour` marker, as
/// `(command, expected output)` pairs, one per `$ ` line.
fn tour(readme: &str) -> Vec<(String, String)> {
    let marker = readme.find("<!-- tour").expect("the README marks its tour");
    let block = fenced(&readme[marker..], "```console").expect("a console block");
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            pairs.push((command.to_string(), String::new()));
        } else if let Some((_, expected)) = pairs.last_mut() {
            expected.push_str(line);
            expected.push('\n');
        }
    }
    pairs
}

/// Output with what varies from run to run (ages, uptime) masked.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for key in ["\"age_ms\":", "\"uptime_ms\":"] {
            let mut from = 0;
            while let Some(at) = line[from..].find(key) {
                let mut digits = from + at + key.len();
                // `--pretty` puts a space after the colon.
                while line[digits..].starts_with(' ') {
                    digits += 1;
                }
                let end = line[digits..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |n| digits + n);
                line.replace_range(digits..end, "N");
                from = digits + 1;
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn normalize_masks_only_the_varying_numbers() {
    assert_eq!(
        normalize("{\"ok\":true,\"readings\":[{\"location\":\"a\",\"temp\":1.0,\"hum\":2.0,\"age_ms\":1234}],\"x\":5}"),
        "{\"ok\":true,\"readings\":[{\"location\":\"a\",\"temp\":1.0,\"hum\":2.0,\"age_ms\":N}],\"x\":5}\n"
    );
    assert_eq!(normalize("  \"age_ms\": 77\n"), "  \"age_ms\": N\n");
    assert_eq!(
        normalize("{\"client\":7,\"uptime_ms\":15208}"),
        "{\"client\":7,\"uptime_ms\":N}\n"
    );
}
