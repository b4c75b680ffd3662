//! The dashboard in a real browser: Debian's chromium, headless, driven
//! through the DevTools protocol. The page must show every location's
//! newest values, take a reading sent over TCP afterwards within 2 s
//! without a reload, draw the history, and log no console errors. A
//! screenshot is saved in the target directory.
//!
//! Without chromium the test says so and passes, unless
//! ENVHUB_REQUIRE_ALL=1 (CI), where a skip is a failure.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Rig, Row};
use envhub_host::services::unix_ms;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Emulation;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a live reading may take to show.
const LIVE_LIMIT: Duration = Duration::from_secs(2);

fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var_os("ENVHUB_CHROMIUM").unwrap_or_else(|| CHROMIUM.into()));
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} not found (apt-get install chromium)", path.display());
    if std::env::var_os("ENVHUB_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("ENVHUB_REQUIRE_ALL=1 and {why}");
    }
    eprintln!("skipped: {why}");
    None
}

fn launch(chromium: &Path, profile: &Path) -> Browser {
    let args: Vec<&OsStr> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--force-prefers-reduced-motion",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let opts = LaunchOptions::default_builder()
        .path(Some(chromium.to_owned()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1000, 860)))
        .user_data_dir(Some(profile.to_owned()))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(args)
        .build()
        .expect("launch options");
    Browser::new(opts).expect("start chromium")
}

/// Evaluates `expr` (which must give a string) in the page.
fn eval(tab: &Tab, expr: &str) -> String {
    let obj = tab
        .evaluate(expr, false)
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    match obj.value {
        Some(serde_json::Value::String(s)) => s,
        other => panic!("{expr} gave {other:?}"),
    }
}

