//! `--encoding gbk`: clients that speak GBK instead of UTF-8.
//!
//! Host only: the flag belongs to `envhub`; the TAP server and the firmware
//! speak UTF-8 alone.

use encoding_rs::GBK;
use envhub_tests::*;

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = GBK.encode(text);
    assert!(!unmappable, "{text} has no GBK form");
    bytes.into_owned()
}

fn from_gbk(bytes: &[u8]) -> String {
    let (text, _, malformed) = GBK.decode(bytes);
    assert!(!malformed, "reply is not GBK: {}", show(bytes));
    text.into_owned()
}

/// A location in Chinese characters sent in GBK is echoed in GBK, in
/// the acknowledgement and in `latest`.
fn gbk_location_round_trip(shell: Shell) {
    let server = Server::start(shell, Opts::default().arg("--encoding").arg("gbk"));
    let mut c = server.connect();
    let request = gbk(&reading("客厅", "21.5", "40"));
    assert_ne!(
        request,
        reading("客厅", "21.5", "40").into_bytes(),
        "GBK differs from UTF-8"
    );
    c.send_line(&request);
    assert_eq!(
        c.recv_line_bytes(),
        gbk(&stored("客厅", "21.5", "40.0", None)),
        "acknowledgement in GBK"
    );
    c.send_line(gbk(&reading("卧室", "19", "55.55")));
    assert_eq!(
        c.recv_line_bytes(),
        gbk(&stored("卧室", "19.0", "55.6", None))
    );
    c.send_line(gbk(r#"{"cmd":"latest","location":"客厅"}"#));
    let reply = c.recv_line_bytes();
    let (masked, _) = mask(&from_gbk(&reply), "age_ms");
    assert_eq!(masked, latest(&[("客厅", "21.5", "40.0")]));
    c.send_line(gbk(r#"{"cmd":"latest"}"#));
    let reply = c.recv_line_bytes();
    let text = from_gbk(&reply);
    assert_eq!(gbk(&text), reply, "latest is GBK");
    // Sorted bytewise by UTF-8: 卧 (E5 8D A7) before 客 (E5 AE A2).
    let (masked, _) = mask(&text, "age_ms");
    assert_eq!(
        masked,
        latest(&[("卧室", "19.0", "55.6"), ("客厅", "21.5", "40.0")])
    );
    // ASCII is the same in both.
    c.expect(r#"{"cmd":"ping"}"#, PONG);
}

e2e_tests! {
    #[shells(host)] // `--encoding` is a flag of the host server only
    gbk_location_round_trip,
}
