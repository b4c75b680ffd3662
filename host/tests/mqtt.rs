//! The MQTT bridge against a real Mosquitto (issue 9).
//!
//! Each test starts its own `mosquitto` on 127.0.0.1 on a free port with a
//! configuration in a temporary directory, and stops it. Without
//! `mosquitto` the tests print `SKIPPED` and pass, unless
//! `ENVHUB_REQUIRE_ALL=1`. The subscriber is rumqttc, like the bridge.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use envhub_core::{Location, Tenths};
use envhub_host::mqtt::{Bridge, Settings};
use envhub_host::services::{Kept, Services};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

// ---- temporary directories ----------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "envhub-mqtt-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Mosquitto started as root drops to its own user: let it write here.
        chmod(&dir, 0o777);
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---- the broker ---------------------------------------------------------

/// `mosquitto`, or `None` after printing why the test is skipped.
fn mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = "mosquitto is not installed (apt-get install mosquitto)";
        if std::env::var("ENVHUB_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{why}, and ENVHUB_REQUIRE_ALL=1");
        }
        eprintln!("SKIPPED: {why}");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// A broker with persistence (so a subscriber's session survives a
    /// restart of the broker) and `auth` lines in its configuration.
    fn start(bin: &Path, auth: &str) -> Broker {
        let dir = TempDir::new("broker");
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\n{auth}\npersistence true\npersistence_location {}/\n\
             max_queued_messages 0\nlog_dest file {}/mosquitto.log\nlog_type all\n",
            dir.path().display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            bin: bin.to_path_buf(),
            dir,
            port,
            child: None,
        };
        b.up();
        b
    }

    fn anonymous(bin: &Path) -> Broker {
        Broker::start(bin, "allow_anonymous true")
    }

    fn up(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (Mosquitto saves its persistence file) and wait.
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---- the subscriber -----------------------------------------------------

#[derive(Debug, Clone)]
struct Message {
    topic: String,
    payload: String,
    retain: bool,
}

struct Sub {
    client: Client,
    messages: Arc<Mutex<Vec<Message>>>,
    stop: Arc<AtomicBool>,
}

impl Sub {
    /// Subscribes to `filters` (QoS 1) and waits for the SUBACK. With
    /// `clean == false` the session (and messages queued for it) survives
    /// a restart of the broker.
    fn new(port: u16, id: &str, filters: &[&str], clean: bool) -> Sub {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 16, 1 << 16);
        let (client, mut connection) = Client::new(o, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = Arc::clone(&stop);
            let client = client.clone();
            let messages = Arc::clone(&messages);
            let subscribed = Arc::clone(&subscribed);
            let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
            thread::spawn(move || loop {
                if stop.load(SeqCst) {
                    return;
                }
                match connection.recv() {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        if !ack.session_present {
                            for f in &filters {
                                let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                            }
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed.store(true, SeqCst),
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        messages.lock().unwrap().push(Message {
                            topic: p.topic.clone(),
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retain: p.retain,
                        })
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => thread::sleep(Duration::from_millis(50)),
                    Err(_) => return,
                }
            });
        }
        wait("the SUBACK", Duration::from_secs(10), || {
            subscribed.load(SeqCst)
        });
        Sub {
            client,
            messages,
            stop,
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    fn on(&self, topic_part: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.contains(topic_part))
            .collect()
    }

    fn clear(&self) {
        self.messages.lock().unwrap().clear();
    }

    fn wait_for(&self, what: &str, n: usize, topic_part: &str) -> Vec<Message> {
        wait(what, Duration::from_secs(20), || {
            self.on(topic_part).len() >= n
        });
        self.on(topic_part)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        let _ = self.client.try_disconnect();
    }
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- the gateway --------------------------------------------------------

struct Envhub {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Envhub {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Envhub {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_envhub"));
        // No dashboard: its default port is one for every test.
        cmd.args(["--bind", "127.0.0.1:0", "--http", "off"]);
        // Never a database in the source tree: --no-db unless the test
        // names one in its temporary directory.
        if !args.contains(&"--db") {
            cmd.arg("--no-db");
        }
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env_remove("ENVHUB_MQTT_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let log = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no listening line: {first:?}; {}", stderr.lock().unwrap()))
            .parse()
            .unwrap();
        Envhub {
            child,
            addr,
            stderr,
        }
    }

    /// Sends `lines` on one connection and returns the replies.
    fn send(&self, lines: &[String]) -> Vec<String> {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = String::new();
        for l in lines {
            all.push_str(l);
            all.push('\n');
        }
        s.write_all(all.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        (0..lines.len())
            .map(|_| {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                l
            })
            .collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn term(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Envhub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reading(location: &str, temp10: i32, hum10: i32, seq: u32) -> String {
    let loc = Value::from(location);
    let tenths = |v: i32| {
        let sign = if v < 0 { "-" } else { "" };
        format!("{sign}{}.{}", v.abs() / 10, v.abs() % 10)
    };
    format!(
        "{{\"location\":{loc},\"temp\":{},\"hum\":{},\"seq\":{seq}}}",
        tenths(temp10),
        tenths(hum10)
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

// ---- the tests ----------------------------------------------------------

/// Names with spaces, non-ASCII, `/`, `+` and `#`: safe topics, distinct
/// slugs, and every discovery key, live and retained.
#[test]
fn discovery_payloads_for_awkward_names() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(
        broker.port,
        "t-disc",
        &["homeassistant/#", "envhub/#"],
        true,
    );
    let gw = Envhub::start(&["--mqtt", &broker.url(), "--gateway-id", "gw1"], &[]);
    // Expected slugs, by the rule: safe bytes kept, others '_', and a hash
    // suffix when anything was replaced.
    let names: [(&str, &str); 6] = [
        ("plain", "plain"),
        ("living room", "living_room_"),
        ("客厅", "_______"),
        ("a/b", "a_b_"),
        ("a+b", "a_b_"),
        ("a#b", "a_b_"),
    ];
    let lines: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, (n, _))| reading(n, 200 + i as i32, 455, i as u32))
        .collect();
    for reply in gw.send(&lines) {
        assert!(reply.starts_with("{\"ok\":true"), "{reply}");
    }
    let configs = sub.wait_for("12 configs", 12, "/config");
    let states = sub.wait_for("6 states", 6, "/state");
    assert_eq!(configs.len(), 12, "{configs:#?}");
    assert_eq!(states.len(), 6, "{states:#?}");

    let mut slugs = std::collections::BTreeSet::new();
    for (i, (name, expected)) in names.iter().enumerate() {
        let state = states
            .iter()
            .find(|m| json(&m.payload)["location"] == *name)
            .unwrap_or_else(|| panic!("no state for {name}"));
        let s = json(&state.payload);
        assert_eq!(s["temp"].to_string(), format!("{}.{}", 20, i));
        assert_eq!(s["hum"].to_string(), "45.5");
        assert_eq!(s["seq"], i);
        assert!(s["ts_ms"].as_i64().unwrap() > 1_700_000_000_000);
        let levels: Vec<&str> = state.topic.split('/').collect();
        assert_eq!(levels.len(), 4, "{}", state.topic);
        assert_eq!(
            (levels[0], levels[1], levels[3]),
            ("envhub", "gw1", "state")
        );
        let slug = levels[2];
        assert!(slug.chars().all(is_slug_char), "{slug}");
        if *expected == "plain" {
            assert_eq!(slug, "plain");
        } else {
            let (head, hash) = slug.rsplit_once('_').unwrap();
            assert_eq!(format!("{head}_"), *expected, "{name} -> {slug}");
            assert!(
                hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                "{slug}"
            );
        }
        assert!(slugs.insert(slug.to_string()), "{slug} shared");

        for (q, key, class, unit) in [
            ("temperature", "temp", "temperature", "°C"),
            ("humidity", "hum", "humidity", "%"),
        ] {
            let object_id = format!("gw1_{slug}_{q}");
            let topic = format!("homeassistant/sensor/{object_id}/config");
            let m = configs
                .iter()
                .find(|m| m.topic == topic)
                .unwrap_or_else(|| panic!("no {topic}"));
            let c = json(&m.payload);
            assert!(c["name"].as_str().is_some_and(|n| !n.is_empty()), "{c}");
            assert_eq!(c["unique_id"], object_id.as_str());
            assert_eq!(c["state_topic"], state.topic.as_str());
            assert_eq!(
                c["value_template"],
                format!("{{{{ value_json.{key} }}}}").as_str()
            );
            assert_eq!(c["device_class"], class);
            assert_eq!(c["unit_of_measurement"], unit);
            assert_eq!(c["state_class"], "measurement");
            assert_eq!(c["availability_topic"], "envhub/gw1/status");
            let d = &c["device"];
            let ids = d["identifiers"].as_array().unwrap();
            assert!(!ids.is_empty() && ids.iter().all(Value::is_string), "{d}");
            assert_eq!(d["name"], *name);
            assert_eq!(d["manufacturer"], "envhub");
            assert_eq!(d["via_device"], "envhub_gw1");
        }
    }

    // Everything is retained: a newcomer gets configs, states and status.
    let late = Sub::new(
        broker.port,
        "t-late",
        &["homeassistant/#", "envhub/#"],
        true,
    );
    let got = late.wait_for("retained", 12 + 6 + 1, "");
    assert!(got.iter().all(|m| m.retain), "{got:#?}");
    assert!(got
        .iter()
        .any(|m| m.topic == "envhub/gw1/status" && m.payload == "online"));
}

/// Exactly one state message per reading, in order, with the reading's
/// values (`--no-db`: from the feed through the queue).
#[test]
fn one_state_message_per_reading() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-one", &["envhub/#"], true);
    let gw = Envhub::start(
        &[
            "--mqtt",
            &broker.url(),
            "--gateway-id",
            "gw",
            "--no-ha-discovery",
        ],
        &[],
    );
    let lines: Vec<String> = (1..=150)
        .flat_map(|i| {
            [
                reading("hall", i, 500, i as u32),
                reading("attic", -i, i, i as u32),
            ]
        })
        .collect();
    assert!(gw
        .send(&lines)
        .iter()
        .all(|r| r.starts_with("{\"ok\":true")));
    sub.wait_for("300 states", 300, "/state");
    thread::sleep(Duration::from_millis(500));
    let states = sub.on("/state");
    assert_eq!(states.len(), 300, "one message per reading");
    for (loc, sign) in [("hall", 1), ("attic", -1)] {
        let mine: Vec<Value> = states
            .iter()
            .filter(|m| m.topic == format!("envhub/gw/{loc}/state"))
            .map(|m| json(&m.payload))
            .collect();
        assert_eq!(mine.len(), 150);
        for (i, s) in mine.iter().enumerate() {
            let n = i as i64 + 1;
            assert_eq!(s["seq"], n);
            assert_eq!(s["location"], loc);
            assert_eq!(s["temp"].as_f64().unwrap(), (sign * n) as f64 / 10.0);
        }
    }
    assert!(sub.on("homeassistant/").is_empty(), "--no-ha-discovery");
}

/// The history database as the server opens it (schema, WAL, lock), for
/// tests that drive the bridge without the server. The lock is returned
/// too: it must live as long as the connection.
fn create_history(path: &Path) -> envhub_host::history::schema::Opened {
    envhub_host::history::schema::open_rw(path, envhub_host::history::Sync::Normal).unwrap()
}

/// What the history writer does for each acknowledged reading: commit the
/// row, then publish it on the feed.
fn keep(conn: &rusqlite::Connection, services: &Services, location: &str, seq: u32) {
    conn.execute(
        "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            1_764_460_800_000_i64 + i64::from(seq),
            location,
            f64::from(seq) / 10.0,
            50.0,
            seq
        ],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    services.feed.publish(|| Kept {
        id,
        ts_ms: 1_764_460_800_000,
        location: Location::new(location).unwrap(),
        temp: Tenths(seq as i16),
        hum: Tenths(500),
        seq: Some(seq),
    });
}

fn settings(broker: &Broker, gateway: &str) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port: broker.port,
        gateway_id: gateway.into(),
        prefix: "envhub".into(),
        ha_prefix: "homeassistant".into(),
        discovery: true,
        credentials: None,
        queue: 10_000,
    }
}

/// The broker goes away while 300 readings are acked, and the gateway is
/// restarted during the outage: when the broker is back, every reading
/// arrives, in order per location; the cursor ends at the last row.
#[test]
fn nothing_is_lost_over_an_outage_and_a_restart() {
    let Some(bin) = mosquitto() else { return };
    let dir = TempDir::new("history");
    let db = dir.path().join("envhub.db");
    let history = create_history(&db);
    let conn = &history.conn;
    let mut broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-outage", &["envhub/gw/+/state"], false);

    let services = Arc::new(Services::new());
    let bridge = Bridge::start(settings(&broker, "gw"), Arc::clone(&services), Some(&db)).unwrap();
    wait("connected", Duration::from_secs(10), || {
        services.status.mqtt_connected.load(SeqCst)
    });
    let locations = ["hall", "kitchen", "attic"];
    let mut seq = 0;
    for _ in 0..5 {
        for loc in locations {
            seq += 1;
            keep(conn, &services, loc, seq);
        }
    }
    sub.wait_for("15 states", 15, "/state");

    broker.down();
    wait("disconnected", Duration::from_secs(10), || {
        !services.status.mqtt_connected.load(SeqCst)
    });
    for _ in 0..100 {
        for loc in locations {
            seq += 1;
            keep(conn, &services, loc, seq);
        }
    }
    wait("the backlog", Duration::from_secs(5), || {
        services.status.mqtt_backlog.load(SeqCst) == 300
    });
    bridge.stop();

    // The restarted gateway (a new bridge on the same database) takes more
    // readings before the broker is back.
    let services = Arc::new(Services::new());
    let bridge = Bridge::start(settings(&broker, "gw"), Arc::clone(&services), Some(&db)).unwrap();
    for _ in 0..10 {
        for loc in locations {
            seq += 1;
            keep(conn, &services, loc, seq);
        }
    }
    thread::sleep(Duration::from_millis(300));
    broker.up();

    let total = seq as usize;
    wait("every reading", Duration::from_secs(30), || {
        let mut seen = std::collections::BTreeSet::new();
        for m in sub.on("/state") {
            seen.insert(json(&m.payload)["seq"].as_u64().unwrap());
        }
        seen.len() == total
    });
    let mut per_location: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in sub.on("/state") {
        let s = json(&m.payload);
        per_location
            .entry(s["location"].as_str().unwrap().to_string())
            .or_default()
            .push(s["seq"].as_u64().unwrap());
    }
    for (loc, seqs) in &per_location {
        // At least once: a reading may come twice around a restart; the
        // first arrivals are in order and complete.
        let mut first = Vec::new();
        for s in seqs {
            if !first.contains(s) {
                first.push(*s);
            }
        }
        assert!(first.windows(2).all(|w| w[0] < w[1]), "{loc}: {seqs:?}");
        assert_eq!(first.len(), total / 3, "{loc}");
    }
    wait("the backlog drained", Duration::from_secs(10), || {
        services.status.mqtt_backlog.load(SeqCst) == 0
    });
    bridge.stop();
    let cursor: i64 = conn
        .query_row("SELECT last_id FROM mqtt_cursor", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cursor, i64::from(seq), "the cursor is at the last row");
}

/// `homeassistant/status` `online` brings every config again.
#[test]
fn home_assistant_online_brings_the_configs_again() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-ha", &["homeassistant/sensor/#"], true);
    let gw = Envhub::start(&["--mqtt", &broker.url(), "--gateway-id", "gw"], &[]);
    gw.send(&[reading("hall", 215, 400, 1), reading("den", 200, 410, 1)]);
    sub.wait_for("4 configs", 4, "/config");
    thread::sleep(Duration::from_millis(300));
    sub.clear();
    sub.client
        .publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .unwrap();
    let again = sub.wait_for("the configs again", 4, "/config");
    let topics: std::collections::BTreeSet<_> = again.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics.len(), 4, "{topics:?}");
    assert!(gw.stderr().contains("Home Assistant is online"));
}

/// `kill -9` of the gateway: the broker publishes the last will `offline`.
#[test]
fn kill_9_makes_the_broker_say_offline() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-will", &["envhub/gw/status"], true);
    let mut gw = Envhub::start(&["--mqtt", &broker.url(), "--gateway-id", "gw"], &[]);
    sub.wait_for("online", 1, "status");
    assert_eq!(sub.on("status")[0].payload, "online");
    gw.child.kill().unwrap();
    let _ = gw.child.wait();
    let got = sub.wait_for("offline", 2, "status");
    assert_eq!(got[1].payload, "offline");
    // And it is retained for whoever comes later.
    let late = Sub::new(broker.port, "t-will-late", &["envhub/gw/status"], true);
    let got = late.wait_for("retained offline", 1, "status");
    assert_eq!((got[0].payload.as_str(), got[0].retain), ("offline", true));
}

