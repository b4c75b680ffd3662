//! The bridge's threads and its loop: everything that does I/O.
//!
//! - `mqtt-conn` owns rumqttc's event loop (a fresh client per connection
//!   attempt, so nothing of a dead session leaks into the next), forwards
//!   every event, and sleeps the backoff between attempts.
//! - `mqtt-feed` turns the feed of kept readings into messages: a wake-up
//!   with history on, the readings themselves with `--no-db`.
//! - `mqtt-bridge` owns the state: the source, the window of readings in
//!   flight, discovery, the status counters. It never blocks anyone: the
//!   sensor path only publishes to the feed, which never waits.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use rumqttc::{Client, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::mqtt::backoff::Backoff;
use crate::mqtt::payload::{state_payload, Quantity, Row, Topics};
use crate::mqtt::settings::Settings;
use crate::mqtt::source::{Log, Queue};
use crate::mqtt::window::Window;
use crate::services::{Kept, Services};

/// Requests the bridge may queue to the event loop: the window, a burst of
/// discovery for new locations, status and subscription, with room to spare.
const REQUEST_CAP: usize = 4096;
/// Packet ids rumqttc may use (its own flow-control limit): far above what
/// the bridge keeps in flight, so a packet id is never reused too early.
const RUMQTTC_INFLIGHT: u16 = 1000;
/// How long the bridge sleeps when nothing happens.
const TICK: Duration = Duration::from_millis(50);
/// Discovery republished after a reconnect or Home Assistant's `online` is
/// spread: this many locations per [`TICK`].
const ANNOUNCE_PER_TICK: usize = 4;
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// How long stopping waits for `offline` and DISCONNECT to go out.
const STOP_WAIT: Duration = Duration::from_millis(400);
/// MQTT keep-alive.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// After a batch of work, the feed and bridge threads let this much more
/// arrive before they look again: one wake-up per batch, not per reading.
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// The nice value of the bridge's threads. The bridge is deferred work (the
/// readings wait on disk or in the queue), so when the CPU is short the
/// sensor path goes first and the bridge catches up afterwards.
const NICE: i32 = 10;

enum Msg {
    Session(u64, Client),
    Event(u64, Event),
    Down(u64, ConnectionError),
    Readings(Vec<Arc<Kept>>),
    Lagged(u64),
    Stop,
}

/// The running bridge; [`Bridge::stop`] ends it.
#[derive(Debug)]
pub struct Bridge {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

enum Source {
    Log(Log),
    Queue(Queue),
}

impl Bridge {
    /// Starts forwarding: from the `readings` table of the database at `db`
    /// (history on), or from the feed through a bounded queue (`None`).
    /// Subscribes to the feed before returning, so no reading kept after
    /// this call is missed. Fails only if the database cannot be opened.
    pub fn start(
        settings: Settings,
        services: Arc<Services>,
        db: Option<&Path>,
    ) -> Result<Bridge, String> {
        let feed = services.feed.subscribe();
        let mut known = BTreeSet::new();
        let source = match db {
            Some(path) => {
                let log = Log::open(path)
                    .map_err(|e| format!("MQTT: cannot read {}: {e}", path.display()))?;
                known.extend(
                    log.locations()
                        .map_err(|e| format!("MQTT: cannot read {}: {e}", path.display()))?,
                );
                Source::Log(log)
            }
            None => Source::Queue(Queue::new(settings.queue)),
        };
        services.status.mqtt.store(true, Relaxed);
        let (tx, rx) = mpsc::channel();

        let feed_tx = tx.clone();
        thread::Builder::new()
            .name("mqtt-feed".into())
            .spawn(move || feed_loop(feed, &feed_tx))
            .map_err(|e| format!("MQTT: cannot start a thread: {e}"))?;

        let conn_stop = Arc::new(AtomicBool::new(false));
        let (conn_done_tx, conn_done) = mpsc::channel();
        {
            let settings = settings.clone();
            let tx = tx.clone();
            let stop = Arc::clone(&conn_stop);
            thread::Builder::new()
                .name("mqtt-conn".into())
                .spawn(move || {
                    connect_loop(&settings, &tx, &stop);
                    let _ = conn_done_tx.send(());
                })
                .map_err(|e| format!("MQTT: cannot start a thread: {e}"))?;
        }

        let mut state = State {
            topics: Topics::new(&settings),
            settings,
            services,
            source,
            window: Window::new(),
            held: None,
            tags: VecDeque::new(),
            session: 0,
            client: None,
            connected: false,
            known,
            announced: HashSet::new(),
            to_announce: VecDeque::new(),
            outage: None,
            dropped: 0,
            drop_logged: false,
            db_error_logged: false,
        };
        let thread = thread::Builder::new()
            .name("mqtt-bridge".into())
            .spawn(move || {
                state.run(&rx);
                state.stop(&conn_stop, &conn_done);
            })
            .map_err(|e| format!("MQTT: cannot start a thread: {e}"))?;
        Ok(Bridge {
            tx,
            thread: Some(thread),
        })
    }

