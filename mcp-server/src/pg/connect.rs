//! Making one connection to a database: the pools' connector.
//!
//! Every new pooled connection (and every health ping's) is made here:
//!
//! - **Hosts in order.** A multi-host entry (`hosts:`, `host=a,b`) is tried
//!   host by host, each attempt bounded by `connect_timeout`, and
//!   `target_session_attrs` picks the kind of server, asked with
//!   `pg_is_in_recovery()`: `read-write`/`primary` take the primary,
//!   `read-only`/`standby` a standby, `prefer-standby` a standby if one
//!   answers, else any. After a failover the next connection finds the new
//!   primary. (tokio-postgres's own check reads `transaction_read_only`,
//!   which this server's read-only sessions always set, so it cannot tell a
//!   primary from a standby.)
//! - **TLS** as [`super::tls`] says, with libpq's `allow` (plain text
//!   first, TLS when the server refuses it) and `prefer` (TLS, plain text
//!   when the handshake fails) done here.
//! - **Cloud identity.** The password of each new connection comes from
//!   [`super::identity`] when the entry says so.
//! - **Back-off.** A host whose connection attempt timed out is skipped for
//!   a while (250 ms, doubling to 5 s) while another host may answer, and
//!   when it is the only host, calls fail at once with the last error
//!   until the back-off ends, instead of each waiting out a timeout. A
//!   refused connection costs nothing and is retried at once, so a
//!   restarted server is used as soon as it listens.
//!
//! The last failure is kept ([`Connector::last_failure`]) for `/health` and
//! for the tool error; it names hosts by position ("host 2 of 3"), never by
//! name, and never carries a password or token.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Connect;
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, Error, NoTls};

use super::error::connect_reason;
use super::identity::Identity;
use super::tls::{SslMode, Tls};

/// libpq's `target_session_attrs`, as this server can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    /// `read-write` or `primary`: a server that is not in recovery.
    Primary,
    /// `read-only` or `standby`: a server in recovery.
    Standby,
    /// A standby if one answers, else any server.
    PreferStandby,
}

impl SessionAttrs {
    pub fn parse(s: &str) -> Option<SessionAttrs> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "any" => SessionAttrs::Any,
            "read-write" | "primary" => SessionAttrs::Primary,
            "read-only" | "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::Primary => "read-write",
            SessionAttrs::Standby => "read-only",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server in recovery (`standby`) or not is acceptable on
    /// pass `pass` (prefer-standby has two passes).
    fn accepts(self, standby: bool, pass: usize) -> bool {
        match self {
            SessionAttrs::Any => true,
            SessionAttrs::Primary => !standby,
            SessionAttrs::Standby => standby,
            SessionAttrs::PreferStandby => pass == 1 || standby,
        }
    }