/// A graceful stop says `offline` too.
#[test]
fn sigterm_says_offline() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-term", &["envhub/gw/status"], true);
    let mut gw = Envhub::start(&["--mqtt", &broker.url(), "--gateway-id", "gw"], &[]);
    sub.wait_for("online", 1, "status");
    gw.term();
    let got = sub.wait_for("offline", 2, "status");
    assert_eq!(got[1].payload, "offline");
}

/// A wrong password is logged once and retried with backoff, not in a
/// loop; sensors are served meanwhile.
#[test]
fn a_wrong_password_is_logged_once_and_retried_with_backoff() {
    let Some(bin) = mosquitto() else { return };
    let dir = TempDir::new("passwd");
    let passwd = dir.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["envhub", "right"])
        .status();
    let auth = if made.is_ok_and(|s| s.success()) {
        chmod(&passwd, 0o644);
        format!("allow_anonymous false\npassword_file {}", passwd.display())
    } else {
        // Without mosquitto_passwd: no password file refuses every client.
        "allow_anonymous false".to_string()
    };
    let broker = Broker::start(&bin, &auth);
    let gw = Envhub::start(
        &[
            "--mqtt",
            &broker.url(),
            "--gateway-id",
            "gw",
            "--mqtt-user",
            "envhub",
        ],
        &[("ENVHUB_MQTT_PASSWORD", "wrong")],
    );
    let watch = Duration::from_millis(4500);
    let start = Instant::now();
    let reply = gw.send(&[reading("hall", 215, 400, 1)]);
    assert!(reply[0].starts_with("{\"ok\":true"), "{reply:?}");
    thread::sleep(watch.saturating_sub(start.elapsed()));
    let log = gw.stderr();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("MQTT broker") && l.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    // 0.5 s doubling, jittered to [base/2, base]: 4 or 5 attempts in 4.5 s.
    let attempts = broker.log().matches("New connection from").count();
    assert!(
        (3..=6).contains(&attempts),
        "{attempts} attempts:\n{}",
        broker.log()
    );
}