    /// Says `offline`, disconnects, writes the cursor; returns within about
    /// half a second even if the broker does not answer.
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The client options for `settings`: clean session, last will `offline`.
fn options(settings: &Settings, topics: &Topics) -> MqttOptions {
    let mut o = MqttOptions::new(settings.client_id(), settings.host.clone(), settings.port);
    o.set_keep_alive(KEEP_ALIVE)
        .set_clean_session(true)
        .set_inflight(RUMQTTC_INFLIGHT)
        .set_last_will(LastWill::new(
            topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((user, password)) = &settings.credentials {
        o.set_credentials(user.clone(), password.clone());
    }
    o
}

/// `mqtt-conn`: one client per attempt, events forwarded, backoff between.
fn connect_loop(settings: &Settings, tx: &Sender<Msg>, stop: &AtomicBool) {
    lower_priority();
    let topics = Topics::new(settings);
    let mut backoff = Backoff::new(Backoff::seed());
    let mut session = 0;
    while !stop.load(Relaxed) {
        session += 1;
        let (client, mut connection) = Client::new(options(settings, &topics), REQUEST_CAP);
        if tx.send(Msg::Session(session, client)).is_err() {
            return;
        }
        let mut up_since = None;
        loop {
            match connection.recv() {
                Ok(Ok(event)) => {
                    if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                        up_since = Some(Instant::now());
                    }
                    if tx.send(Msg::Event(session, event)).is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Msg::Down(session, e));
                    break;
                }
                // The bridge dropped the client: it is stopping.
                Err(_) => return,
            }
        }
        if up_since.is_some_and(|t: Instant| t.elapsed() >= STABLE) {
            backoff.reset();
        }
        let wake = Instant::now() + backoff.next_delay();
        while !stop.load(Relaxed) && Instant::now() < wake {
            thread::sleep(TICK.min(wake.saturating_duration_since(Instant::now())));
        }
    }
}

/// `mqtt-feed`: kept readings to the bridge, in batches. The sensor path
/// wakes this thread only when it waits on an empty feed.
fn feed_loop(mut feed: tokio::sync::broadcast::Receiver<Arc<Kept>>, tx: &Sender<Msg>) {
    lower_priority();
    loop {
        let mut batch = match feed.blocking_recv() {
            Ok(kept) => vec![kept],
            Err(RecvError::Lagged(n)) => {
                if tx.send(Msg::Lagged(n)).is_err() {
                    return;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        loop {
            match feed.try_recv() {
                Ok(kept) => batch.push(kept),
                Err(TryRecvError::Lagged(n)) => {
                    if tx.send(Msg::Lagged(n)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        if tx.send(Msg::Readings(batch)).is_err() {
            return;
        }
        thread::sleep(BATCH_PAUSE);
    }
}

/// Makes the calling thread yield to the sensor path (Linux: per thread).
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        debug!("MQTT: cannot lower the bridge's priority: {e}");
    }
}

struct State {
    settings: Settings,
    topics: Topics,
    services: Arc<Services>,
    source: Source,
    window: Window,
    /// A reading taken from the source that the client did not accept.
    held: Option<Row>,
    /// One entry per publish request not yet sent, in order: whether it is
    /// a reading (its packet id goes to the window).
    tags: VecDeque<bool>,
    session: u64,
    client: Option<Client>,
    connected: bool,
    /// Every location seen (for discovery after a reconnect).
    known: BTreeSet<String>,
    /// Locations whose configs went out on this connection.
    announced: HashSet<String>,
    /// Locations whose configs are due, spread over time.
    to_announce: VecDeque<String>,
    /// Since when the broker is away (the outage was logged).
    outage: Option<Instant>,
    /// Readings dropped from the full queue in this outage.
    dropped: u64,
    drop_logged: bool,
    db_error_logged: bool,
}

impl State {
    fn run(&mut self, rx: &Receiver<Msg>) {
        lower_priority();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let busy = first.is_some();
            for msg in first.into_iter().chain(rx.try_iter().take(REQUEST_CAP)) {
                if matches!(msg, Msg::Stop) {
                    return;
                }
                self.handle(msg);
            }
            self.count_drops();
            self.announce_some();
            self.pump();
            if let Source::Log(log) = &mut self.source {
                let saved = log.save(false);
                self.db_result(saved);
            }
            self.update_status();
            if busy {
                thread::sleep(BATCH_PAUSE);
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Session(session, client) => {
                self.session = session;
                self.client = Some(client);
                self.connected = false;
                self.tags.clear();
            }
            Msg::Event(session, event) if session == self.session => self.event(event),
            Msg::Down(session, e) if session == self.session => self.down(&e),
            Msg::Event(..) | Msg::Down(..) | Msg::Stop => {}
            Msg::Readings(batch) => {
                for kept in batch {
                    match &mut self.source {
                        Source::Log(log) => log.committed(kept.id),
                        Source::Queue(q) => q.push(Row::from(&*kept)),
                    }
                }
            }
            Msg::Lagged(n) => match &mut self.source {
                Source::Log(log) => log.committed(0),
                Source::Queue(q) => q.lost(n),
            },
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => self.connected_now(),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let reading = self.tags.pop_front() == Some(true);
                if reading {
                    self.window.sent(pkid);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let done = self.window.acked(ack.pkid);
                if let Some(last) = done.last() {
                    if let Source::Log(log) = &mut self.source {
                        log.acked(last.id);
                    }
                    self.services
                        .status
                        .mqtt_published
                        .fetch_add(done.len() as u64, Relaxed);
                }
            }
            Event::Incoming(Packet::Publish(p))
                if self.settings.discovery
                    && p.topic == self.topics.ha_status()
                    && p.payload.as_ref() == b"online" =>
            {
                info!("Home Assistant is online: sending discovery again");
                self.announce_all();
            }
            _ => {}
        }
    }

    fn connected_now(&mut self) {
        self.connected = true;
        let waiting = self.backlog();
        match self.outage.take() {
            Some(since) => info!(
                "MQTT broker {}: connected again after {:.1} s; {waiting} reading(s) to forward",
                self.settings.broker(),
                since.elapsed().as_secs_f64()
            ),
            None => info!(
                "MQTT broker {}: connected as {}",
                self.settings.broker(),
                self.settings.client_id()
            ),
        }
        self.report_drops();
        self.publish(self.topics.status(), "online".into(), false);
        if self.settings.discovery {
            if let Some(client) = &self.client {
                let _ = client.try_subscribe(self.topics.ha_status(), QoS::AtLeastOnce);
            }
            self.announce_all();
        }
    }

    fn down(&mut self, e: &ConnectionError) {
        self.connected = false;
        self.client = None;
        self.tags.clear();
        let unacked = self.window.clear();
        let held = self.held.take();
        match &mut self.source {
            Source::Log(log) => log.rewind(),
            Source::Queue(q) => q.requeue(unacked.into_iter().chain(held).collect()),
        }
        if self.outage.is_none() {
            self.outage = Some(Instant::now());
            let place = match self.source {
                Source::Log(_) => "on disk",
                Source::Queue(_) => "in memory (--no-db)",
            };
            warn!(
                "MQTT broker {}: {e}; readings wait {place} and go out when it is back (retrying with backoff)",
                self.settings.broker()
            );
        } else {
            debug!("MQTT broker {}: still away: {e}", self.settings.broker());
        }
    }

    fn announce_all(&mut self) {
        self.announced.clear();
        self.to_announce = self.known.iter().cloned().collect();
    }

    /// A few of the due discovery configs (spread over time).
    fn announce_some(&mut self) {
        if !self.connected || !self.settings.discovery {
            return;
        }
        let mut n = 0;
        while n < ANNOUNCE_PER_TICK {
            let Some(location) = self.to_announce.pop_front() else {
                break;
            };
            if !self.announced.contains(&location) {
                self.announce(&location);
                n += 1;
            }
        }
    }

    fn announce(&mut self, location: &str) {
        for q in Quantity::BOTH {
            let topic = self.topics.config(location, q);
            let payload = self.topics.config_payload(location, q);
            self.publish(topic, payload, false);
        }
        self.announced.insert(location.to_string());
    }

    /// Retained, QoS 1. Returns whether the client took it.
    fn publish(&mut self, topic: String, payload: String, reading: bool) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        match client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
            Ok(()) => {
                self.tags.push_back(reading);
                true
            }
            Err(e) => {
                debug!("MQTT: publish not queued: {e}");
                false
            }
        }
    }

    /// Publishes readings while the window has room.
    fn pump(&mut self) {
        if !self.connected {
            return;
        }
        while self.window.has_room() {
            let row = match self.held.take() {
                Some(row) => row,
                None => match self.next_row() {
                    Some(row) => row,
                    None => return,
                },
            };
            if !self.known.contains(&row.location) {
                self.known.insert(row.location.clone());
            }
            if self.settings.discovery && !self.announced.contains(&row.location) {
                self.announce(&row.location.clone());
            }
            let topic = self.topics.state(&row.location);
            if self.publish(topic, state_payload(&row), true) {
                self.window.push(row);
            } else {
                self.held = Some(row);
                return;
            }
        }
    }

    fn next_row(&mut self) -> Option<Row> {
        match &mut self.source {
            Source::Queue(q) => q.take(),
            Source::Log(log) => {
                let next = log.take();
                match next {
                    Ok(row) => {
                        self.db_error_logged = false;
                        row
                    }
                    Err(e) => {
                        self.db_result(Err(e));
                        None
                    }
                }
            }
        }
    }

    fn db_result(&mut self, result: rusqlite::Result<()>) {
        if let Err(e) = result {
            if !self.db_error_logged {
                warn!("MQTT: cannot use the history database: {e}; retrying");
                self.db_error_logged = true;
            }
        }
    }

    fn count_drops(&mut self) {
        if let Source::Queue(q) = &mut self.source {
            let n = q.take_dropped();
            if n > 0 {
                self.dropped += n;
                if !self.drop_logged {
                    warn!(
                        "MQTT: the queue is full (--mqtt-queue {}): dropping the oldest readings until the broker takes them",
                        self.settings.queue
                    );
                    self.drop_logged = true;
                }
            }
            if self.connected && q.is_empty() && self.dropped > 0 {
                self.report_drops();
            }
        }
    }

    /// Says how many readings the full queue dropped, once per episode:
    /// when the broker is back, or when the queue has drained.
    fn report_drops(&mut self) {
        if self.dropped > 0 {
            warn!(
                "MQTT: {} reading(s) were dropped from the full queue (--mqtt-queue {})",
                self.dropped, self.settings.queue
            );
        }
        self.dropped = 0;
        self.drop_logged = false;
    }

    fn backlog(&self) -> u64 {
        match &self.source {
            Source::Log(log) => log.backlog(),
            Source::Queue(q) => {
                (q.len() + self.window.len() + usize::from(self.held.is_some())) as u64
            }
        }
    }

    fn update_status(&self) {
        let status = &self.services.status;
        status.mqtt_connected.store(self.connected, Relaxed);
        status.mqtt_backlog.store(self.backlog(), Relaxed);
    }

    /// `offline`, DISCONNECT, the cursor written, the connection thread
    /// told to stop.
    fn stop(&mut self, conn_stop: &AtomicBool, conn_done: &Receiver<()>) {
        conn_stop.store(true, Relaxed);
        if self.connected {
            self.publish(self.topics.status(), "offline".into(), false);
            if let Some(client) = &self.client {
                let _ = client.try_disconnect();
            }
        }
        self.client = None;
        if let Source::Log(log) = &mut self.source {
            let saved = log.save(true);
            self.db_result(saved);
        }
        self.connected = false;
        self.update_status();
        let _ = conn_done.recv_timeout(STOP_WAIT);
    }
}
