//! TLS to PostgreSQL through `PostgresBackend::connect_with`, against a server of the test's
//! own with `ssl=on` and a certificate for `localhost` alone (`server.rs`): each `sslmode`
//! connects, or is refused, as libpq's does, and the server says whether the backend's
//! connections use TLS (`pg_stat_ssl`).
//!
//! Runs when `OCTOSTORE_TEST_POSTGRES_URL` is set (CI sets it) and PostgreSQL's server
//! programs are installed; otherwise it prints that it was skipped.

#[cfg(feature = "postgres")]
mod server;

#[cfg(feature = "postgres")]
mod tls {
    use std::path::Path;

    use octostore_core::values::error::Chain;
    use octostore_core::{
        Api, LockName, Login, PostgresBackend, PostgresOptions, Result, Store, Ttl,
    };

    use crate::server::{server_binaries, TlsServer};

    const POSTGRES_URL_VAR: &str = "OCTOSTORE_TEST_POSTGRES_URL";

    /// Connects as `url` says (the CA file given as an option when `ca_file`), runs a store
    /// operation, and answers whether every connection the backend holds uses TLS, as the
    /// server sees them (none: a failure).
    fn connect_and_use(
        server: &TlsServer,
        url: &str,
        ca_file: Option<&Path>,
        application: &str,
    ) -> Result<bool> {
        let separator = if url.contains('?') { '&' } else { '?' };
        let options = PostgresOptions {
            schema: Some("octostore_tls".to_owned()),
            ca_file: ca_file.map(Path::to_owned),
            ..PostgresOptions::default()
        };
        let backend = PostgresBackend::connect_with(
            &format!("{url}{separator}application_name={application}"),
            options,
        )?;
        let store = Store::builder().backend(backend).build();
        let session = store.session(store.local_user(&Login::parse("alice")?)?);
        let lock = LockName::parse(application)?;
        let grant = session.acquire(&lock, Ttl::seconds(60)?, None)?;
        session.release(&lock, grant.lease.lease_id)?;
        let tls = tls_of(server, application);
        drop(store);
        Ok(tls)
    }

    /// Whether the connections named `application` use TLS: read by a plain connection of
    /// its own.
    fn tls_of(server: &TlsServer, application: &str) -> bool {
        let mut client = postgres::Config::new()
            .host("127.0.0.1")
            .port(server.port)
            .user("postgres")
            .dbname("postgres")
            .ssl_mode(postgres::config::SslMode::Disable)
            .connect(postgres::NoTls)
            .unwrap();
        let rows = client
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = $1",
                &[&application],
            )
            .unwrap();
        assert!(!rows.is_empty(), "no connection of {application} is open");
        let tls: Vec<bool> = rows.iter().map(|row| row.get(0)).collect();
        assert!(
            tls.iter().all(|&t| t == tls[0]),
            "{application}'s connections disagree: {tls:?}"
        );
        tls[0]
    }

    /// The chain of a refused connection's error, printed.
    fn refusal(result: Result<bool>) -> String {
        match result {
            Ok(tls) => panic!("connected (tls: {tls}) where it must be refused"),
            Err(e) => {
                let chain = Chain(&e).to_string();
                eprintln!("refused as expected: {chain}");
                chain
            }
        }
    }

    #[test]
    fn each_sslmode_connects_or_is_refused_as_libpq_does() {
        if std::env::var_os(POSTGRES_URL_VAR).is_none() {
            eprintln!("skipped: {POSTGRES_URL_VAR} is unset (the PostgreSQL tests are off)");
            return;
        }
        let Some(bin) = server_binaries() else {
            eprintln!(
                "skipped: PostgreSQL's server programs (initdb, postgres) are not installed \
                 (no pg_config --bindir, no /usr/lib/postgresql/*/bin)"
            );
            return;
        };
        let server = TlsServer::start(&bin);
        let port = server.port;
        let ca = server.ca_file.display().to_string();
        let by_name = format!("postgres://postgres@localhost:{port}/postgres");
        let by_address = format!("postgres://postgres@127.0.0.1:{port}/postgres");

        // (a) verify-full, by the name the certificate holds, the CA in the URL.
        let full = connect_and_use(
            &server,
            &format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
            None,
            "full_by_name",
        )
        .unwrap_or_else(|e| panic!("verify-full to localhost: {}", Chain(&e)));
        assert!(full, "verify-full connected without TLS");

        // (b) verify-full by an address the certificate does not name: refused, saying why.
        let wrong_name = refusal(connect_and_use(
            &server,
            &format!("{by_address}?sslmode=verify-full&sslrootcert={ca}"),
            None,
            "full_by_address",
        ));
        assert!(
            wrong_name.contains("certificate was refused")
                && wrong_name.contains("not valid for name \"127.0.0.1\""),
            "{wrong_name}"
        );

        // (c) verify-ca by that address: the chain alone is checked (the CA as an option).
        let chain_only = connect_and_use(
            &server,
            &format!("{by_address}?sslmode=verify-ca"),
            Some(&server.ca_file),
            "ca_by_address",
        )
        .unwrap_or_else(|e| panic!("verify-ca to 127.0.0.1: {}", Chain(&e)));
        assert!(chain_only, "verify-ca connected without TLS");

        // (d) verify-full without the CA: Mozilla's roots do not know the test CA.
        let unknown_ca = refusal(connect_and_use(
            &server,
            &format!("{by_name}?sslmode=verify-full"),
            None,
            "full_without_ca",
        ));
        assert!(
            unknown_ca.contains("certificate was refused")
                && unknown_ca.contains("UnknownIssuer")
                && unknown_ca.contains("--database-ca-file"),
            "{unknown_ca}"
        );

        // (e) disable: plain, though the server offers TLS.
        let plain = connect_and_use(
            &server,
            &format!("{by_address}?sslmode=disable"),
            None,
            "disabled",
        )
        .unwrap_or_else(|e| panic!("disable: {}", Chain(&e)));
        assert!(!plain, "sslmode=disable connected with TLS");

        // (f) require without a CA: TLS, no certificate checked.
        let required = connect_and_use(
            &server,
            &format!("{by_address}?sslmode=require"),
            None,
            "required",
        )
        .unwrap_or_else(|e| panic!("require: {}", Chain(&e)));
        assert!(required, "sslmode=require connected without TLS");

        // No sslmode: prefer, as libpq, so TLS when the server offers it.
        let preferred = connect_and_use(&server, &by_address, None, "preferred")
            .unwrap_or_else(|e| panic!("no sslmode: {}", Chain(&e)));
        assert!(
            preferred,
            "the default sslmode did not use the server's TLS"
        );
    }
}

/// Without the `postgres` feature there is no TLS test: a test database named in the
/// environment must not go untested in silence.
#[cfg(not(feature = "postgres"))]
#[test]
fn the_tls_test_is_built_when_a_test_database_is_named() {
    assert!(
        std::env::var_os("OCTOSTORE_TEST_POSTGRES_URL").is_none(),
        "OCTOSTORE_TEST_POSTGRES_URL is set, but this test was built without the `postgres` \
         feature: run `cargo test --workspace`, or add `--features postgres`"
    );
}
