//! `watch` and `config get --watch`, on a local file and against a server: each prints what
//! another command changes, as it is changed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::Env;

/// A command that runs until killed, its stdout read line by line on a thread.
struct Following {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Following {
    fn start(env: &Env, args: &[&str]) -> Self {
        let mut child = env
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line printed; a failure if none comes within 30 s (a change not seen).
    fn next_line(&self) -> String {
        (self.lines.recv_timeout(Duration::from_secs(30)))
            .expect("a line within 30 s: the change was not seen")
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch_sees_a_flag_set_by_another_command(env: &Env) {
    env.run(&["config", "set", "app.size", "1"]).expect(0);
    let watch = Following::start(env, &["watch", "--since", "1", "--kind", "flag"]);
    env.run(&["config", "set", "app.size", "2"]).expect(0);
    env.run(&["flag", "set", "beta", "--enable"]).expect(0);
    let line = watch.next_line();
    assert!(
        line.starts_with("3 ") && line.ends_with(" flag set beta enabled"),
        "{line}"
    );

    let json = Following::start(env, &["watch", "--since", "2", "--json"]);
    let first: serde_json::Value = serde_json::from_str(&json.next_line()).unwrap();
    assert_eq!(
        (first["index"].clone(), first["name"].clone()),
        (3.into(), "beta".into())
    );
    env.run(&["flag", "delete", "beta"]).expect(0);
    let second: serde_json::Value = serde_json::from_str(&json.next_line()).unwrap();
    assert_eq!(
        (second["index"].clone(), second["action"].clone()),
        (4.into(), "deleted".into())
    );
}

fn config_get_watch_prints_the_next_value(env: &Env) {
    env.run(&["config", "set", "app.size", "1"]).expect(0);
    let watch = Following::start(env, &["config", "get", "app.size", "--watch"]);
    assert_eq!(watch.next_line(), "1");
    env.run(&["config", "set", "other", "0"]).expect(0);
    env.run(&["config", "set", "app.size", "{\"replicas\":2}"])
        .expect(0);
    assert_eq!(watch.next_line(), "{\"replicas\":2}");
}

#[test]
fn watch_sees_a_flag_set_by_another_command_on_a_local_file() {
    watch_sees_a_flag_set_by_another_command(&Env::local());
}

#[test]
fn watch_sees_a_flag_set_by_another_command_against_a_server() {
    watch_sees_a_flag_set_by_another_command(&Env::remote());
}

#[test]
fn config_get_watch_prints_the_next_value_on_a_local_file() {
    config_get_watch_prints_the_next_value(&Env::local());
}

#[test]
fn config_get_watch_prints_the_next_value_against_a_server() {
    config_get_watch_prints_the_next_value(&Env::remote());
}
