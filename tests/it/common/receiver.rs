//! A tiny webhook receiver on a real loopback socket, answering with statuses a test scripts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::TestServer;

/// What the receiver saw of one request.
#[derive(Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A tiny HTTP receiver answering each request with the next status of `script` (the last one
/// repeats).
pub struct Receiver {
    pub url: String,
    pub requests: mpsc::Receiver<Received>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    pub fn start(script: Vec<u16>) -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// A receiver on a listener the test already holds (to come up on a known port).
    pub fn start_on(listener: TcpListener, script: Vec<u16>) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::channel();
        let script = Arc::new(Mutex::new(script));
        let answers = script.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end().to_string();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                let status = {
                    let mut s = answers.lock().unwrap();
                    if s.len() > 1 {
                        s.remove(0)
                    } else {
                        s[0]
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                if tx
                    .send(Received {
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        Receiver {
            url,
            requests,
            script,
        }
    }

    /// Answers every request from now on with `status`.
    pub fn answer(&self, status: u16) {
        *self.script.lock().unwrap() = vec![status];
    }

    /// The next request, waiting in real time (for a server on the real clock).
    pub fn wait(&self) -> Received {
        self.requests
            .recv_timeout(Duration::from_secs(30))
            .expect("no delivery arrived")
    }

    /// The next request, moving the server's clock along meanwhile so retries come due.
    pub fn next(&self, s: &TestServer) -> Received {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.requests.recv_timeout(Duration::from_millis(20)) {
                return r;
            }
            assert!(std::time::Instant::now() < deadline, "no delivery arrived");
            s.clock.advance(1000);
        }
    }

    pub fn nothing_within(&self, d: Duration) -> bool {
        self.requests.recv_timeout(d).is_err()
    }
}
