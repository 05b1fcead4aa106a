//! A local SMTP server that accepts every message and keeps only a count: the far end of the
//! broadcast figure's SMTP delivery, fast enough not to be what is measured (the figure
//! measures it alone first and prints that figure beside Waymark's).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The longest command or data line the sink reads (a message is read line by line).
const MAX_LINE: usize = 64 * 1024;

#[derive(Default)]
struct Received {
    count: AtomicUsize,
    first: Mutex<Option<Instant>>,
}

pub(super) struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Received::default());
        let counting = received.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let counting = counting.clone();
                        tokio::spawn(async move {
                            // A connection that breaks off only ends itself.
                            if let Err(e) = serve(stream, &counting).await {
                                eprintln!("bench: an SMTP sink connection failed: {e}");
                            }
                        });
                    }
                    // Out of file descriptors, say: the sink goes on accepting.
                    Err(e) => {
                        eprintln!("bench: the SMTP sink cannot accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(SmtpSink {
            addr,
            received,
            task,
        })
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP (the sink offers no STARTTLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Messages accepted so far.
    pub fn count(&self) -> usize {
        self.received.count.load(Ordering::SeqCst)
    }

    /// When the first message since the last [`SmtpSink::forget_first`] was accepted.
    pub fn first_at(&self) -> Option<Instant> {
        *self.received.first.lock().expect("sink lock")
    }

    /// Starts looking for a new first message.
    pub fn forget_first(&self) {
        *self.received.first.lock().expect("sink lock") = None;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, received: &Received) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    write.write_all(b"220 waymark-bench-sink ESMTP\r\n").await?;
    loop {
        line.clear();
        if read_line(&mut read, &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-waymark-bench-sink\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                loop {
                    line.clear();
                    if read_line(&mut read, &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                }
                received.count.fetch_add(1, Ordering::SeqCst);
                received
                    .first
                    .lock()
                    .expect("sink lock")
                    .get_or_insert_with(Instant::now);
                b"250 accepted\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
}

/// Reads one line, refusing one longer than [`MAX_LINE`]; then acknowledges what arrived at
/// once. Linux delays an ACK by up to 40 ms when it expects to send an answer with it, and a
/// client that writes a message's closing `.` separately without TCP_NODELAY (lettre's own
/// transport) waits for that ACK in Nagle's algorithm. Waymark's client sets TCP_NODELAY
/// (`waymark_channels::smtp`); the sink acknowledges at once anyway, so that it is never the
/// limit, whatever the client.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let stream: &tokio::net::TcpStream = read.get_ref().as_ref();
        rustix::net::sockopt::set_tcp_quickack(stream, true)?;
    }
    let n = (&mut *read).take(MAX_LINE as u64).read_line(line).await?;
    if n == MAX_LINE && !line.ends_with('\n') {
        return Err(std::io::Error::other("line too long"));
    }
    Ok(n)
}