    fn passes(self) -> usize {
        if self == SessionAttrs::PreferStandby {
            2
        } else {
            1
        }
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One host of the entry, as its own single-host configuration.
struct Target {
    config: Config,
    host: String,
    port: u16,
}

#[derive(Default)]
struct HostState {
    /// Skip this host until then (it timed out).
    skip_until: Option<Instant>,
    backoff: Option<Duration>,
}

#[derive(Default)]
struct State {
    hosts: Vec<HostState>,
    last_failure: Option<(SystemTime, String)>,
    /// The position of the host the last connection went to.
    last_host: Option<usize>,
    connects: u64,
    failures: u64,
}

/// What a failed attempt on one host says.
enum Failed {
    Driver(Error),
    /// The host answered but is not the kind asked for, or the password
    /// could not be had: no driver error to return.
    Refused(String),
    /// Nothing within `connect_timeout`.
    TimedOut,
}

/// A database's connector, shared by its pools.
///
/// deadpool's `Connect` must fail with a `tokio_postgres::Error`, which has
/// no public constructor; where no driver error exists (every host backing
/// off, a host of the wrong kind, no password from the cloud identity) the
/// connector fails with the driver's own timeout error
/// (`Error::__private_api_timeout`, what the sync `postgres` crate uses)
/// and keeps the real reason ([`Connector::recent_failure`]), which is what
/// the caller and `/health` see.
pub struct Connector {
    database: String,
    targets: Vec<Target>,
    mode: SslMode,
    tls: Option<Tls>,
    attrs: SessionAttrs,
    identity: Option<Identity>,
    /// One host's whole attempt.
    connect_timeout: Duration,
    /// A background identity refresh is running.
    refreshing: AtomicBool,
    state: Mutex<State>,
    metrics: super::MetricsSlot,
}

impl Connector {
    pub fn new(
        database: &str,
        base: &Config,
        mode: SslMode,
        tls: Option<Tls>,
        attrs: SessionAttrs,
        identity: Option<Identity>,
        metrics: super::MetricsSlot,
    ) -> Connector {
        let targets: Vec<Target> = (0..base.get_hosts().len())
            .map(|i| one_host(base, i))
            .collect();
        let state = State {
            hosts: targets.iter().map(|_| HostState::default()).collect(),
            ..Default::default()
        };
        Connector {
            database: database.to_string(),
            targets,
            mode,
            tls,
            attrs,
            identity,
            connect_timeout: base
                .get_connect_timeout()
                .copied()
                .unwrap_or(Duration::from_secs(3)),
            refreshing: AtomicBool::new(false),
            state: Mutex::new(state),
            metrics,
        }
    }

    /// The longest a new connection may take: every host, on every pass,
    /// up to its connect_timeout (the pool's own limit must allow this).
    pub fn budget(&self) -> Duration {
        self.connect_timeout * (self.targets.len() * self.attrs.passes()) as u32
    }

    /// Record in the server's metrics, once they are attached.
    pub fn metrics(&self, record: impl FnOnce(&crate::metrics::DatabaseMetrics)) {
        if let Some(m) = self.metrics.get() {
            record(m);
        }
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask the cloud identity (if any) for the current host's password in
    /// the background: a token close to expiry is fetched again now, even
    /// while the pool makes no new connection, and a failing token endpoint
    /// shows in `/health` and the metrics before any connection needs it.
    /// Never waits (a slow token endpoint must not slow `/health`), and one
    /// refresh at a time.
    pub fn refresh_identity(self: &std::sync::Arc<Self>) {
        if self.identity.is_none() || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(identity) = &this.identity {
                let i = this.state().last_host.unwrap_or(0);
                let target = &this.targets[i];
                let user = target.config.get_user().unwrap_or_default();
                let _ = identity.password(&target.host, target.port, user).await;
                this.metrics(|m| m.set_credential_ok(&this.database, identity.ok()));
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// The last connection failure and when it happened.
    pub fn last_failure(&self) -> Option<(SystemTime, String)> {
        self.state().last_failure.clone()
    }

    /// The last failure if it happened within `recent` (to explain a pool
    /// error that just happened).
    pub fn recent_failure(&self, recent: Duration) -> Option<String> {
        let (at, reason) = self.state().last_failure.clone()?;
        (at.elapsed().unwrap_or_default() <= recent).then_some(reason)
    }

    /// `{"hosts", "current_host", "target_session_attrs", "connects",
    /// "connect_failures"}` for `/health` (positions, not names).
    pub fn health(&self) -> serde_json::Value {
        let s = self.state();
        serde_json::json!({
            "hosts": self.targets.len(),
            "current_host": s.last_host.map(|i| i + 1),
            "target_session_attrs": self.attrs.label(),
            "connects": s.connects,
            "connect_failures": s.failures,
        })
    }

    fn label(&self, i: usize) -> String {
        if self.targets.len() == 1 {
            String::new()
        } else {
            format!("host {} of {}: ", i + 1, self.targets.len())
        }
    }

    /// The order to try hosts in: in configuration order, those backing off
    /// after the others; `None` when every host is backing off (and the
    /// soonest is not due yet).
    fn order(&self) -> Option<Vec<usize>> {
        let now = Instant::now();
        let s = self.state();
        let (ready, waiting): (Vec<usize>, Vec<usize>) =
            (0..self.targets.len()).partition(|&i| s.hosts[i].skip_until.is_none_or(|t| t <= now));
        if ready.is_empty() {
            return None;
        }
        Some(ready.into_iter().chain(waiting).collect())
    }

    fn succeeded(&self, i: usize) {
        let mut s = self.state();
        s.hosts[i] = HostState::default();
        s.last_host = Some(i);
        s.connects += 1;
        drop(s);
        self.metrics(|m| m.connect(&self.database, true));
    }

    fn failed(&self, i: usize, reason: String, timed_out: bool) {
        let mut s = self.state();
        let host = &mut s.hosts[i];
        if timed_out {
            let next = host
                .backoff
                .map_or(BACKOFF_FIRST, |b| (b * 2).min(BACKOFF_MAX));
            host.backoff = Some(next);
            host.skip_until = Some(Instant::now() + next);
        } else {
            *host = HostState::default();
        }
        tracing::debug!(database = %self.database, host = %self.targets[i].host, %reason, "connection attempt failed");
        s.last_failure = Some((SystemTime::now(), reason));
    }

    /// Connect to some host that fits `target_session_attrs`.
    async fn connect_any(&self) -> Result<(Client, JoinHandle<()>), Error> {
        let Some(order) = self.order() else {
            let mut s = self.state();
            s.failures += 1;
            let reason = s
                .last_failure
                .as_ref()
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            s.last_failure = Some((SystemTime::now(), reason));
            drop(s);
            self.metrics(|m| m.connect(&self.database, false));
            return Err(Error::__private_api_timeout());
        };
        let mut last_driver_error = None;
        let mut reasons: Vec<String> = Vec::new();
        for pass in 0..self.attrs.passes() {
            for &i in &order {
                // The whole attempt, the startup exchange and the password's
                // fetch included, within connect_timeout (the driver's own
                // covers the TCP connect only): a host that accepts and then
                // says nothing is a timed-out host, and the next is tried.
                let attempt =
                    tokio::time::timeout(self.connect_timeout, self.connect_host(i, pass));
                let reason = match attempt.await.unwrap_or(Err(Failed::TimedOut)) {
                    Ok(pair) => {
                        self.succeeded(i);
                        return Ok(pair);
                    }
                    Err(Failed::TimedOut) => {
                        let reason = format!(
                            "{}no answer within {}",
                            self.label(i),
                            super::error::human_duration(self.connect_timeout)
                        );
                        self.failed(i, reason.clone(), true);
                        reason
                    }
                    Err(Failed::Driver(e)) => {
                        let reason = format!("{}{}", self.label(i), connect_reason(&e));
                        self.failed(i, reason.clone(), is_timeout(&e));
                        last_driver_error = Some(e);
                        reason
                    }
                    Err(Failed::Refused(reason)) => {
                        let reason = format!("{}{reason}", self.label(i));
                        self.failed(i, reason.clone(), false);
                        reason
                    }
                };
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
        }
        let mut s = self.state();
        s.failures += 1;
        if self.targets.len() > 1 {
            let what = match self.attrs {
                SessionAttrs::Any => "no host answered".to_string(),
                attrs => format!("no host fits target_session_attrs={}", attrs.label()),
            };
            s.last_failure = Some((SystemTime::now(), format!("{what}: {}", reasons.join("; "))));
        }
        drop(s);
        self.metrics(|m| m.connect(&self.database, false));
        // A host that answered but did not fit left no driver error: the
        // kept reason says why (Database::pool_error reads it).
        Err(last_driver_error.unwrap_or_else(Error::__private_api_timeout))
    }

    fn tls_connector(&self, tls: &Tls) -> tokio_postgres_rustls::MakeRustlsConnect {
        let (connector, refused) = tls.connector(&self.database);
        self.metrics(|m| m.set_tls_files_error(&self.database, refused));
        connector
    }

    async fn connect_host(
        &self,
        i: usize,
        pass: usize,
    ) -> Result<(Client, JoinHandle<()>), Failed> {
        let target = &self.targets[i];
        let mut config = target.config.clone();
        if let Some(identity) = &self.identity {
            let user = config.get_user().unwrap_or_default().to_string();
            let password = identity.password(&target.host, target.port, &user).await;
            self.metrics(|m| m.set_credential_ok(&self.database, identity.ok()));
            config.password(password.map_err(Failed::Refused)?);
        }
        let (client, handle) = match (self.mode, &self.tls) {
            (SslMode::Disable, _) | (_, None) => spawn(config.connect(NoTls).await)?,
            (SslMode::Allow, Some(tls)) => match spawn(config.connect(NoTls).await) {
                Ok(pair) => pair,
                // libpq: plain text refused (pg_hba wants hostssl), so TLS.
                Err(Failed::Driver(e)) if e.as_db_error().is_some() => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Require);
                    spawn(config.connect(self.tls_connector(tls)).await)?
                }
                Err(e) => return Err(e),
            },
            (SslMode::Prefer, Some(tls)) => {
                match spawn(config.connect(self.tls_connector(tls)).await) {
                    Ok(pair) => pair,
                    // libpq: a TLS handshake that fails (a certificate the
                    // root does not vouch for) is tried again in plain text.
                    Err(Failed::Driver(e)) if is_tls_failure(&e) => {
                        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                        spawn(config.connect(NoTls).await)?
                    }
                    Err(e) => return Err(e),
                }
            }
            (_, Some(tls)) => spawn(config.connect(self.tls_connector(tls)).await)?,
        };
        if self.attrs != SessionAttrs::Any {
            let standby = in_recovery(&client).await.map_err(Failed::Driver)?;
            if !self.attrs.accepts(standby, pass) {
                handle.abort();
                return Err(Failed::Refused(format!(
                    "the server is {} (target_session_attrs={})",
                    if standby { "a standby" } else { "a primary" },
                    self.attrs.label()
                )));
            }
        }
        Ok((client, handle))
    }
}

fn spawn<S, T>(
    connected: Result<(Client, tokio_postgres::Connection<S, T>), Error>,
) -> Result<(Client, JoinHandle<()>), Failed>
where
    tokio_postgres::Connection<S, T>:
        std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let (client, connection) = connected.map_err(Failed::Driver)?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, handle))
}

async fn in_recovery(client: &Client) -> Result<bool, Error> {
    let row = client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await?;
    row.try_get(0)
}

/// The causes under a driver error, outermost first. tokio-rustls hands
/// rustls's error over inside an io::Error, whose `source` skips it: that
/// inner error is yielded too.
fn causes<'a>(e: &'a Error) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    use std::error::Error as _;
    let first: Option<&'a (dyn std::error::Error + 'static)> = e.source();
    std::iter::successors(first, |&err| err.source()).flat_map(|err| {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        std::iter::once(err).chain(inner)
    })
}

