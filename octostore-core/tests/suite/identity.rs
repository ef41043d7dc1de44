//! Users and tokens: case-insensitive logins, hashed tokens, rotation, revocation.

use octostore_core::{Error, Login, Token, TokenHash, UserSource};

use crate::support::{each_backend, Open};

fn login(s: &str) -> Login {
    Login::parse(s).unwrap()
}

fn logins_are_unique_regardless_of_case(open: Open) {
    let h = open(Default::default());
    let alice = h.store.create_user(&login("Alice")).unwrap();
    assert!(matches!(
        h.store.create_user(&login("aLiCe")),
        Err(Error::Conflict(_))
    ));
    assert_eq!(h.store.local_user(&login("ALICE")).unwrap(), alice);
    assert_eq!(h.store.user_by_login(&login("alice")).unwrap(), Some(alice));
    assert_eq!(h.store.user_by_login(&login("bob")).unwrap(), None);
}

fn tokens_authenticate_their_user_and_are_stored_hashed(open: Open) {
    let h = open(Default::default());
    let alice = h.store.create_user(&login("alice")).unwrap();
    let bob = h.store.create_user(&login("bob")).unwrap();
    let a1 = h.store.issue_token(alice.id).unwrap();
    let a2 = h.store.issue_token(alice.id).unwrap();
    let b1 = h.store.issue_token(bob.id).unwrap();
    assert!(a1.expose().starts_with(Token::PREFIX));
    assert_eq!(h.store.authenticate(a1.expose()).unwrap().user(), &alice);
    assert_eq!(h.store.authenticate(a2.expose()).unwrap().user(), &alice);
    assert_eq!(h.store.authenticate(b1.expose()).unwrap().user(), &bob);
    for bad in ["", "octo_", "Bearer x", &a1.expose()[..20]] {
        assert!(
            matches!(h.store.authenticate(bad), Err(Error::Unauthorized)),
            "{bad:?}"
        );
    }
    let stored = h.store.tokens(alice.id).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().any(|t| t.hash == TokenHash::of(a1.expose())));
    assert!(stored.iter().all(|t| t.user == alice.id));
}

fn rotation_kills_the_old_token_at_once(open: Open) {
    let h = open(Default::default());
    let alice = h.store.create_user(&login("alice")).unwrap();
    let old = h.store.issue_token(alice.id).unwrap();
    let other = h.store.issue_token(alice.id).unwrap();
    let new = h.store.rotate_token(old.expose()).unwrap();
    assert_ne!(new, old);
    assert!(matches!(
        h.store.authenticate(old.expose()),
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        h.store.rotate_token(old.expose()),
        Err(Error::Unauthorized)
    ));
    assert_eq!(h.store.authenticate(new.expose()).unwrap().user(), &alice);
    assert!(
        h.store.authenticate(other.expose()).is_ok(),
        "other tokens are untouched"
    );
    assert_eq!(h.store.tokens(alice.id).unwrap().len(), 2);
}

fn revocation_is_by_id_and_per_user(open: Open) {
    let h = open(Default::default());
    let alice = h.store.create_user(&login("alice")).unwrap();
    let bob = h.store.create_user(&login("bob")).unwrap();
    let token = h.store.issue_token(alice.id).unwrap();
    let id = h.store.tokens(alice.id).unwrap()[0].id;
    assert!(matches!(
        h.store.revoke_token(bob.id, id),
        Err(Error::NotFound { .. })
    ));
    h.store.revoke_token(alice.id, id).unwrap();
    assert!(matches!(
        h.store.authenticate(token.expose()),
        Err(Error::Unauthorized)
    ));
    assert!(h.store.tokens(alice.id).unwrap().is_empty());
}

fn github_users_keep_their_identity_across_renames(open: Open) {
    let h = open(Default::default());
    let first = h
        .store
        .upsert_github_user(42, &login("octocat"), Some("https://a/1"))
        .unwrap();
    assert_eq!(first.source, UserSource::Github { github_id: 42 });
    let renamed = h
        .store
        .upsert_github_user(42, &login("octo-cat"), None)
        .unwrap();
    assert_eq!(renamed.id, first.id);
    assert_eq!(renamed.login.as_str(), "octo-cat");
    assert_eq!(h.store.user_by_login(&login("octocat")).unwrap(), None);
    h.store.create_user(&login("taken")).unwrap();
    assert!(matches!(
        h.store.upsert_github_user(7, &login("TAKEN"), None),
        Err(Error::Conflict(_))
    ));
    assert_eq!(h.store.users().unwrap().len(), 2);
}

/// Each change is seen by the next authentication, though the token was just authenticated
/// (a file's store remembers the users of tokens it has authenticated).
fn a_token_authenticated_before_a_change_is_judged_after_it(open: Open) {
    let h = open(Default::default());
    let user = h
        .store
        .upsert_github_user(42, &login("octocat"), None)
        .unwrap();
    let (revoked, rotated) = (
        h.store.issue_token(user.id).unwrap(),
        h.store.issue_token(user.id).unwrap(),
    );
    let kept = h.store.issue_token(user.id).unwrap();
    for token in [&revoked, &rotated, &kept] {
        assert_eq!(h.store.authenticate(token.expose()).unwrap().user(), &user);
    }
    let revoked_id = (h.store.tokens(user.id).unwrap().into_iter())
        .find(|t| t.hash == TokenHash::of(revoked.expose()))
        .unwrap()
        .id;
    h.store.revoke_token(user.id, revoked_id).unwrap();
    h.store.rotate_token(rotated.expose()).unwrap();
    for gone in [&revoked, &rotated] {
        assert!(matches!(
            h.store.authenticate(gone.expose()),
            Err(Error::Unauthorized)
        ));
    }
    h.store
        .upsert_github_user(42, &login("octo-cat"), None)
        .unwrap();
    let session = h.store.authenticate(kept.expose()).unwrap();
    assert_eq!(session.user().login.as_str(), "octo-cat");
}

fn tokens_need_an_existing_user(open: Open) {
    let h = open(Default::default());
    let ghost = octostore_core::UserId(uuid::Uuid::new_v4());
    assert!(matches!(
        h.store.issue_token(ghost),
        Err(Error::NotFound { .. })
    ));
}

each_backend!(
    logins_are_unique_regardless_of_case,
    tokens_authenticate_their_user_and_are_stored_hashed,
    rotation_kills_the_old_token_at_once,
    revocation_is_by_id_and_per_user,
    github_users_keep_their_identity_across_renames,
    a_token_authenticated_before_a_change_is_judged_after_it,
    tokens_need_an_existing_user,
);
