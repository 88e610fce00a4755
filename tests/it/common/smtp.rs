//! A small SMTP server on loopback that records every message it accepts, so email tests talk
//! real SMTP and assert on what actually arrived. `MAIL FROM` can be scripted to refuse.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_to: Vec<String>,
    /// The message as transmitted (dot-unstuffed), headers and body.
    pub data: String,
}

impl Mail {
    /// The first value of header `name` (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }
}

/// The sink.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>` for `--smtp-url`.
    pub url: String,
    mails: mpsc::Receiver<Mail>,
    refusals: Arc<Mutex<Vec<&'static str>>>,
}

impl SmtpSink {
    /// Starts a sink that accepts everything, on a free loopback port.
    pub fn start() -> SmtpSink {
        Self::start_on("127.0.0.1:0")
    }

    /// Starts a sink that accepts everything, listening on `addr`.
    pub fn start_on(addr: &str) -> SmtpSink {
        let listener = TcpListener::bind(addr).unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (tx, mails) = mpsc::channel();
        let refusals: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let script = refusals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tx = tx.clone();
                let script = script.clone();
                std::thread::spawn(move || session(stream, &tx, &script));
            }
        });
        SmtpSink {
            url,
            mails,
            refusals,
        }
    }

    /// Answers the next `MAIL FROM`s with these replies, in order (e.g. "451 4.3.0 busy").
    pub fn refuse(&self, replies: &[&'static str]) {
        self.refusals.lock().unwrap().extend_from_slice(replies);
    }

    /// The next message accepted, waiting up to 30 s.
    pub fn next(&self) -> Mail {
        self.mails
            .recv_timeout(Duration::from_secs(30))
            .expect("no message reached the SMTP sink")
    }

    /// The next message if one arrives within `d`.
    pub fn within(&self, d: Duration) -> Option<Mail> {
        self.mails.recv_timeout(d).ok()
    }

    /// Whether no message arrives within `d`.
    pub fn nothing_within(&self, d: Duration) -> bool {
        self.within(d).is_none()
    }
}

fn session(stream: std::net::TcpStream, tx: &mpsc::Sender<Mail>, script: &Mutex<Vec<&str>>) {
    // Each reply line is its own small write: without this, Nagle's algorithm holds the second
    // line of a multi-line reply until the client's delayed ACK, some 40 ms per message.
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut say = |line: &str| out.write_all(format!("{line}\r\n").as_bytes()).is_ok();
    if !say("220 sink.test ESMTP test sink") {
        return;
    }
    let (mut from, mut rcpt) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let ok = if upper.starts_with("EHLO") {
            say("250-sink.test") && say("250-8BITMIME") && say("250 SMTPUTF8")
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            say("250 ok")
        } else if upper.starts_with("RSET") {
            from.clear();
            rcpt.clear();
            say("250 ok")
        } else if upper.starts_with("MAIL FROM:") {
            let refusal = {
                let mut s = script.lock().unwrap();
                (!s.is_empty()).then(|| s.remove(0))
            };
            match refusal {
                Some(reply) => say(reply),
                None => {
                    from = cmd[10..].trim().split(' ').next().unwrap_or("").to_string();
                    say("250 ok")
                }
            }
        } else if upper.starts_with("RCPT TO:") {
            rcpt.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
            say("250 ok")
        } else if upper == "DATA" {
            if !say("354 end with <CRLF>.<CRLF>") {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            let mail = Mail {
                mail_from: from.trim_matches(['<', '>']).to_string(),
                rcpt_to: std::mem::take(&mut rcpt),
                data,
            };
            let _ = tx.send(mail);
            say("250 2.0.0 queued")
        } else if upper.starts_with("QUIT") {
            let _ = say("221 bye");
            return;
        } else {
            say("502 command not implemented")
        };
        if !ok {
            return;
        }
    }
}
