//! Hostile clients (issue 13): connections that never finish their headers or sit idle are
//! closed by the node while everyone else is still served; the admin key never appears on a
//! command line.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A generous bound: every slow connection must be gone well within it.
const CLOSE_BOUND: Duration = Duration::from_secs(30);

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{src}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Read one response (headers plus a Content-Length body) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.expect("answer in time").unwrap();
        assert!(n > 0, "closed before the response was complete: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

/// How a hostile connection behaves.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends part of a request line, then one more byte every 200 ms, never finishing it.
    DripRequestLine,
    /// Sends a request line and a header, then drips the header's value forever.
    DripHeaders,
    /// Makes one complete request, reads the answer, then keeps the connection open and idle.
    IdleKeepAlive,
}

/// Open the connection and behave like `kind` until the server closes it; returns when that
/// happened (`None` if it had not within [`CLOSE_BOUND`]).
async fn hostile(kind: Kind, src: &'static str, to: SocketAddr, opened: tokio::sync::mpsc::Sender<()>) -> Option<Instant> {
    let mut s = connect_from(src, to).await;
    match kind {
        Kind::Silent => {}
        Kind::DripRequestLine => s.write_all(b"GET /hea").await.unwrap(),
        Kind::DripHeaders => s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Drip: ").await.unwrap(),
        Kind::IdleKeepAlive => {
            s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let answer = read_response(&mut s).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    opened.send(()).await.unwrap();
    let drips = matches!(kind, Kind::DripRequestLine | Kind::DripHeaders);
    let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some(Instant::now()), // EOF or reset: closed by the server
                Ok(_) => {} // an error answer before the close is fine; keep reading
            },
            _ = tick.tick(), if drips => {
                if s.write_all(b"a").await.is_err() {
                    return Some(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_while_other_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &["--header-read-timeout", "4s", "--idle-timeout", "4s"]);
    let api: SocketAddr = format!("127.0.0.1:{}", node.port).parse().unwrap();
    let metrics: SocketAddr = node.metrics_url.trim_start_matches("http://").trim_end_matches("/metrics").parse().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // 120 hostile connections to the API from three addresses (40 each, under the per-IP cap),
        // and 12 to the metrics listener.
        let kinds = [Kind::Silent, Kind::DripRequestLine, Kind::DripHeaders, Kind::IdleKeepAlive];
        let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(200);
        let mut tasks = Vec::new();
        for (i, src) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].into_iter().enumerate() {
            for j in 0..40 {
                let kind = kinds[(i + j) % kinds.len()];
                tasks.push((kind, "api", tokio::spawn(hostile(kind, src, api, opened_tx.clone()))));
            }
        }
        for j in 0..12 {
            let kind = kinds[j % 3]; // the first three: metrics has no keep-alive scrape here
            tasks.push((kind, "metrics", tokio::spawn(hostile(kind, "127.0.0.5", metrics, opened_tx.clone()))));
        }
        drop(opened_tx);
        for _ in 0..tasks.len() {
            opened_rx.recv().await.expect("every hostile connection opened");
        }

        // While they are all open, another client is served, on a kept-alive connection too.
        let mut client = connect_from("127.0.0.1", api).await;
        client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let first = read_response(&mut client).await;
        client
            .write_all(b"POST /attest/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let second = read_response(&mut client).await;
        let served_at = Instant::now();
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(second.starts_with("HTTP/1.1 200") && second.contains("\"nonce\""), "{second}");

        // Every hostile connection is closed by the server, and only after that client was served.
        for (kind, listener, task) in tasks {
            let closed = task.await.unwrap();
            let closed = closed.unwrap_or_else(|| panic!("a {kind:?} connection to the {listener} listener was still open after {CLOSE_BOUND:?}"));
            assert!(closed > served_at, "a {kind:?} connection to the {listener} listener was closed before the other client was served");
        }
    });

    // The node still serves everybody.
    assert_eq!(node.get("/health").0, 200);
    assert!(node.metrics().contains("# EOF"));
}

#[test]
fn shutdown_finishes_the_request_in_flight_and_drops_waiting_connections() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // Long connection timeouts: only the shutdown can close the waiting connection in time.
    let node = TestNode::start(&dir.path().join("node"), &["--request-timeout", "6s", "--header-read-timeout", "60s", "--idle-timeout", "60s"]);
    let addr = format!("127.0.0.1:{}", node.port);
    // Connections that have sent nothing, or half a request line.
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let mut partial = std::net::TcpStream::connect(&addr).unwrap();
    partial.write_all(b"GET /hea").unwrap();
    // A request in flight: its body never completes, so it ends with the request timeout's 408.
    // The node's "100 Continue" says the handler has started reading it.
    let mut busy = std::net::TcpStream::connect(&addr).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    busy.write_all(b"POST /attest/submit HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert_eq!(busy.read(&mut byte).unwrap(), 1, "closed before 100 Continue: {}", String::from_utf8_lossy(&interim));
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));
    busy.write_all(b"{").unwrap();
    let stopped = std::thread::spawn(move || {
        let mut node = node;
        let status = node.terminate();
        (status, node)
    });
    // The waiting connections are closed at once; the request in flight still gets its answer, later.
    let answered = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = busy.read_to_end(&mut answer);
        (String::from_utf8_lossy(&answer).into_owned(), Instant::now())
    });
    let mut buf = [0u8; 64];
    for conn in [&mut silent, &mut partial] {
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)), "a waiting connection was not closed");
    }
    let waiting_closed = Instant::now();
    let (answer, answered_at) = answered.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("REQUEST_TIMEOUT"), "the request in flight was cut: {answer:?}");
    assert!(waiting_closed < answered_at, "a waiting connection was kept open until the request in flight was done");
    let (status, node) = stopped.join().unwrap();
    assert!(status.success(), "log:\n{}", node.log_text());
    assert!(node.log_text().contains("stopped cleanly"));
}

