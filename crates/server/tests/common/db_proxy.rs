//! A TCP proxy between a test server and its database, which the test can cut: it then
//! refuses new connections (accepts and closes them at once, as a server that is down or
//! unreachable does) and cuts every open one, until it is restored. Or it can stall: cut
//! the open connections and accept new ones but never answer them (a server that hangs, or a
//! load balancer in front of a dead one).
//!
//! ```ignore
//! let db = TestDatabase::create("loss")?;
//! let proxy = DbProxy::start(db.server_addr());
//! let s = Server::start(ServerOptions { args: vec!["--database".into(), db.url_via(proxy.addr)], ..Default::default() });
//! proxy.cut();
//! proxy.restore();
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct DbProxy {
    /// Where the proxy listens: give the server this address instead of the database's.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    up: AtomicBool,
    stalled: AtomicBool,
    /// Connections accepted while stalled, kept open and unanswered until restored.
    held: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
    /// Both ends of every proxied connection, to cut them.
    open: Mutex<Vec<TcpStream>>,
}

impl DbProxy {
    /// Listens on a free local port and forwards each connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            up: AtomicBool::new(true),
            stalled: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if accepting.stalled.load(Ordering::SeqCst) {
                    accepting.held.lock().unwrap().push(client);
                    continue;
                }
                if !accepting.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                accepting.forward(client);
            }
        });
        DbProxy { addr, shared }
    }

    /// The database is gone: new connections are closed at once and open ones are cut.
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        self.shared.cut_open();
    }

    /// The database hangs: open connections are cut, and new ones are accepted but never
    /// answered.
    pub fn stall(&self) {
        self.shared.stalled.store(true, Ordering::SeqCst);
        self.shared.cut_open();
    }

    /// The database is back: new connections reach it again (the ones held while it stalled
    /// are closed).
    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
        self.shared.stalled.store(false, Ordering::SeqCst);
        for stream in self.shared.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn forward(&self, client: TcpStream) {
        let Ok(server) = TcpStream::connect_timeout(&self.upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client_end), Ok(server_end)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        {
            let mut open = self.open.lock().unwrap();
            // Connections that ended are of no more use for cutting.
            open.retain(|s| s.peer_addr().is_ok());
            open.extend([client_end, server_end]);
        }
        let (Ok(client_in), Ok(server_in)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        std::thread::spawn(move || pipe(client_in, server));
        std::thread::spawn(move || pipe(server_in, client));
    }

    fn cut_open(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either ends, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.cut_open();
        self.shared.held.lock().unwrap().clear();
        // Wakes the accepting thread, which then sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}
