//! `/locks`: acquire, release, renew, status, list.

use octostore_core::{AcquireStatus, Api, LockGrant, LockStatus, Session};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::dto::{
    LockInfo, LockList, LockNotHeld, LockResponse, LockState, LockStatusAnswer, Released,
};
use crate::metrics::Outcome;
use crate::operation::requests::{AcquireLock, GetLock, ListLocks, ReleaseLock, RenewLock};
use crate::reply::answer;
use crate::request::Request;

pub(super) async fn acquire(request: Request) -> Response {
    // Decoded here, off the store's thread; an error is answered after authentication.
    let acquire = request.decode::<AcquireLock>();
    let reply =
        |grant: LockGrant| answer::<AcquireLock>(&LockResponse::new(grant.status, &grant.lease));
    let op = move |session: &Session| {
        let AcquireLock {
            name,
            ttl,
            client_id,
        } = acquire?;
        session.acquire(&name, ttl, client_id.as_ref())
    };
    let app = request.app;
    let response = app.as_user_then(request.token, op, reply).await;
    // Counted by the answer, so a conflict is counted as the client sees it.
    match response.status() {
        StatusCode::OK => app.metrics.decided(Outcome::LockGranted),
        StatusCode::CONFLICT => app.metrics.decided(Outcome::LockConflicted),
        _ => {}
    }
    response
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
        let status = match session.lock_status(&name)? {
            LockStatus::Held(lease) => {
                LockStatusAnswer::Held(LockResponse::new(AcquireStatus::Held, &lease))
            }
            LockStatus::Available => LockStatusAnswer::Available(LockNotHeld {
                status: LockState::Available,
                name: name.to_string(),
                message: Some("Lock not currently held".into()),
            }),
        };
        Ok(answer::<GetLock>(&status))
    };
    request.app.as_user(request.token, op).await
}

pub(super) async fn list(request: Request) -> Response {
    let op = |session: &Session| {
        let leases = session.locks()?;
        Ok(answer::<ListLocks>(&LockList {
            total: leases.len(),
            locks: leases.iter().map(LockInfo::from).collect(),
        }))
    };
    request.app.as_user(request.token, op).await
}