/// `--no-db`: the bounded queue keeps the newest readings while the broker
/// is away, drops the oldest, and says so once per outage.
#[test]
fn the_queue_keeps_the_newest_and_counts_the_dropped() {
    let Some(bin) = mosquitto() else { return };
    let mut broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-queue", &["envhub/gw/+/state"], false);
    broker.down();
    let gw = Envhub::start(
        &[
            "--mqtt",
            &broker.url(),
            "--gateway-id",
            "gw",
            "--mqtt-queue",
            "10",
        ],
        &[],
    );
    let lines: Vec<String> = (1..=50).map(|i| reading("hall", 200, 400, i)).collect();
    assert!(gw
        .send(&lines)
        .iter()
        .all(|r| r.starts_with("{\"ok\":true")));
    thread::sleep(Duration::from_millis(300));
    broker.up();
    sub.wait_for("10 states", 10, "/state");
    thread::sleep(Duration::from_millis(500));
    let seqs: Vec<u64> = sub
        .on("/state")
        .iter()
        .map(|m| json(&m.payload)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (41..=50).collect::<Vec<_>>());
    let log = gw.stderr();
    assert_eq!(log.matches("the queue is full").count(), 1, "{log}");
    assert_eq!(
        log.matches("40 reading(s) were dropped").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("WARN").count(),
        3,
        "outage, full, dropped:\n{log}"
    );
}

