//! SMTP connections to one relay, pooled: lettre speaks the protocol (EHLO, STARTTLS, AUTH, the
//! mail transaction); this module owns the sockets and the pool, for three things lettre's own
//! pooled transport does not do:
//!
//! - **`TCP_NODELAY`.** lettre writes the end of the data (`.`) apart from the body; with
//!   Nagle's algorithm on, that write waits for the relay's delayed ACK of the body, about
//!   40 ms per message on every connection. (lettre's own connect for implicit TLS, `smtps://`,
//!   still has this cost: its socket is not reachable.)
//! - **Timeouts.** lettre's async transport bounds the connect only (lettre#1027): a relay that
//!   stops answering in the middle of a conversation would hold a delivery slot for ever. Here a
//!   whole message has [`SEND_TIMEOUT`], after which the connection is dropped and the attempt
//!   counts as a temporary failure.
//! - **No `NOOP` before every message.** lettre's pool checks a connection with a round trip
//!   each time it hands it out. A connection used within [`FRESH`] is taken as it is; an older
//!   one is checked first.
//!
//! A connection whose conversation failed in any way (lettre quits it) is never reused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;

/// How long connecting (TCP, greeting, STARTTLS, AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one message's transaction may take, from `MAIL FROM` to the reply to its data.
/// RFC 5321 (4.5.3.2) lets a server take up to 10 minutes to answer the end of the data.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A connection used this recently is reused without checking it first.
const FRESH: Duration = Duration::from_secs(5);
/// A connection idle this long is closed rather than reused (relays close idle connections
/// after a minute or more).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// How the connection to the relay is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// STARTTLS, or no delivery (`tls=required`).
    StartTlsRequired,
    /// STARTTLS when the relay offers it (`tls=opportunistic`), else plain text.
    StartTlsOpportunistic,
}

/// The relay an SMTP URL names.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
    /// The name given in EHLO (the URL's path), else this machine's host name.
    pub hello: Option<String>,
}

impl Relay {
    /// `smtps://user:pass@host:465` (implicit TLS), `smtp://user:pass@host:587` (STARTTLS
    /// required, so a password never travels in clear), `smtp://host:25` (STARTTLS when the
    /// relay offers it). An explicit `?tls=required|opportunistic` is kept as given.
    /// `smtp://host/name` says `name` in EHLO. Without a port: 465 for `smtps`, else 587.
    pub fn parse(url: &str) -> Result<Relay, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid SMTP URL: {e}"))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("invalid SMTP URL: it names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let credentials = match parsed.password() {
            Some(password) => Some((
                crate::transport::percent_decode(parsed.username())?,
                crate::transport::percent_decode(password)?,
            )),
            None => None,
        };
        let security = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", None) => Security::Implicit,
            ("smtp", Some("required")) => Security::StartTlsRequired,
            ("smtp", Some("opportunistic")) => Security::StartTlsOpportunistic,
            // lettre's `smtp://` without `tls=` is plain text, never upgrading: a password
            // would cross the wire in clear. Here it is STARTTLS, required with credentials.
            ("smtp", None) if credentials.is_some() => Security::StartTlsRequired,
            ("smtp", None) => Security::StartTlsOpportunistic,
            (scheme, tls) => {
                return Err(format!(
                    "invalid SMTP URL: scheme `{scheme}`{} (use smtp:// with tls=required, \
                     or opportunistic, or smtps://)",
                    tls.map(|t| format!(" with tls={t}")).unwrap_or_default()
                ));
            }
        };
        let port = parsed.port().unwrap_or(match security {
            Security::Implicit => 465,
            _ => 587,
        });
        let hello = Some(parsed.path().trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        Ok(Relay {
            host,
            port,
            security,
            credentials,
            hello,
        })
    }
}

