//! The connection layer: accepts TCP connections up to a cap and serves HTTP/1.1 on each with
//! hyper, one task per connection, closing the connections of clients too slow or too idle.
//!
//! A connection is always in one [`Phase`], stamped with the instant it began, in one atomic
//! word that the socket, the service and the connection's watchdog update; each phase has its
//! timeout. The watchdog is one timer per connection, re-armed when it fires rather than on
//! every request, so a request costs a few clock reads and atomic stores, never a timer: it
//! looks again within the shortest timeout, by which no phase entered since can have ended.
//! A phase that may last (a request served for long, as a wait; a stream) lets it sleep until
//! that phase's own deadline or further, and the phase entered after it wakes the watchdog if
//! its deadline comes sooner: an idle waiter or stream costs no wake-up.
//! (hyper's own `header_read_timeout` also runs while a keep-alive connection is idle, so it
//! cannot tell a slow head from an idle connection, and it allocates a timer per request.)
//!
//! At the cap, the server stops accepting: the connection just accepted waits for a slot and
//! the next ones wait in the listen backlog, as with nginx and HAProxy. Room is made at once:
//! every connection waiting for a request of which no byte has arrived (new, or idle
//! keep-alive) is closed, as nginx reuses its idle keep-alive connections; and while at the
//! cap, answers carry `Connection: close`, as Envoy's overload manager disables keep-alive.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, Request};
use warp::reply::Response;

use crate::error::BodyTimedOut;

/// How many connections the server holds and how long it waits for each client. A timeout
/// longer than a year counts as a year: as good as never, and an instant so far ahead still
/// fits the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once (at least 1). At the cap, new connections wait (one
    /// accepted, the rest in the listen backlog) while the server closes the connections
    /// that wait for a request and asks the others to close after their answer.
    pub max_connections: usize,
    /// Time to receive a request's head, from its first byte (from the accept, for a new
    /// connection). Past it the connection is closed.
    pub header_timeout: Duration,
    /// Time to receive a request's body, from the end of its head. Past it the answer is
    /// 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request, and a client may take to
    /// read an answer. Past it the connection is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// 10 000 connections; 10 s for a head, 30 s for a body; 120 s idle: longer than the
    /// 90 s for which reqwest and Go keep an idle connection, so that the client closes first
    /// and never sends a request on a connection the server is closing.
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The kernel's send buffer of each connection (it doubles it for its own bookkeeping). A
/// large answer (a history page of megabytes) is then written a few hundred KiB per call,
/// each a short burst of the kernel's network work, instead of megabytes in one, during which
/// the core could run nothing else: another user's small request waiting for that core was
/// the worst of its latency beside such a reader. Small answers are not affected; a large one
/// travels at most this much ahead of the client's acknowledgements (256 KiB a round trip).
const SEND_BUFFER: usize = 128 * 1024;

