//! `pooltriage serve` against hostile clients, over real sockets on loopback: request bodies
//! that never bring what the handler waits for, half-sent requests (slowloris), idle and
//! stalled connections, and one client opening hundreds of connections. Each test here failed
//! on the server before its fix (a request never answered, a socket held forever).

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, spawn_serve, upload_temp_files, ServeProcess};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const TRIAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/dumps/triage_x64.dmp"
);

/// Sends `head` + `body` on a new connection and reads the whole answer (the server closes
/// after it, or the read times out after `wait`). Returns the status code and the body text.
fn exchange(addr: SocketAddr, head: &str, body: &[u8], wait: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if complete_response(&got) {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "no answer within {wait:?} (waited {:?}); got {:?}",
                    started.elapsed(),
                    String::from_utf8_lossy(&got)
                )
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A response with a Content-Length whose body has fully arrived.
fn complete_response(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|n| body.len() >= n)
}

fn multipart_head(addr: SocketAddr, token: &str, boundary: &str, len: usize) -> String {
    format!(
        "POST /api/v1/dumps HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len}\r\n\
         Connection: close\r\n\r\n"
    )
}

#[test]
fn a_multipart_upload_without_a_file_part_is_answered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = spawn_serve(dir.path(), &[("POOLTRIAGE_UPLOAD_BURST", "1000")]);
    let b = "XyZ";
    let bodies: [(&str, String); 3] = [
        (
            "only a text field",
            format!("--{b}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{b}--\r\n"),
        ),
        ("no part at all", format!("--{b}--\r\n")),
        (
            "a broken part",
            format!("--{b}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{b}"),
        ),
    ];
    for (what, body) in &bodies {
        let head = multipart_head(addr, &token, b, body.len());
        let (status, text) = exchange(addr, &head, body.as_bytes(), Duration::from_secs(20));
        assert_eq!(status, 400, "{what}: {text}");
        assert!(text.contains("bad_multipart"), "{what}: {text}");
    }
    // Many at once (each used to hold a blocking thread forever): all answered, and a real
    // upload still goes through afterwards.
    let started = Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let token = token.clone();
            let body = bodies[0].1.clone();
            std::thread::spawn(move || {
                let head = multipart_head(addr, &token, "XyZ", body.len());
                exchange(addr, &head, body.as_bytes(), Duration::from_secs(30)).0
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 400);
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let dump = std::fs::read(TRIAGE).unwrap();
    let head = format!(
        "POST /api/v1/dumps HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        dump.len()
    );
    let (status, text) = exchange(addr, &head, &dump, Duration::from_secs(60));
    assert!(status == 201 || status == 200, "{status}: {text}");
    assert!(upload_temp_files(dir.path()).is_empty());
}

/// Waits until the server closes `s` (read gives EOF or a reset); returns how long it took.
fn closed_within(mut s: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            // A 408 from the server before it closes is fine.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {limit:?}")
            }
            Err(_) => return started.elapsed(),
        }
    }
}