/// The same promise through the real gateway with history on: the broker
/// stops, 300 readings are acked (on disk), the gateway is restarted during
/// the outage and takes 30 more; when the broker is back, every reading
/// arrives, in order per location.
#[test]
fn nothing_is_lost_through_the_gateway_with_history() {
    let Some(bin) = mosquitto() else { return };
    let dir = TempDir::new("gateway-history");
    let db = dir.path().join("envhub.db");
    let db = db.to_str().unwrap();
    let mut broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-gw-outage", &["envhub/gw/+/state"], false);
    let args = ["--db", db, "--mqtt", &broker.url(), "--gateway-id", "gw"];
    let mut gw = Envhub::start(&args, &[]);
    let locations = ["hall", "kitchen", "attic"];
    let mut seq = 0;
    let batch = |n: usize, seq: &mut u32| -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..n {
            for loc in locations {
                *seq += 1;
                lines.push(reading(loc, 200, 400, *seq));
            }
        }
        lines
    };
    let ok = |replies: Vec<String>| replies.iter().all(|r| r.starts_with("{\"ok\":true"));
    assert!(ok(gw.send(&batch(5, &mut seq))));
    sub.wait_for("15 states", 15, "/state");
    broker.down();
    assert!(
        ok(gw.send(&batch(100, &mut seq))),
        "acked while the broker is down"
    );
    thread::sleep(Duration::from_millis(300));
    gw.term();
    let gw = Envhub::start(&args, &[]);
    assert!(ok(gw.send(&batch(10, &mut seq))));
    thread::sleep(Duration::from_millis(300));
    broker.up();
    let total = seq as usize;
    wait("every reading", Duration::from_secs(30), || {
        let seen: std::collections::BTreeSet<u64> = sub
            .on("/state")
            .iter()
            .map(|m| json(&m.payload)["seq"].as_u64().unwrap())
            .collect();
        seen.len() == total
    });
    let mut per_location: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in sub.on("/state") {
        let s = json(&m.payload);
        per_location
            .entry(s["location"].as_str().unwrap().to_string())
            .or_default()
            .push(s["seq"].as_u64().unwrap());
    }
    for (loc, seqs) in &per_location {
        let mut first = Vec::new();
        for s in seqs {
            if !first.contains(s) {
                first.push(*s);
            }
        }
        assert!(first.windows(2).all(|w| w[0] < w[1]), "{loc}: {seqs:?}");
        assert_eq!(first.len(), total / 3, "{loc}");
    }
    drop(gw);
}