/// How long to pause after a failed accept (out of file descriptors, most likely) before
/// trying again, rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The longest timeout kept (see [`ConnectionLimits`]).
const LONGEST_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How often, at most, reaching the cap is logged.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Accepts connections on `listener` and serves `routes` on them until `shutdown`
/// completes; then closes the listener, lets each connection finish the request it is
/// serving, and returns when all are closed.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared::new(limits));
    let mut http = http1::Builder::new();
    // The watchdog times heads; hyper's own timer would also close idle connections at once.
    http.header_read_timeout(None);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    let mut cap_warned: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after(e).await;
                    continue;
                }
            },
        };
        // At the cap this connection waits, unserved, for a slot; the rest wait in the backlog.
        let slot = match shared.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: closing connections that wait for a request"
                    );
                    cap_warned = Some(Instant::now());
                }
                shared.shed.notify_waiters();
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = shared.slots.acquire() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        // The slot is given back when the connection's state is dropped, with its socket.
        slot.forget();
        let conn = Arc::new(Conn::new(shared.clone()));
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(error = %e, "cannot set the send buffer's size");
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = Watched {
            io: TokioIo::new(stream),
            conn: conn.clone(),
        };
        let service = Service {
            routes: RefCell::new(warp::service(routes.clone())),
            conn: conn.clone(),
            peer: Peer(peer),
        };
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(watch(connection, conn));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits out a failed accept; a connection reset before it was accepted needs no wait.
async fn pause_after(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Drives one connection to its end, closing it when its phase's deadline passes or when
/// room is needed while it waits for a request.
async fn watch(connection: impl Future<Output = Result<(), hyper::Error>>, conn: Arc<Conn>) {
    let mut connection = pin!(connection);
    let Some(first_check) = conn.arm(conn.accepted) else {
        return;
    };
    let mut timer = pin!(tokio::time::sleep_until(first_check));
    let mut shed = pin!(conn.shared.shed.notified());
    let mut rearm = pin!(conn.rearm.notified());
    loop {
        tokio::select! {
            biased;
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = &mut timer => match conn.arm(Instant::now()) {
                Some(at) => timer.as_mut().reset(at),
                None => {
                    tracing::debug!(phase = ?conn.phase().0, "closing a slow or idle connection");
                    return;
                }
            },
            () = &mut rearm => {
                // A phase that ends sooner than the check armed: look at it now.
                timer.as_mut().reset(Instant::now());
                rearm.set(conn.rearm.notified());
            }
            () = &mut shed => {
                if conn.phase().0.waits_for_request() {
                    return;
                }
                shed.set(conn.shared.shed.notified());
            }
        }
    }
}

/// What every connection shares: the limits, the slots under the cap, and the call to close
/// the connections that wait for a request.
struct Shared {
    limits: ConnectionLimits,
    /// The shortest timeout: no phase entered after an instant can end sooner after it.
    shortest: Duration,
    slots: Semaphore,
    shed: Notify,
}

impl Shared {
    fn new(limits: ConnectionLimits) -> Self {
        let limits = ConnectionLimits {
            header_timeout: limits.header_timeout.min(LONGEST_TIMEOUT),
            body_timeout: limits.body_timeout.min(LONGEST_TIMEOUT),
            idle_timeout: limits.idle_timeout.min(LONGEST_TIMEOUT),
            ..limits
        };
        Self {
            limits,
            shortest: limits
                .header_timeout
                .min(limits.body_timeout)
                .min(limits.idle_timeout),
            slots: Semaphore::new(limits.max_connections),
            shed: Notify::new(),
        }
    }

    fn at_cap(&self) -> bool {
        self.slots.available_permits() == 0
    }
}

/// Where a connection is between two requests, or in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no byte received yet: the first head is timed from the accept.
    New = 0,
    /// Receiving a request's head.
    Head = 1,
    /// The request is being served, its body read.
    Busy = 2,
    /// Answered; the answer is being written.
    Answered = 3,
    /// Keep-alive, waiting for the next request.
    Idle = 4,
    /// Answering with a stream (`text/event-stream`) that may last: timed as idle, but from
    /// the last write flushed, so a client that stops reading is closed, one that reads is not.
    Streaming = 5,
}

impl Phase {
    const BITS: u32 = 3;
    const MASK: u64 = (1 << Self::BITS) - 1;

    fn of(word: u64) -> Self {
        match word & Self::MASK {
            0 => Self::New,
            1 => Self::Head,
            2 => Self::Busy,
            3 => Self::Answered,
            4 => Self::Idle,
            _ => Self::Streaming,
        }
    }

    /// Whether no byte of the next request has arrived: such a connection may be closed to
    /// make room.
    fn waits_for_request(self) -> bool {
        matches!(self, Self::New | Self::Idle)
    }

    fn timeout(self, limits: &ConnectionLimits) -> Duration {
        match self {
            Self::New | Self::Head => limits.header_timeout,
            Self::Busy => limits.body_timeout,
            Self::Answered | Self::Idle | Self::Streaming => limits.idle_timeout,
        }
    }
}

/// One connection's phase, kept as milliseconds since the accept (shifted) and the phase, and
/// its slot under the cap, given back on drop.
struct Conn {
    shared: Arc<Shared>,
    accepted: Instant,
    state: AtomicU64,
    /// The watchdog's next check, in milliseconds since the accept.
    armed: AtomicU64,
    /// Tells the watchdog that a phase entered ends before its armed check.
    rearm: Notify,
}