/// The server's open sockets (its other descriptors, database connections, come and go with
/// the pool).
fn open_sockets(serve: &ServeProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", serve.id()))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

fn strict_server(dir: &Path) -> (ServeProcess, SocketAddr) {
    spawn_serve(
        dir,
        &[
            ("POOLTRIAGE_HEADER_TIMEOUT_SECS", "2"),
            ("POOLTRIAGE_BODY_IDLE_TIMEOUT_SECS", "2"),
            ("POOLTRIAGE_MAX_CONNECTIONS_PER_CLIENT", "20"),
            ("POOLTRIAGE_UPLOAD_BURST", "100"),
        ],
    )
}

#[test]
fn half_sent_and_idle_requests_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, addr) = strict_server(dir.path());
    // Half a request line.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /api/v1/dum").unwrap();
    // Half a header block, then one more header byte a second.
    let mut dribble = TcpStream::connect(addr).unwrap();
    dribble
        .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Nothing at all.
    let silent = TcpStream::connect(addr).unwrap();
    let dribbler = std::thread::spawn({
        let mut d = dribble.try_clone().unwrap();
        move || {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(700));
                if d.write_all(b"X").is_err() {
                    break;
                }
            }
        }
    });
    for (what, s) in [
        ("half line", half),
        ("dribbled headers", dribble),
        ("silent", silent),
    ] {
        let t = closed_within(s, Duration::from_secs(10));
        assert!(t < Duration::from_secs(5), "{what}: closed after {t:?}");
    }
    let _ = dribbler.join();
    // A keep-alive connection after a full exchange is closed once idle for as long.
    let mut ka = TcpStream::connect(addr).unwrap();
    ka.write_all(format!("GET /api/v1/openapi.json HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !complete_response(&got) {
        let n = ka.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let t = closed_within(ka, Duration::from_secs(10));
    assert!(
        t < Duration::from_secs(5),
        "idle keep-alive closed after {t:?}"
    );
}

#[test]
fn a_stalled_upload_is_cut_off_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = strict_server(dir.path());
    let dump = std::fs::read(TRIAGE).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST /api/v1/dumps HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\n\r\n",
            dump.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&dump[..dump.len() / 2]).unwrap();
    // The upload's temporary file exists while it streams...
    let started = Instant::now();
    while upload_temp_files(dir.path()).is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !upload_temp_files(dir.path()).is_empty(),
        "no temporary file seen"
    );
    // ...then the client stalls: the server answers and removes it.
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete_response(&got) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("incomplete_upload"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let gone = Instant::now();
    while !upload_temp_files(dir.path()).is_empty() && gone.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        upload_temp_files(dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// A connection from another loopback address (all of 127/8 is this machine).
fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    sock.into()
}

#[test]
fn one_client_flooding_connections_does_not_shut_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, addr) = strict_server(dir.path());
    let get =
        format!("GET /api/v1/openapi.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(exchange(addr, &get, b"", Duration::from_secs(5)).0, 200);
    let before = open_sockets(&serve);
    // 200 half-sent requests from one address: 20 are served (and time out), the rest are
    // closed at once.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| {
            let mut s = connect_from("127.0.0.2", addr);
            s.write_all(b"GET / HT").ok().map(|()| s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = open_sockets(&serve);
    assert!(
        during <= before + 30,
        "server holds {during} sockets with the flood, {before} before"
    );
    // Another client is served at once.
    let started = Instant::now();
    let (status, _) = exchange(addr, &get, b"", Duration::from_secs(5));
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // After the header timeout, the flooder's connections are all closed.
    let started = Instant::now();
    for s in flood {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        closed_within(s, left.max(Duration::from_millis(100)));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = open_sockets(&serve);
    assert!(
        after <= before,
        "{after} sockets after the flood, {before} before"
    );
}

/// The headers of an answer, lower-case names.
fn headers_of(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<(String, String)>) {
    let mut req = ureq::get(&format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let names = resp.headers_names();
    let pairs = names
        .iter()
        .map(|n| {
            (
                n.to_ascii_lowercase(),
                resp.header(n).unwrap_or("").to_string(),
            )
        })
        .collect();
    (resp.status(), pairs)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn every_answer_carries_the_browser_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = spawn_serve(dir.path(), &[]);
    // A page, the JSON API, an error and a static asset.
    for (path, auth, status) in [
        ("/login", None, 200),
        ("/api/v1/dumps", Some(token.as_str()), 200),
        ("/api/v1/dumps/0123", Some(token.as_str()), 404),
        ("/static/style.css", None, 200),
    ] {
        let (code, h) = headers_of(addr, path, auth);
        assert_eq!(code, status, "{path}");
        let csp = header(&h, "content-security-policy").unwrap_or_else(|| panic!("{path}: {h:?}"));
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            header(&h, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(header(&h, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(header(&h, "referrer-policy"), Some("no-referrer"), "{path}");
        let cache = header(&h, "cache-control").unwrap_or_default();
        if path.starts_with("/static/") {
            assert!(
                !cache.contains("no-store"),
                "{path}: assets may be cached: {cache}"
            );
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
    // The policy allows no inline script or style: the pages must have none.
    let page = ureq::get(&format!("http://{addr}/login"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!page.contains("style=\""), "inline style on /login");
    for script in page.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src="),
            "inline script on /login: <script{tag}>"
        );
    }
}

/// Every file and folder under `dir` whose mode lets group or others in.
fn open_to_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            found.push(format!("{} {:o}", p.display(), meta.permissions().mode()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found
}

#[test]
fn the_data_directory_and_everything_in_it_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // As an operator's `mkdir` under umask 022 leaves it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = spawn_serve(dir.path(), &[]);
    let dump = std::fs::read(TRIAGE).unwrap();
    let resp = ureq::post(&format!("http://{addr}/api/v1/dumps"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(&dump)
        .unwrap();
    assert_eq!(resp.status(), 201);
    // The database (and its journal), the stored dump, the storage folders.
    let open = open_to_others(dir.path());
    assert!(open.is_empty(), "readable by others: {open:?}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("pooltriage.db")),
        "{names:?}"
    );
}

/// The server's resident memory in KiB.
fn rss_kib(serve: &ServeProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Sends a multipart body whose `file` part has one endless header line (`pad` bytes) on
/// `path`, and returns the status and body of the answer. The body is written from another
/// thread: the server may answer (and stop reading) before it has all been sent.
fn endless_part_header(addr: SocketAddr, path: &str, auth: &str, pad: usize) -> (u16, String) {
    let boundary = "XyZzY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.dmp\"\r\nX-Pad: "
    )
    .into_bytes();
    body.resize(body.len() + pad, b'a');
    body.extend_from_slice(format!("\r\n\r\nMDMP\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // A reset once the server has answered is expected.
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|_| w.write_all(&body));
    });
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    )
}

#[test]
fn endless_multipart_part_headers_are_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (serve, addr) = spawn_serve(dir.path(), &[("POOLTRIAGE_UPLOAD_BURST", "100")]);
    let auth = format!("Authorization: Bearer {token}\r\n");
    // Warm up: the server's first request allocates its pools.
    let (code, _) = endless_part_header(addr, "/api/v1/dumps", &auth, 16);
    assert!(code >= 400, "a one-byte 'dump' is refused");
    let before = rss_kib(&serve);
    const PAD: usize = 24 << 20;
    // Four at once, on the dump API and the symbols API (the portal's form takes the same
    // path through the guard, after its CSRF field).
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let mut hs = Vec::new();
        for path in [
            "/api/v1/dumps",
            "/api/v1/dumps",
            "/api/v1/symbols",
            "/api/v1/symbols",
        ] {
            let auth = &auth;
            hs.push(sc.spawn(move || endless_part_header(addr, path, auth, PAD)));
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let grown_mib = rss_kib(&serve).saturating_sub(before) >> 10;
    // Four 24 MiB headers buffered whole would hold ~100 MiB.
    assert!(grown_mib < 40, "the server grew by {grown_mib} MiB");
    for (code, body) in &answers {
        assert_eq!(*code, 400, "{body}");
        assert!(body.contains("before the file's data"), "{body}");
    }
    assert!(upload_temp_files(dir.path()).is_empty());
}

#[test]
fn upload_names_lose_paths_and_control_characters_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = spawn_serve(dir.path(), &[("POOLTRIAGE_UPLOAD_BURST", "100")]);
    let bearer = format!("Bearer {token}");
    let dump = std::fs::read(TRIAGE).unwrap();
    let name_of = |resp: ureq::Response| -> String {
        let json = |r: ureq::Response| -> serde_json::Value {
            serde_json::from_str(&r.into_string().unwrap()).unwrap()
        };
        let id = json(resp)["id"].as_str().unwrap().to_string();
        let st = json(
            ureq::get(&format!("http://{addr}/api/v1/dumps/{id}"))
                .set("Authorization", &bearer)
                .call()
                .unwrap(),
        );
        st["original_name"].as_str().unwrap_or_default().to_string()
    };
    // `?name=`: a path, a terminal escape and a newline that would forge a log line.
    let raw = ureq::post(&format!(
        "http://{addr}/api/v1/dumps?name=..%2F..%2Fx%1B%5B2J%0Aforged.dmp"
    ))
    .set("Authorization", &bearer)
    .send_bytes(&dump)
    .unwrap();
    assert_eq!(name_of(raw), "x[2Jforged.dmp");
    // A multipart file name (another content: a new dump) with the controls a part header can
    // carry: a tab, CSI (U+009B, the 8-bit escape) and NEL (U+0085, a line break).
    let mut other = dump.clone();
    other.extend_from_slice(b"another");
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"C:\\\\dumps\\\\a\t\u{9b}31m\u{85}b.dmp\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&other);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let form = ureq::post(&format!("http://{addr}/api/v1/dumps"))
        .set("Authorization", &bearer)
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send_bytes(&body)
        .unwrap();
    assert_eq!(name_of(form), "a31mb.dmp");
}

#[test]
fn failed_authentications_from_one_client_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "acme", "customer");
    let (_serve, addr) = spawn_serve(dir.path(), &[]);
    let status = |auth: &str| -> (u16, Option<String>) {
        match ureq::get(&format!("http://{addr}/api/v1/dumps"))
            .set("Authorization", auth)
            .call()
        {
            Ok(r) => (r.status(), None),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.header("retry-after").map(str::to_string))
            }
            Err(e) => panic!("{e}"),
        }
    };
    // Twenty wrong tokens are answered 401, each; then the address is throttled.
    for i in 0..20 {
        assert_eq!(status(&format!("Bearer pt_wrong{i}")).0, 401, "attempt {i}");
    }
    let (code, retry) = status("Bearer pt_wrong_again");
    assert_eq!(code, 429);
    assert!(retry.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=6).contains(&s))));
    // While throttled the address cannot authenticate at all (a guess that happens to be right
    // tells nothing), nor sign in through the login form.
    assert_eq!(status(&format!("Bearer {token}")).0, 429);
    let login = ureq::post(&format!("http://{addr}/login"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string("token=pt_wrong&csrf=x");
    assert!(
        matches!(login, Err(ureq::Error::Status(429, _))),
        "{login:?}"
    );
}

/// Starts a raw upload that sends its first bytes and then stalls (the connection stays open).
/// It asks `Expect: 100-continue` and sends its bytes once the server, having admitted it (a
/// refused upload is answered 429 at once), starts reading the body.
fn stalled_upload(addr: SocketAddr, token: &str) -> TcpStream {
    let dump = std::fs::read(TRIAGE).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /api/v1/dumps HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        dump.len() * 10
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0u8; 64];
    let n = s.read(&mut got).unwrap();
    let answer = String::from_utf8_lossy(&got[..n]);
    assert!(answer.starts_with("HTTP/1.1 100"), "not admitted: {answer}");
    s.write_all(&dump[..64 << 10]).unwrap();
    s
}