/// Bad configuration: exit 2 with one line, before listening.
#[test]
fn bad_configuration_exits_2_with_one_line() {
    for args in [
        &["--mqtt", "tcp://127.0.0.1:1883"][..],
        &["--mqtt", "127.0.0.1:1883"],
        &["--mqtt", "mqtt://127.0.0.1:1883", "--gateway-id", "..."],
        &["--mqtt", "mqtt://127.0.0.1:99999"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_envhub"))
            .args(["--bind", "127.0.0.1:0", "--no-db"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("envhub: "), "{err}");
    }
}

/// `--mqtt-prefix` and `--ha-prefix` move every topic, Home Assistant's
/// status included.
#[test]
fn prefixes_move_every_topic() {
    let Some(bin) = mosquitto() else { return };
    let broker = Broker::anonymous(&bin);
    let sub = Sub::new(broker.port, "t-prefix", &["#"], true);
    let gw = Envhub::start(
        &[
            "--mqtt",
            &broker.url(),
            "--gateway-id",
            "gw",
            "--mqtt-prefix",
            "home/env",
            "--ha-prefix",
            "ha",
        ],
        &[],
    );
    gw.send(&[reading("hall", 215, 400, 1)]);
    sub.wait_for("2 configs", 2, "/config");
    sub.wait_for("the state", 1, "/state");
    let topics: std::collections::BTreeSet<String> =
        sub.messages().into_iter().map(|m| m.topic).collect();
    let want: std::collections::BTreeSet<String> = [
        "home/env/gw/status",
        "home/env/gw/hall/state",
        "ha/sensor/gw_hall_temperature/config",
        "ha/sensor/gw_hall_humidity/config",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(topics, want);
    let c = json(&sub.on("gw_hall_humidity/config")[0].payload);
    assert_eq!(c["state_topic"], "home/env/gw/hall/state");
    assert_eq!(c["availability_topic"], "home/env/gw/status");
    sub.clear();
    sub.client
        .publish("ha/status", QoS::AtLeastOnce, false, "online")
        .unwrap();
    sub.wait_for("the configs again", 2, "/config");
}
