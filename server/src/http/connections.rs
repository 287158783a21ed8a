//! The accept loop: HTTP/1 connections served by hyper with the limits a public service needs
//! and `axum::serve` does not set. A client that sends half a request line, or opens
//! connections and sends nothing, would otherwise hold a socket (and a file descriptor) forever;
//! enough of them and every other client is refused.
//!
//! - Each request's line and headers must arrive within `header_timeout`. hyper starts that
//!   clock when it waits for a request, so it also closes idle keep-alive connections.
//! - A request body that sends nothing for `body_idle_timeout` fails ([`IdleTimeoutBody`]):
//!   the upload handlers see a body error, answer, and remove their temporary files.
//! - At most `max_connections` connections are open; beyond that the loop stops accepting (the
//!   kernel's backlog holds new clients) until one closes.
//! - At most `max_connections_per_client` per client address; a client's connection beyond
//!   that is closed at once, so one client cannot take every slot.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connection rules of the HTTP server (docs/api.md, "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

/// Serves `app` on `listener` until `stop` turns true, then waits for the open connections to
/// finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let app = app.layer(axum::middleware::map_request(
        move |req: Request| async move { with_body_idle_timeout(req, limits.body_idle_timeout) },
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = PerClient::default();
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning on the error.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(client) = per_client.enter(peer.ip(), limits.max_connections_per_client) else {
            tracing::warn!(client = %peer.ip(), "too many connections from one client; closing the newest");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handlers and auth see the client's address (`ConnectInfo`), as with axum::serve.
        let with_peer = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(with_peer);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timeout, bad framing): nothing to answer.
            let _ = conn.await;
            drop(client);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Descriptors kept for everything but client connections: the database, dump and upload
/// files, webhook requests, the analyzer children's pipes.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `max_connections`, made to fit the process's open-file limit: the soft limit is raised
/// toward the hard one when it is too low (1024 is a common default), and where even the hard
/// limit is too low the connection limit is lowered, with a warning, so that accepting never
/// fails with "too many open files" while requests are being served.
pub fn fit_to_descriptor_limit(max_connections: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let wanted = max_connections as u64 + RESERVED_DESCRIPTORS;
    let mut lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return max_connections;
    }
    let hard = lim.maximum.unwrap_or(u64::MAX);
    lim.current = Some(wanted.min(hard));
    let now = match setrlimit(Resource::Nofile, lim) {
        Ok(()) => wanted.min(hard),
        Err(_) => soft,
    };
    let fits = now.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize;
    if fits < max_connections {
        tracing::warn!(
            descriptor_limit = now,
            max_connections = fits,
            "the open-file limit is too low for max_connections; serving fewer connections"
        );
    }
    fits.min(max_connections)
}

/// Open connections per client address.
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection of a client; counted down when dropped.
struct ClientSlot {
    table: PerClient,
    ip: IpAddr,
}

impl PerClient {
    fn enter(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

fn with_body_idle_timeout(req: Request, idle: Duration) -> Request {
    req.map(|b| Body::new(IdleTimeoutBody::new(b, idle)))
}

/// A request body that fails when no data arrives for `idle` while the handler waits for it.
/// The clock runs only while the handler is waiting: a handler busy elsewhere is not the
/// client's fault.
pub struct IdleTimeoutBody {
    inner: Body,
    idle: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl IdleTimeoutBody {
    pub fn new(inner: Body, idle: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            sleep: None,
        }
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0} s")]
pub struct BodyIdle(u64);

impl http_body::Body for IdleTimeoutBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.sleep = None;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.sleep = None;
                        Poll::Ready(Some(Err(BodyIdle(idle.as_secs()).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_body_that_stalls_fails_after_the_idle_time_and_a_flowing_one_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let body = Body::new(IdleTimeoutBody::new(
            Body::from_stream(stream),
            Duration::from_millis(200),
        ));
        let mut data = body.into_data_stream();
        // Four chunks 100 ms apart (each resets the clock), then nothing while the sender
        // stays connected.
        let sender = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.send(Ok(bytes::Bytes::from_static(b"abc")))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        for _ in 0..4 {
            assert_eq!(data.next().await.unwrap().unwrap(), "abc");
        }
        let started = std::time::Instant::now();
        let err = data.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        sender.abort();
    }

    #[test]
    fn a_client_gets_at_most_its_share_of_connections() {
        let t = PerClient::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = t.enter(a, 2).unwrap();
        let two = t.enter(a, 2).unwrap();
        assert!(t.enter(a, 2).is_none());
        assert!(t.enter(b, 2).is_some(), "another client is not affected");
        drop(one);
        let three = t.enter(a, 2);
        assert!(three.is_some());
        drop((two, three));
        assert!(
            t.0.lock().unwrap().get(&a).is_none(),
            "emptied entries are removed"
        );
    }
}
