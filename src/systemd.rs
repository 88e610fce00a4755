//! Readiness for systemd (`Type=notify` in `deploy/clozup.service`): the server says `READY=1`
//! once it listens and `STOPPING=1` when it begins to drain, so `systemctl start` returns when
//! requests can be served and units ordered after it start only then.
//!
//! The protocol is one datagram to the socket named by `$NOTIFY_SOCKET` (sd_notify(3)); a few
//! lines here rather than libsystemd, which a static binary cannot link.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to the service manager; does nothing outside one. Failures
/// are logged, never fatal: a server that cannot tell systemd it is ready still serves.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        send(&path, state);
    }
}

/// Sends `state` to the datagram socket at `path` (`@name` for an abstract one).
fn send(path: &std::ffi::OsStr, state: &str) {
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux): the name after the `@`.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(socket = ?path, "could not notify the service manager ({state}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_reaches_a_path_or_an_abstract_socket() {
        let dir = std::env::temp_dir().join(crate::ids::new_id("notify"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
        // An abstract socket, as systemd may hand out.
        let name = crate::ids::new_id("notify");
        let addr = {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
        };
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
