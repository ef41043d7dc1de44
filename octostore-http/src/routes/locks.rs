//! `/locks`: acquire (once, or waiting in the lock's queue), release, renew, status, list.

use std::sync::Arc;

use octostore_core::{AcquireStatus, Api, Error, LockGrant, LockPage, LockStatus, Session};
use tokio::sync::Notify;
use tokio::time::Instant;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::app::not_finished;
use crate::app::App;
use crate::dto::{
    LockInfo, LockList, LockNotHeld, LockResponse, LockState, LockStatusAnswer, Released,
};
use crate::error::error_response;
use crate::metrics::Outcome;
use crate::operation::requests::{AcquireLock, GetLock, ListLocks, ReleaseLock, RenewLock};
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn acquire(request: Request) -> Response {
    // Decoded here, off the store's thread; an error is answered after authentication.
    let acquire = request.decode::<AcquireLock>();
    let app = request.app;
    let response = match acquire {
        Ok(acquire) if !acquire.wait.is_zero() => waiting(&app, request.token, acquire).await,
        acquire => {
            let op = move |session: &Session| {
                let AcquireLock {
                    name,
                    ttl,
                    client_id,
                    wait: _,
                } = acquire?;
                session.acquire(&name, ttl, client_id.as_ref())
            };
            app.as_user_then(request.token, op, granted).await
        }
    };
    // Counted by the answer, so a conflict is counted as the client sees it.
    match response.status() {
        StatusCode::OK => app.metrics.decided(Outcome::LockGranted),
        StatusCode::CONFLICT => app.metrics.decided(Outcome::LockConflicted),
        _ => {}
    }
    response
}

/// What a waiting acquire answers when the server stops before it got the lock: it took
/// nothing and may be sent again (to this server once it is back, or to another node).
fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down; the acquire took nothing".into())
}

fn granted(grant: LockGrant) -> Response {
    answer::<AcquireLock>(&LockResponse::new(grant.status, &grant.lease))
}

/// An acquire that waits in the lock's queue: its ticket lives in this future, so a client
/// that disconnects (dropping the future) leaves the queue. Each try is one short operation,
/// run as any other (so no committer or pool slot is held while waiting); between tries the
/// future awaits its ticket's wake-up or the holder's expiry, holding no thread.
async fn waiting(app: &App, token: Option<String>, acquire: AcquireLock) -> Response {
    let session = match app.session(token).await {
        Some(Ok(session)) => session,
        Some(Err(e)) => return error_response(&e),
        None => return error_response(&not_finished()),
    };
    let give_up = Instant::now() + app.capped_wait(acquire.wait);
    let woken = Arc::new(Notify::new());
    let wake = {
        let woken = woken.clone();
        Box::new(move || woken.notify_one())
    };
    let name = acquire.name.clone();
    let ticket = match app
        .run_as(&session, move |s| s.join_queue(&name, wake))
        .await
    {
        Ok(ticket) => Arc::new(ticket),
        Err(e) => return error_response(&e),
    };
    loop {
        let (ticket_now, client_id) = (ticket.clone(), acquire.client_id.clone());
        let try_once = move |session: &Session| {
            session.acquire_in_turn(&ticket_now, acquire.ttl, client_id.as_ref())
        };
        let held_until = match app.run_as(&session, try_once).await {
            Err(Error::LockHeld { expires_at, .. }) if Instant::now() < give_up => expires_at,
            Ok(grant) => return granted(grant),
            Err(e) => return error_response(&e),
        };
        let retry = app.store().next_try(ticket.after_held(held_until));
        let retry = retry.map_or(give_up, |at| Instant::from_std(at).min(give_up));
        // Woken (released, or now the head), or the holder's lease or the wait ended.
        tokio::select! {
            () = woken.notified() => {}
            () = tokio::time::sleep_until(retry) => {}
            () = app.stopped() => return error_response(&shutting_down()),
        }
    }
}

pub(super) async fn release(request: Request) -> Response {
    let release = request.decode::<ReleaseLock>();
    let op = move |session: &Session| {
        let ReleaseLock { name, lease_id } = release?;
        session.release(&name, lease_id)
    };
    let reply = |()| {
        answer::<ReleaseLock>(&Released {
            status: LockState::Released,
            message: "Lock released".into(),
        })
    };
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn renew(request: Request) -> Response {
    let renew = request.decode::<RenewLock>();
    let op = move |session: &Session| {
        let RenewLock {
            name,
            lease_id,
            ttl,
        } = renew?;
        session.renew(&name, lease_id, ttl)
    };
    let reply = |lease| answer::<RenewLock>(&LockResponse::new(AcquireStatus::Held, &lease));
    request.app.as_user_then(request.token, op, reply).await
}

pub(super) async fn status(request: Request) -> Response {
    let status = request.decode::<GetLock>();
    let op = move |session: &Session| {
        let GetLock(name) = status?;
        let waiters = Some(session.waiters(&name)?);
        let status = match session.lock_status(&name)? {
            LockStatus::Held(lease) => LockStatusAnswer::Held(LockResponse {
                waiters,
                ..LockResponse::new(AcquireStatus::Held, &lease)
            }),
            LockStatus::Available => LockStatusAnswer::Available(LockNotHeld {
                status: LockState::Available,
                name: name.to_string(),
                message: Some("Lock not currently held".into()),
                waiters,
            }),
        };
        Ok(answer::<GetLock>(&status))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let list = request.decode::<ListLocks>();
    let op = move |session: &Session| {
        let (locks, next): (Vec<LockInfo>, _) = match list?.all {
            None => (session.locks()?.iter().map(LockInfo::from).collect(), None),
            Some(page) => {
                let all = session.all_locks(&page)?;
                let next = all
                    .next
                    .as_ref()
                    .and_then(LockPage::after)
                    .map(|n| n.to_string());
                (all.locks.iter().map(LockInfo::from).collect(), next)
            }
        };
        Ok(answer::<ListLocks>(&LockList {
            total: locks.len(),
            locks,
            next,
        }))
    };
    request.app.as_user(request.token, op).await
}
