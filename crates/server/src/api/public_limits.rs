//! Rate limits of the endpoints anyone can reach without a key: the subscribe form, the
//! confirmation and preference pages, and the open and click tracking links. Each request
//! counts against its client address; each confirmation email also counts against the
//! address it goes to, so that nobody can flood a stranger's inbox from the user's domain.
//!
//! Over a limit the answer is `429 rate_limited` with `Retry-After`. Limits are token buckets
//! (`governor`) on the wall clock, whatever the engine's clock: they are about request rates,
//! not journey time. Behind a reverse proxy the client address comes from the header named by
//! `--client-ip-header` (the right-most `X-Forwarded-For` entry, the one the proxy added).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;

/// A rate: at most `count` in `window`, e.g. `30/1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: StdDuration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, window) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not COUNT/WINDOW, e.g. 30/1m"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{count}` is not a count of 1 or more"))?;
        let window = waymark_core::Duration::parse(window.trim())?;
        if window.seconds() < 1 {
            return Err(format!("`{s}`: the window must be at least 1s"));
        }
        Ok(Rate {
            count,
            window: StdDuration::from_secs(window.seconds() as u64),
        })
    }
}

impl Rate {
    /// `count` at once, then one every `window / count`.
    fn quota(self) -> Quota {
        let count = NonZeroU32::new(self.count).unwrap_or(NonZeroU32::MIN);
        let period = (self.window / self.count).max(StdDuration::from_nanos(1));
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count)
    }
}

/// The limits' settings (flags of `waymark serve`).
#[derive(Debug, Clone)]
pub struct PublicLimitsConfig {
    /// Requests per client address to the forms and pages.
    pub pages: Rate,
    /// Requests per client address to the tracking links (mail clients' image proxies send
    /// many users' opens from few addresses, hence a high default).
    pub tracking: Rate,
    /// Confirmation emails per recipient address.
    pub confirmations: Rate,
    /// The header that carries the client address behind a reverse proxy.
    pub client_ip_header: Option<String>,
}

impl Default for PublicLimitsConfig {
    fn default() -> Self {
        PublicLimitsConfig {
            pages: Rate {
                count: 30,
                window: StdDuration::from_secs(60),
            },
            tracking: Rate {
                count: 6000,
                window: StdDuration::from_secs(60),
            },
            confirmations: Rate {
                count: 3,
                window: StdDuration::from_secs(3600),
            },
            client_ip_header: None,
        }
    }
}

/// Which limit a keyless request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicEndpoint {
    /// The subscribe form, the confirmation and preference pages.
    Page,
    /// Open pixels and click redirects.
    Tracking,
}

/// Middleware of the keyless routes: counts the request against its client address.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let endpoint = if path.starts_with("/t/") {
        PublicEndpoint::Tracking
    } else {
        PublicEndpoint::Page
    };
    // The JSON subscribe call carries the write key: the user's own backend, not a stranger.
    let keyed = path == "/v1/subscribe" && !super::consent::is_form(request.headers());
    if !keyed {
        let limits = &state.public.limits;
        let client = limits.client(
            request.headers(),
            request.extensions().get::<ConnectInfo<SocketAddr>>(),
        );
        if let Err(e) = limits.check(endpoint, client) {
            return e.into_response();
        }
    }
    next.run(request).await
}

/// How many checks pass between two sweeps of idle clients.
const SWEEP_EVERY: u64 = 10_000;

pub struct PublicLimits {
    checks: AtomicU64,
    pages: DefaultKeyedRateLimiter<IpAddr>,
    tracking: DefaultKeyedRateLimiter<IpAddr>,
    confirmations: DefaultKeyedRateLimiter<String>,
    client_ip_header: Option<String>,
}

impl PublicLimits {
    pub fn new(config: &PublicLimitsConfig) -> Self {
        PublicLimits {
            checks: AtomicU64::new(0),
            pages: RateLimiter::keyed(config.pages.quota()),
            tracking: RateLimiter::keyed(config.tracking.quota()),
            confirmations: RateLimiter::keyed(config.confirmations.quota()),
            client_ip_header: config
                .client_ip_header
                .as_deref()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase),
        }
    }

    /// The address a request comes from: the configured proxy header's (right-most entry),
    /// else the connection's.
    pub fn client(
        &self,
        headers: &HeaderMap,
        connection: Option<&ConnectInfo<SocketAddr>>,
    ) -> IpAddr {
        let forwarded = self.client_ip_header.as_deref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        forwarded
            .or(connection.map(|c| c.0.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Counts one request from `client`; `Err(429)` when over the limit.
    pub fn check(&self, endpoint: PublicEndpoint, client: IpAddr) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.forget_idle();
        }
        let limiter = match endpoint {
            PublicEndpoint::Page => &self.pages,
            PublicEndpoint::Tracking => &self.tracking,
        };
        limiter.check_key(&client).map_err(|not_until| {
            too_many(
                not_until.wait_time_from(DefaultClock::default().now()),
                "too many requests from this address; try again later",
            )
        })
    }

    /// Counts one confirmation email to `address` (lower-cased); `Err(429)` when over the
    /// limit.
    pub fn check_confirmation(&self, address: &str) -> Result<(), ApiError> {
        self.confirmations
            .check_key(&address.to_lowercase())
            .map_err(|not_until| {
                too_many(
                    not_until.wait_time_from(DefaultClock::default().now()),
                    "too many confirmation emails to this address; try again later",
                )
            })
    }

    /// Forgets idle clients, so memory stays bounded by the recent ones.
    pub fn forget_idle(&self) {
        self.pages.retain_recent();
        self.tracking.retain_recent();
        self.confirmations.retain_recent();
    }
}

fn too_many(wait: StdDuration, message: &str) -> ApiError {
    ApiError::too_many_requests(
        "rate_limited",
        message,
        u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            "30/1m".parse::<Rate>(),
            Ok(Rate {
                count: 30,
                window: StdDuration::from_secs(60)
            })
        );
        assert!("0/1m".parse::<Rate>().is_err());
        assert!("30".parse::<Rate>().is_err());
        assert!("3/0s".parse::<Rate>().is_err());
    }

    #[test]
    fn a_client_over_its_limit_is_refused_and_others_are_not() {
        let limits = PublicLimits::new(&PublicLimitsConfig {
            pages: "2/1h".parse().unwrap(),
            ..PublicLimitsConfig::default()
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(limits.check(PublicEndpoint::Page, a).is_ok());
        assert!(limits.check(PublicEndpoint::Page, a).is_ok());
        assert!(limits.check(PublicEndpoint::Page, a).is_err());
        assert!(limits.check(PublicEndpoint::Page, b).is_ok());
        assert!(limits.check(PublicEndpoint::Tracking, a).is_ok());
    }

    #[test]
    fn the_proxy_header_names_the_client() {
        let limits = PublicLimits::new(&PublicLimitsConfig {
            client_ip_header: Some("X-Forwarded-For".into()),
            ..PublicLimitsConfig::default()
        });
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        assert_eq!(limits.client(&headers, None), IpAddr::from([5, 6, 7, 8]));
    }
}