/// `rustchain node` for `dir` with `args`, its stderr in `log`, and no admin key from this
/// process's environment.
fn node_command(node: &TestNode, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustchain"));
    cmd.args(["node", "--data-dir", node.data_dir.to_str().unwrap(), "--http-addr", &format!("127.0.0.1:{}", node.port)])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--p2p-addr", &format!("/ip4/127.0.0.1/tcp/{}", node.p2p_port)])
        .args(["--rate-limit-per-minute", "0", "--admin-rate-limit-per-minute", "0"])
        .args(args)
        .env_remove("RUSTCHAIN_ADMIN_KEY")
        .env_remove("RUSTCHAIN_ADMIN_KEY_FILE");
    cmd
}

fn cmdline(node: &TestNode) -> String {
    let pid = node.child.as_ref().unwrap().id();
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ")
}

fn admin_backup_status(node: &TestNode, key: &str) -> u16 {
    node.post_raw("/admin/backup?compress=none", vec![], &[("x-admin-key", key)]).0
}

#[test]
fn the_admin_key_comes_from_a_file_or_the_environment_never_the_command_line() {
    let dir = tempfile::tempdir().unwrap();

    // From a file (the harness's --admin-key-file): admin works, and no command line shows the key.
    let node = TestNode::start(&dir.path().join("file"), &[]);
    assert_eq!(admin_backup_status(&node, ADMIN_KEY), 200);
    assert_eq!(admin_backup_status(&node, "wrong"), 401);
    let line = cmdline(&node);
    assert!(line.contains("--admin-key-file") && !line.contains(ADMIN_KEY), "{line}");
    drop(node);

    // From the environment.
    let mut node = TestNode::new(&dir.path().join("env"), &[]);
    let child = node_command(&node, &[])
        .env("RUSTCHAIN_ADMIN_KEY", "key-from-the-environment")
        .stderr(std::fs::File::create(&node.log).unwrap())
        .spawn()
        .unwrap();
    node.child = Some(child);
    node.wait_ready();
    assert_eq!(admin_backup_status(&node, "key-from-the-environment"), 200);
    assert!(!cmdline(&node).contains("key-from-the-environment"));
    assert!(!node.log_text().contains("key-from-the-environment"), "the key is never logged");
    drop(node);

    // On the command line: refused, naming both alternatives.
    let refused = TestNode::new(&dir.path().join("flag"), &[]);
    for args in [&["--admin-key", "hunter2"][..], &["--admin-key=hunter2"], &["--admin-key"]] {
        let out = node_command(&refused, args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains("--admin-key is not accepted") && err.contains("--admin-key-file FILE") && err.contains("RUSTCHAIN_ADMIN_KEY"), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "the refusal repeats the key: {err}");
    }

    // A key file every user can read is refused too.
    let open_file = dir.path().join("open.key");
    std::fs::write(&open_file, "hunter2\n").unwrap();
    std::fs::set_permissions(&open_file, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644)).unwrap();
    let out = node_command(&refused, &["--admin-key-file", open_file.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("readable by every user") && err.contains("chmod 600"), "{err}");
}