/// Waits until `expr` gives the string "true"; the time it took.
#[track_caller]
fn wait_for(tab: &Tab, expr: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if eval(tab, &format!("String(!!({expr}))")) == "true" {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!(
                "not within {limit:?}: {expr}; page: {}",
                eval(tab, "document.body.innerText")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A day of readings every 5 minutes per room, like a real house.
fn day_of_rooms(now: i64) -> Vec<Row> {
    let rooms = [
        ("bedroom", 19.0, 55.0),
        ("Tom's room", 21.0, 45.0),
        ("Küche", 22.5, 40.0),
    ];
    let mut rows = Vec::new();
    for i in (0..288i64).rev() {
        let ts = now - i * 300_000;
        let phase = (ts % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU;
        for (n, (room, temp, hum)) in rooms.iter().enumerate() {
            let wave = (phase + n as f64).sin();
            rows.push(Row::new(
                ts,
                room,
                ((temp + 2.0 * wave) * 10.0).round() / 10.0,
                ((hum - 8.0 * wave) * 10.0).round() / 10.0,
            ));
        }
    }
    rows
}

#[test]
fn the_dashboard_shows_live_readings_and_history_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let now = unix_ms();
    let rig = Rig::with_db(&day_of_rooms(now), 64);
    let browser = launch(&chromium, &rig.dir.path().join("chromium-profile"));
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(Duration::from_secs(20));

    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let errors = Arc::clone(&errors);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let error = match event {
                Event::LogEntryAdded(e) if format!("{:?}", e.params.entry.level) == "Error" => {
                    Some(format!(
                        "log: {} ({:?})",
                        e.params.entry.text, e.params.entry.url
                    ))
                }
                Event::RuntimeConsoleAPICalled(e) if format!("{:?}", e.params.Type) == "Error" => {
                    Some(format!("console.error: {:?}", e.params.args))
                }
                Event::RuntimeExceptionThrown(e) => {
                    Some(format!("exception: {:?}", e.params.exception_details))
                }
                _ => None,
            };
            if let Some(error) = error {
                errors.lock().unwrap().push(error);
            }
        }))
        .unwrap();
    }
    tab.enable_log().unwrap();
    tab.enable_runtime().unwrap();

    let url = format!("http://{}/", rig.http_addr);
    tab.navigate_to(&url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();

    // Every location's newest values, from the history's newest rows.
    wait_for(
        &tab,
        "document.querySelectorAll('.card').length === 3",
        Duration::from_secs(10),
    );
    let cards = eval(
        &tab,
        "JSON.stringify([...document.querySelectorAll('.card')].map(c => \
           [c.dataset.location, c.querySelector('.temp').textContent, c.querySelector('.hum').textContent, \
            c.querySelector('.age').textContent]))",
    );
    let cards: Vec<[String; 4]> = serde_json::from_str(&cards).unwrap();
    let newest = day_of_rooms(now)
        .into_iter()
        .rev()
        .take(3)
        .collect::<Vec<_>>();
    let mut expected: Vec<&Row> = newest.iter().collect();
    expected.sort_by(|a, b| a.location.cmp(&b.location));
    assert_eq!(cards.len(), 3);
    for (card, row) in cards.iter().zip(&expected) {
        assert_eq!(card[0], row.location);
        assert_eq!(card[1], format!("{:.1} °C", row.temp), "{card:?}");
        assert_eq!(card[2], format!("{:.1} %", row.hum), "{card:?}");
        assert!(
            card[3].starts_with("updated ") && card[3].ends_with(" s ago"),
            "{card:?}"
        );
    }
    // The live stream is open.
    wait_for(
        &tab,
        "document.getElementById('live').textContent === 'live'",
        Duration::from_secs(10),
    );

    // The chart draws the first location's last hour: points, and pixels.
    wait_for(
        &tab,
        "Number(document.getElementById('chart').dataset.points) >= 12",
        Duration::from_secs(10),
    );
    // The 24 h range: more points.
    eval(
        &tab,
        "document.querySelector('button[data-range=\"86400000\"]').click(), ''",
    );
    wait_for(
        &tab,
        "Number(document.getElementById('chart').dataset.points) >= 250",
        Duration::from_secs(10),
    );
    let inked = eval(
        &tab,
        "(() => { const c = document.querySelector('#chart canvas'); \
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return String(n); })()",
    );
    assert!(
        inked.parse::<u64>().unwrap() > 2_000,
        "the chart is (almost) blank: {inked} pixels"
    );

    // A reading sent over TCP now shows without a reload, within 2 s.
    let replies = rig.send(&[r#"{"location":"Tom's room","temp":23.4,"hum":41.2,"seq":1}"#]);
    assert!(replies[0].starts_with(r#"{"ok":true"#), "{replies:?}");
    let took = wait_for(
        &tab,
        "[...document.querySelectorAll('.card')].some(c => c.dataset.location === \"Tom's room\" && \
           c.querySelector('.temp').textContent === '23.4 °C' && c.querySelector('.hum').textContent === '41.2 %')",
        LIVE_LIMIT,
    );
    eprintln!("a TCP reading showed on the page after {took:?}");
    // A new location gets a card of its own, in order.
    rig.send(&[r#"{"location":"attic","temp":30.1,"hum":20,"seq":2}"#]);
    wait_for(
        &tab,
        "[...document.querySelectorAll('.card')].map(c => c.dataset.location).join('|') === \
           \"Küche|Tom's room|attic|bedroom\"",
        LIVE_LIMIT,
    );
    std::thread::sleep(Duration::from_millis(1_200)); // the flash fades, ages tick

    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("a screenshot");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[test]
fn without_history_the_page_shows_cards_and_says_history_is_off() {
    let Some(chromium) = chromium() else { return };
    let rig = Rig::no_db(64);
    rig.send(&[r#"{"location":"hall","temp":20.5,"hum":50}"#]);
    let browser = launch(&chromium, &rig.dir.path().join("chromium-profile"));
    let tab = browser.new_tab().expect("a tab");
    tab.navigate_to(&format!("http://{}/", rig.http_addr))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_for(
        &tab,
        "document.querySelectorAll('.card').length === 1",
        Duration::from_secs(10),
    );
    wait_for(
        &tab,
        "!document.getElementById('history-off').hidden",
        Duration::from_secs(5),
    );
    wait_for(
        &tab,
        "document.getElementById('history').hidden",
        Duration::from_secs(5),
    );
    assert_eq!(
        eval(&tab, "document.querySelector('.card .temp').textContent"),
        "20.5 °C"
    );
    let text = eval(&tab, "document.getElementById('history-off').textContent");
    assert!(
        text.contains("History is off") && text.contains("--no-db"),
        "{text}"
    );

    // Light and dark follow the system setting.
    let background = || eval(&tab, "getComputedStyle(document.body).backgroundColor");
    for (scheme, expected) in [("dark", "rgb(21, 25, 29)"), ("light", "rgb(246, 247, 249)")] {
        tab.call_method(Emulation::SetEmulatedMedia {
            media: None,
            features: Some(vec![Emulation::MediaFeature {
                name: "prefers-color-scheme".into(),
                value: scheme.into(),
            }]),
        })
        .expect("emulate the colour scheme");
        assert_eq!(background(), expected, "{scheme}");
    }
}