/// A failed send: the relay's answer or lettre's error, a socket error, or a timeout.
#[derive(Debug)]
pub enum SendError {
    Smtp(lettre::transport::smtp::Error),
    Io(std::io::Error),
    Timeout(&'static str),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Smtp(e) => e.fmt(f),
            SendError::Io(e) => write!(f, "connecting to the SMTP relay: {e}"),
            SendError::Timeout(what) => write!(f, "timed out {what}"),
        }
    }
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SendError::Smtp(e)
    }
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// At most `size` connections to one relay, each carrying one message at a time.
pub struct SmtpPool {
    relay: Relay,
    hello: ClientId,
    slots: Semaphore,
    /// Connections between messages, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

impl SmtpPool {
    pub fn new(relay: Relay, size: usize) -> Result<Self, String> {
        // Refuses a host name TLS cannot verify now rather than at the first message.
        TlsParameters::new(relay.host.clone())
            .map_err(|e| format!("invalid SMTP host `{}`: {e}", relay.host))?;
        let hello = match &relay.hello {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpPool {
            relay,
            hello,
            slots: Semaphore::new(size.max(1)),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `email` (formatted, signed if it is) to the envelope's recipients, on an idle
    /// connection or a new one.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool is never closed");
        let mut connection = match self.take_idle().await {
            Some(connection) => connection,
            None => tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
                .await
                .map_err(|_| SendError::Timeout("connecting to the SMTP relay"))??,
        };
        match tokio::time::timeout(SEND_TIMEOUT, connection.send(envelope, email)).await {
            Ok(Ok(_)) => {
                self.put_back(connection);
                Ok(())
            }
            // lettre quit the connection: it is dropped.
            Ok(Err(e)) => Err(SendError::Smtp(e)),
            // Dropped in the middle of the conversation: the relay discards an unfinished
            // transaction when the connection closes.
            Err(_) => Err(SendError::Timeout(
                "waiting for the SMTP relay during the mail transaction",
            )),
        }
    }

    /// The most recently used idle connection that still works, if any; older ones are
    /// closed.
    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let Idle { connection, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                idle.retain(|c| now.duration_since(c.since) < IDLE_LIMIT);
                idle.pop()?
            };
            if since.elapsed() < FRESH {
                return Some(connection);
            }
            let mut connection = connection;
            let checked =
                tokio::time::timeout(Duration::from_secs(10), connection.test_connected()).await;
            if matches!(checked, Ok(true)) {
                return Some(connection);
            }
        }
    }

    fn put_back(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Idle {
                connection,
                since: Instant::now(),
            });
    }

    /// A new connection: greeted, encrypted as the relay's security says, authenticated.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let relay = &self.relay;
        let tls = || TlsParameters::new(relay.host.clone());
        let mut connection = match relay.security {
            Security::Implicit => {
                AsyncSmtpConnection::connect_tokio1(
                    (relay.host.as_str(), relay.port),
                    Some(CONNECT_TIMEOUT),
                    &self.hello,
                    Some(tls()?),
                    None,
                )
                .await?
            }
            _ => {
                let socket = tokio::net::TcpStream::connect((relay.host.as_str(), relay.port))
                    .await
                    .map_err(SendError::Io)?;
                // See the module's docs.
                socket.set_nodelay(true).map_err(SendError::Io)?;
                let mut connection =
                    AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello)
                        .await?;
                let upgrade = match relay.security {
                    Security::StartTlsOpportunistic => connection.can_starttls(),
                    _ => true,
                };
                if upgrade {
                    connection.starttls(tls()?, &self.hello).await?;
                }
                connection
            }
        };
        if let Some((user, password)) = &relay.credentials {
            connection
                .auth(
                    &[Mechanism::Plain, Mechanism::Login],
                    &Credentials::new(user.clone(), password.clone()),
                )
                .await?;
        }
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_relay_its_security_and_credentials() {
        let r = Relay::parse("smtp://relay.example.com").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.security, r.credentials, r.hello),
            (
                "relay.example.com",
                587,
                Security::StartTlsOpportunistic,
                None,
                None
            )
        );
        let r = Relay::parse("smtp://me%40x.com:p%2Fss@relay.example.com:587").unwrap();
        assert_eq!(
            r.security,
            Security::StartTlsRequired,
            "credentials need TLS"
        );
        assert_eq!(r.credentials, Some(("me@x.com".into(), "p/ss".into())));
        let r = Relay::parse("smtps://u:p@relay.example.com").unwrap();
        assert_eq!((r.port, r.security), (465, Security::Implicit));
        let r = Relay::parse("smtp://relay.example.com?tls=required").unwrap();
        assert_eq!((r.port, r.security), (587, Security::StartTlsRequired));
        let r = Relay::parse("smtp://127.0.0.1:2525/mailer.example.com").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.hello.as_deref()),
            ("127.0.0.1", 2525, Some("mailer.example.com"))
        );
        for bad in [
            "http://relay.example.com",
            "smtp://x?tls=none",
            "smtp://",
            "nonsense",
        ] {
            assert!(Relay::parse(bad).is_err(), "{bad}");
        }
    }
}