/// Whether the TLS handshake itself failed (rustls refused it), as opposed
/// to the server's refusal or the network.
fn is_tls_failure(e: &Error) -> bool {
    causes(e).any(|err| err.downcast_ref::<rustls::Error>().is_some())
}

fn is_timeout(e: &Error) -> bool {
    causes(e).any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Host `i` of `base` as a configuration of its own: the same settings,
/// that host, its port (one per host, or the one for all) and `hostaddr`.
fn one_host(base: &Config, i: usize) -> Target {
    let mut c = Config::new();
    let host = &base.get_hosts()[i];
    let name = match host {
        Host::Tcp(h) => {
            c.host(h);
            h.clone()
        }
        #[cfg(unix)]
        Host::Unix(p) => {
            c.host_path(p);
            p.display().to_string()
        }
    };
    let port = match base.get_ports() {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    c.port(port);
    if let Some(addr) = base.get_hostaddrs().get(i) {
        c.hostaddr(*addr);
    }
    if let Some(u) = base.get_user() {
        c.user(u);
    }
    if let Some(p) = base.get_password() {
        c.password(p);
    }
    if let Some(d) = base.get_dbname() {
        c.dbname(d);
    }
    if let Some(o) = base.get_options() {
        c.options(o);
    }
    if let Some(a) = base.get_application_name() {
        c.application_name(a);
    }
    if let Some(t) = base.get_connect_timeout() {
        c.connect_timeout(*t);
    }
    if let Some(t) = base.get_tcp_user_timeout() {
        c.tcp_user_timeout(*t);
    }
    c.keepalives(base.get_keepalives());
    c.keepalives_idle(base.get_keepalives_idle());
    if let Some(t) = base.get_keepalives_interval() {
        c.keepalives_interval(t);
    }
    if let Some(n) = base.get_keepalives_retries() {
        c.keepalives_retries(n);
    }
    c.ssl_mode(base.get_ssl_mode());
    c.ssl_negotiation(base.get_ssl_negotiation());
    c.channel_binding(base.get_channel_binding());
    Target {
        config: c,
        host: name,
        port,
    }
}

/// The pools' connector: cheap to clone, shares one [`Connector`].
#[derive(Clone)]
pub struct Shared(pub std::sync::Arc<Connector>);

impl Connect for Shared {
    fn connect(
        &self,
        _pg_config: &Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), Error>> {
        Box::pin(self.0.connect_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_attrs_follow_libpq_names() {
        for (s, want) in [
            ("any", SessionAttrs::Any),
            ("read-write", SessionAttrs::Primary),
            ("primary", SessionAttrs::Primary),
            ("read-only", SessionAttrs::Standby),
            ("standby", SessionAttrs::Standby),
            ("prefer-standby", SessionAttrs::PreferStandby),
        ] {
            assert_eq!(SessionAttrs::parse(s), Some(want), "{s}");
        }
        assert!(SessionAttrs::parse("read_write").is_none());
        let p = SessionAttrs::PreferStandby;
        assert!(!p.accepts(false, 0) && p.accepts(true, 0) && p.accepts(false, 1));
        assert!(SessionAttrs::Primary.accepts(false, 0) && !SessionAttrs::Primary.accepts(true, 0));
    }

    #[test]
    fn each_host_gets_its_own_port_and_every_setting() {
        let base: Config =
            "host=a,b,c port=1,2,3 user=u password=pw dbname=d options='-c x=1' connect_timeout=4"
                .parse()
                .unwrap();
        let t = one_host(&base, 1);
        assert_eq!((t.host.as_str(), t.port), ("b", 2));
        assert_eq!(t.config.get_hosts().len(), 1);
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(t.config.get_options(), Some("-c x=1"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(4))
        );
        let single: Config = "host=a,b port=7 user=u".parse().unwrap();
        assert_eq!(one_host(&single, 1).port, 7);
    }

    /// A connector without TLS, identity or metrics.
    fn plain(base: &Config) -> Connector {
        Connector::new(
            "x",
            base,
            SslMode::Disable,
            None,
            SessionAttrs::Any,
            None,
            Default::default(),
        )
    }

    #[tokio::test]
    async fn a_silent_host_times_out_and_backs_off() {
        // Accepts (the kernel's backlog) and never says a word.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let base: Config = format!("host=127.0.0.1 port={port} user=u connect_timeout=1")
            .parse()
            .unwrap();
        let mut c = plain(&base);
        c.connect_timeout = Duration::from_millis(150);
        let started = Instant::now();
        assert!(c.connect_any().await.is_err());
        assert!(started.elapsed() >= Duration::from_millis(150));
        let reason = c.recent_failure(Duration::from_secs(5)).unwrap();
        assert!(reason.contains("no answer within"), "{reason}");
        // Backing off: the next attempt fails at once, with the same reason.
        let started = Instant::now();
        assert!(c.connect_any().await.is_err());
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(c.recent_failure(Duration::from_secs(5)).unwrap(), reason);
        // After the back-off it is tried again (and times out again).
        tokio::time::sleep(BACKOFF_FIRST).await;
        let started = Instant::now();
        assert!(c.connect_any().await.is_err());
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(c.health()["connect_failures"], 3);
        drop(silent);
    }

    #[tokio::test]
    async fn a_refused_host_is_retried_at_once_and_named_by_position() {
        // Two ports nobody listens on: refused at once, no back-off.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let base: Config = format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=u connect_timeout=1",
            ports[0], ports[1]
        )
        .parse()
        .unwrap();
        let c = plain(&base);
        assert!(c.connect_any().await.is_err());
        let reason = c.recent_failure(Duration::from_secs(5)).unwrap();
        assert!(
            reason.contains("host 2 of 2") && !reason.contains("127.0.0.1"),
            "{reason}"
        );
        assert!(c.order().is_some(), "a refusal does not back off");
        assert_eq!(c.health()["connect_failures"], 1);
    }
}