impl Conn {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            accepted: Instant::now(),
            state: AtomicU64::new(Phase::New as u64),
            armed: AtomicU64::new(0),
            rearm: Notify::new(),
        }
    }

    /// The phase and the instant it began.
    fn phase(&self) -> (Phase, Instant) {
        self.decode(self.state.load(Relaxed))
    }

    fn decode(&self, word: u64) -> (Phase, Instant) {
        let since = self.accepted + Duration::from_millis(word >> Phase::BITS);
        (Phase::of(word), since)
    }

    /// Milliseconds since the accept until `at`, rounded up.
    fn millis_until(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.accepted).as_nanos() as u64).div_ceil(1_000_000)
    }

    /// Enters `phase` now; returns the instant recorded: now, rounded up to the millisecond
    /// so that no timeout ends early. Wakes the watchdog if the phase ends before its check.
    fn enter(&self, phase: Phase) -> Instant {
        let millis = self.millis_until(Instant::now());
        self.state
            .store(millis << Phase::BITS | phase as u64, SeqCst);
        let ends = millis.saturating_add(phase.timeout(&self.shared.limits).as_millis() as u64);
        // Either this sees the check the watchdog armed, or the watchdog sees this phase.
        if self.armed.load(SeqCst) > ends {
            self.rearm.notify_one();
        }
        self.accepted + Duration::from_millis(millis)
    }

    /// Bytes arrived: a connection waiting for a request is now receiving its head.
    fn received(&self) {
        let word = self.state.load(Relaxed);
        match Phase::of(word) {
            // The first head is timed from the accept.
            Phase::New => self
                .state
                .store(word & !Phase::MASK | Phase::Head as u64, Relaxed),
            Phase::Idle => {
                self.enter(Phase::Head);
            }
            Phase::Head | Phase::Busy | Phase::Answered | Phase::Streaming => {}
        }
    }

    /// Everything written so far has been handed to the socket: an answered connection is
    /// now idle; a streaming one is timed from now.
    fn flushed(&self) {
        match Phase::of(self.state.load(Relaxed)) {
            Phase::Answered => {
                self.enter(Phase::Idle);
            }
            Phase::Streaming => {
                self.enter(Phase::Streaming);
            }
            Phase::New | Phase::Head | Phase::Busy | Phase::Idle => {}
        }
    }

    /// When the watchdog should look again, noted as its armed check; `None` if the
    /// connection must close now.
    fn arm(&self, now: Instant) -> Option<Instant> {
        loop {
            let word = self.state.load(SeqCst);
            let at = self.check_after(word, now)?;
            self.armed.store(self.millis_until(at), SeqCst);
            // A phase entered meanwhile may not have seen this check: look at it again.
            if self.state.load(SeqCst) == word {
                return Some(at);
            }
        }
    }

    /// When to look again at a connection in the phase `word` says, or `None` if it must
    /// close now. Within the shortest timeout, but for the phases that may last: a stream,
    /// at its own deadline; a request being served (never closed here: a late body is
    /// answered 408 by its reader, which the check at the body's deadline lets run), never
    /// once its body's deadline has passed. Leaving them wakes the watchdog ([`Conn::enter`]).
    fn check_after(&self, word: u64, now: Instant) -> Option<Instant> {
        let (phase, since) = self.decode(word);
        let deadline = since + phase.timeout(&self.shared.limits);
        match phase {
            Phase::Busy if deadline <= now => Some(now + LONGEST_TIMEOUT),
            _ if deadline <= now => None,
            Phase::Streaming => Some(deadline),
            _ => Some(deadline.min(now + self.shared.shortest)),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.slots.add_permits(1);
    }
}

/// The socket, telling the connection's phase when bytes arrive and when writes complete.
struct Watched {
    io: TokioIo<TcpStream>,
    conn: Arc<Conn>,
}

impl hyper::rt::Read for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        // An end of stream counts as bytes: the connection closes either way.
        if let Poll::Ready(Ok(())) = polled {
            self.conn.received();
        }
        polled
    }
}

impl hyper::rt::Write for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.conn.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The routes as the connection's hyper service: each request's body gets its deadline and
/// the request the connection's [`Peer`], and the connection's phase follows the request.
struct Service<S> {
    /// Borrowed only for the call, which returns a future that owns what it needs.
    routes: RefCell<S>,
    conn: Arc<Conn>,
    peer: Peer,
}

