//! Integration tests of the server over real HTTP on 127.0.0.1: one binary, topical modules.

mod support;

mod api;
mod busy_store;
mod client;
mod console;
mod hostile;
mod oauth;
mod retries;
mod security;
