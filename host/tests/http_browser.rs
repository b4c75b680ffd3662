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
use std::time::{Duration, Instant};

use common::{Rig, Row};
use envhub_host::services::unix_ms;
use headless_chrome::protocol::cdp::Emulation;
use headless_chrome::protocol::cdp::Page::{self, CaptureScreenshotFormatOption};
use headless_chrome::{Browser, LaunchOptions, Tab};

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a live reading may take to show.
const LIVE_LIMIT: Duration = Duration::from_secs(2);

/// How long loading the page may take on a busy machine (a failure
/// bound, not a speed check).
const NAVIGATION_LIMIT: Duration = Duration::from_secs(90);

/// One browser at a time: two chromiums on a busy 2-core machine starve
/// each other.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// Records what would show as an error in the console.
const ERROR_TRAP: &str = "window.__errors = []; \
  const error = console.error.bind(console); \
  console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); error(...a); }; \
  window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.target.src || e.target.href)), true); \
  window.addEventListener('unhandledrejection', e => window.__errors.push('rejection: ' + e.reason));";

/// Loads `url` and waits until the page has loaded (polling, not through
/// DevTools events; see `ERROR_TRAP`).
fn open(tab: &Tab, url: &str) {
    tab.navigate_to(url).expect("navigate");
    wait_for(
        tab,
        &format!("location.href === {url:?} && document.readyState === 'complete'"),
        NAVIGATION_LIMIT,
    );
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
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let now = unix_ms();
    let rig = Rig::with_db(&day_of_rooms(now), 64);
    let browser = launch(&chromium, &rig.dir.path().join("chromium-profile"));
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(NAVIGATION_LIMIT);

    // Console errors, uncaught exceptions and failed loads, recorded in the
    // page itself from before its first script. (Not through DevTools
    // events: with serde_json's `arbitrary_precision`, which the workspace
    // build enables for another crate, headless_chrome cannot parse them.)
    tab.call_method(Page::AddScriptToEvaluateOnNewDocument {
        source: ERROR_TRAP.into(),
        world_name: None,
        include_command_line_api: None,
        run_immediately: None,
    })
    .expect("install the error trap");

    let url = format!("http://{}/", rig.http_addr);
    open(&tab, &url);

    // Every location's newest values, from the history's newest rows.
    wait_for(
        &tab,
        "document.querySelectorAll('.card').length === 3",
        Duration::from_secs(30),
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
        Duration::from_secs(30),
    );

    // The chart draws the first location's last hour: points, and pixels.
    wait_for(
        &tab,
        "Number(document.getElementById('chart').dataset.points) >= 12",
        Duration::from_secs(30),
    );
    // The 24 h range: more points.
    eval(
        &tab,
        "document.querySelector('button[data-range=\"86400000\"]').click(), ''",
    );
    wait_for(
        &tab,
        "Number(document.getElementById('chart').dataset.points) >= 250",
        Duration::from_secs(30),
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

    let errors = eval(
        &tab,
        "JSON.stringify(window.__errors.concat(performance.getEntriesByType('resource') \
           .filter(r => r.responseStatus >= 400).map(r => 'HTTP ' + r.responseStatus + ' ' + r.name)))",
    );
    assert_eq!(errors, "[]", "errors in the page");
    // The trap itself works.
    eval(&tab, "console.error('probe'), ''");
    assert_eq!(
        eval(&tab, "JSON.stringify(window.__errors)"),
        r#"["console.error: probe"]"#
    );
}

#[test]
fn without_history_the_page_shows_cards_and_says_history_is_off() {
    let Some(chromium) = chromium() else { return };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::no_db(64);
    rig.send(&[r#"{"location":"hall","temp":20.5,"hum":50}"#]);
    let browser = launch(&chromium, &rig.dir.path().join("chromium-profile"));
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(NAVIGATION_LIMIT);
    open(&tab, &format!("http://{}/", rig.http_addr));
    wait_for(
        &tab,
        "document.querySelectorAll('.card').length === 1",
        Duration::from_secs(30),
    );
    wait_for(
        &tab,
        "!document.getElementById('history-off').hidden",
        Duration::from_secs(30),
    );
    wait_for(
        &tab,
        "document.getElementById('history').hidden",
        Duration::from_secs(30),
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