/// The address of the other end of a request's connection, in the request's extensions
/// (`warp::ext::optional::<Peer>()`): the client's, or its proxy's (no forwarded header is
/// trusted).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl<S> hyper::service::Service<Request<Incoming>> for Service<S>
where
    S: tower_service::Service<Request<TimedBody>, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let deadline = self.conn.enter(Phase::Busy) + self.conn.shared.limits.body_timeout;
        let mut request = request.map(|body| TimedBody { body, deadline });
        request.extensions_mut().insert(self.peer);
        Answer {
            response: self.routes.borrow_mut().call(request),
            conn: self.conn.clone(),
        }
    }
}

/// A request's answer; when it is ready the connection is answered, and at the cap asked to
/// close after it.
struct Answer<F> {
    response: F,
    conn: Arc<Conn>,
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = ready!(Pin::new(&mut self.response).poll(cx));
        let streams = (response.headers().get(header::CONTENT_TYPE))
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        self.conn.enter(match streams {
            true => Phase::Streaming,
            false => Phase::Answered,
        });
        if self.conn.shared.at_cap() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline has passed while it waits
/// for bytes. (The connection's watchdog wakes its reader at that deadline.)
struct TimedBody {
    body: Incoming,
    deadline: Instant,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending if Instant::now() >= self.deadline => {
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
            polled => polled.map(|frame| frame.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_too_long_for_an_instant_is_kept_as_a_year() {
        let shared = Arc::new(Shared::new(ConnectionLimits {
            max_connections: 1,
            header_timeout: Duration::MAX,
            body_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
        }));
        let conn = Conn::new(shared);
        let now = Instant::now();
        let check = conn.arm(now).expect("a new connection is not late");
        assert!(check > now && check <= now + LONGEST_TIMEOUT);
        conn.enter(Phase::Idle);
        assert!(conn.arm(Instant::now()).is_some());
    }

    /// Whether the watchdog was told to look again (consumes the wake-up).
    async fn rearmed(conn: &Conn) -> bool {
        tokio::time::timeout(Duration::ZERO, conn.rearm.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_request_served_for_long_lets_the_watchdog_sleep_until_it_is_answered() {
        let limits = ConnectionLimits::default();
        let conn = Conn::new(Arc::new(Shared::new(limits)));
        let started = conn.enter(Phase::Busy);
        // Until the body's deadline, checked as before; past it, never while it waits.
        assert!(conn.arm(started).unwrap() <= started + limits.header_timeout);
        let waiting = started + limits.body_timeout + Duration::from_secs(1);
        assert!(conn.arm(waiting).unwrap() > waiting + limits.idle_timeout);
        assert!(!rearmed(&conn).await);
        // Answered: its idle timeout ends long before that check, so the watchdog is woken.
        conn.enter(Phase::Answered);
        assert!(rearmed(&conn).await);
        assert!(conn.arm(Instant::now()).unwrap() <= Instant::now() + limits.header_timeout);
    }

    #[tokio::test]
    async fn a_stream_is_checked_at_its_deadline_and_its_writes_wake_no_watchdog() {
        let limits = ConnectionLimits::default();
        let conn = Conn::new(Arc::new(Shared::new(limits)));
        let since = conn.enter(Phase::Streaming);
        assert_eq!(conn.arm(since), Some(since + limits.idle_timeout));
        conn.flushed();
        assert!(!rearmed(&conn).await, "a write pushes the deadline later");
        // The stream ends and the next request's head begins: timed from its first byte.
        conn.enter(Phase::Answered);
        conn.flushed();
        assert!(!rearmed(&conn).await);
        conn.received();
        assert!(
            rearmed(&conn).await,
            "a head ends sooner than the stream's check"
        );
    }

    #[test]
    fn a_stream_is_timed_from_its_last_flush_and_never_shed() {
        let shared = Arc::new(Shared::new(ConnectionLimits::default()));
        let conn = Conn::new(shared);
        conn.enter(Phase::Streaming);
        conn.flushed();
        assert_eq!(conn.phase().0, Phase::Streaming);
        assert!(!conn.phase().0.waits_for_request());
        let late =
            Instant::now() + ConnectionLimits::default().idle_timeout + Duration::from_secs(1);
        assert_eq!(
            conn.arm(late),
            None,
            "closed once no write is flushed for long"
        );
        conn.enter(Phase::Answered);
        conn.flushed();
        assert_eq!(conn.phase().0, Phase::Idle);
    }
}
