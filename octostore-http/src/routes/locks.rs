//! `/locks`: acquire, release, renew, status, list.

use octostore_core::{Api, ClientId, LeaseId, LockName, LockStatus, Result, Ttl};
use warp::reply::Response;

use super::{ok, reply, Request};
use crate::dto::{LockInfo, LockList, LockNotHeld, LockResponse, LockState, Released};
use crate::request::{path_name, JsonBody};

fn lock_name(raw: &str) -> Result<LockName> {
    LockName::parse(&path_name(raw, "name")?)
}

pub(super) async fn acquire(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    // Parsed here, off the store's thread; an error is answered after authentication.
    let request = (|| {
        let name = lock_name(&raw)?;
        let body = JsonBody::parse(&body)?;
        let ttl = Ttl::seconds(body.int("ttl_seconds")?)?;
        let client_id = body
            .optional_str("client_id")?
            .map(ClientId::parse)
            .transpose()?;
        Ok((name, ttl, client_id))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, ttl, client_id) = request?;
            session.acquire(&name, ttl, client_id.as_ref())
        },
        |grant| reply(&LockResponse::new(grant.status, &grant.lease)),
    )
    .await
}

pub(super) async fn release(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    let request = (|| {
        Ok((
            lock_name(&raw)?,
            LeaseId(JsonBody::parse(&body)?.uuid("lease_id")?),
        ))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, lease_id) = request?;
            session.release(&name, lease_id)
        },
        |()| {
            reply(&Released {
                status: LockState::Released,
                message: "Lock released".into(),
            })
        },
    )
    .await
}

pub(super) async fn renew(
    Request {
        name: raw,
        app,
        token,
        body,
        ..
    }: Request,
) -> Response {
    let request = (|| {
        let name = lock_name(&raw)?;
        let body = JsonBody::parse(&body)?;
        let lease_id = LeaseId(body.uuid("lease_id")?);
        let ttl = Ttl::seconds(body.int("ttl_seconds")?)?;
        Ok((name, lease_id, ttl))
    })();
    app.as_user_then(
        token,
        move |session| {
            let (name, lease_id, ttl) = request?;
            session.renew(&name, lease_id, ttl)
        },
        |lease| {
            reply(&LockResponse::new(
                octostore_core::AcquireStatus::Held,
                &lease,
            ))
        },
    )
    .await
}

pub(super) async fn status(
    Request {
        name: raw,
        app,
        token,
        ..
    }: Request,
) -> Response {
    app.as_user(token, move |session| {
        let name = lock_name(&raw)?;
        match session.lock_status(&name)? {
            LockStatus::Held(lease) => ok(&LockResponse::new(
                octostore_core::AcquireStatus::Held,
                &lease,
            )),
            LockStatus::Available => ok(&LockNotHeld {
                status: LockState::Available,
                name: name.to_string(),
                message: Some("Lock not currently held".into()),
            }),
        }
    })
    .await
}

pub(super) async fn list(Request { app, token, .. }: Request) -> Response {
    app.as_user(token, move |session| {
        let leases = session.locks()?;
        ok(&LockList {
            total: leases.len(),
            locks: leases.iter().map(LockInfo::from).collect(),
        })
    })
    .await
}