#[test]
fn one_tenant_cannot_take_every_upload_slot() {
    let dir = tempfile::tempdir().unwrap();
    let acme = create_token(dir.path(), "acme", "customer");
    let globex = create_token(dir.path(), "globex", "customer");
    // Four uploads in flight at most: two per tenant.
    let (_serve, addr) = spawn_serve(
        dir.path(),
        &[
            ("POOLTRIAGE_MAX_UPLOADS", "4"),
            ("POOLTRIAGE_UPLOAD_BURST", "100"),
        ],
    );
    let stalled: Vec<TcpStream> = (0..2).map(|_| stalled_upload(addr, &acme)).collect();
    let dump = std::fs::read(TRIAGE).unwrap();
    let upload = |token: &str, body: &[u8]| match ureq::post(&format!("http://{addr}/api/v1/dumps"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        // Refused before the body was read (429 while the client still sends): the connection
        // closes under the client. Seen as "no answer yet"; the caller tries again.
        Err(ureq::Error::Transport(t)) => (0, t.to_string()),
    };
    // acme's third upload waits for one of its own to finish; globex is served meanwhile. The
    // refusal comes before the body is read, so that attempt sends a body small enough for the
    // socket buffers: a whole dump would meet a closed connection (broken pipe) instead of the
    // answer.
    let head = &dump[..dump.len().min(64 << 10)];
    let third = wait_for_status(|| upload(&acme, head), 429);
    assert!(third.contains("too_many_uploads"), "{third}");
    let (code, body) = upload(&globex, &dump);
    assert_eq!(code, 201, "{body}");
    // The stalled uploads end (the client goes away): acme may upload again.
    drop(stalled);
    let mut other = dump.clone();
    other.extend_from_slice(b"later");
    wait_for_status(|| upload(&acme, &other), 201);
}

/// Calls `f` until it answers `want` (the server sees the stalled connections, or their end,
/// a moment after the client), at most 10 s; returns the body.
fn wait_for_status(f: impl Fn() -> (u16, String), want: u16) -> String {
    let started = Instant::now();
    loop {
        let (code, body) = f();
        if code == want {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {code} instead of {want}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
