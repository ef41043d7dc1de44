//! A flag's targeting from the command line, as a script would use it: rules, segments,
//! variants, prerequisites and `flag eval`, on a local file and against a server alike.

use crate::support::Env;

/// `flag eval`'s stdout and exit code.
fn eval(env: &Env, args: &[&str]) -> (String, i32) {
    let run = env.run(&[&["flag", "eval"][..], args].concat());
    assert!(
        run.code == 0 || run.code == 1,
        "{args:?}: {} {}",
        run.code,
        run.stderr
    );
    (run.stdout.trim().to_owned(), run.code)
}

fn targeting_flow(env: &Env) {
    env.run(&["flag", "set", "checkout", "--enable"]).expect(0);
    // No rules: on for everyone.
    assert_eq!(
        eval(env, &["checkout"]),
        ("on\nvalue true\nreason STATIC".into(), 0)
    );

    // A rule: on for pro and enterprise plans on a recent app.
    let added = env
        .run(&[
            "flag",
            "rule",
            "add",
            "checkout",
            "--where",
            "plan IN pro,enterprise",
            "--where",
            "app.version SEMVER_GT 2.0.0",
        ])
        .expect(0);
    assert_eq!(
        added.stdout.trim(),
        "0 --where 'plan IN pro,enterprise' --where 'app.version SEMVER_GT 2.0.0'"
    );
    assert_eq!(
        env.run(&["flag", "list"]).expect(0).stdout.trim(),
        "checkout enabled rules=1"
    );
    let pro = [
        "checkout",
        "--prop",
        "plan=pro",
        "--prop",
        "app.version=2.1.0",
    ];
    assert_eq!(
        eval(env, &pro),
        ("on\nvalue true\nreason TARGETING_MATCH".into(), 0)
    );
    let old_app = [
        "checkout",
        "--prop",
        "plan=pro",
        "--prop",
        "app.version=1.9.0",
    ];
    assert_eq!(
        eval(env, &old_app),
        ("off\nvalue false\nreason DEFAULT".into(), 1)
    );
    assert_eq!(eval(env, &["checkout", "--prop", "plan=free"]).1, 1);
    let mut args = vec!["flag", "eval"];
    args.extend(pro);
    args.push("--json");
    let json = env.run(&args).expect(0).json();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "checkout", "enabled": true, "value": true, "value_type": "boolean",
            "reason": "TARGETING_MATCH"
        })
    );

    // A segment, named by a second rule at the front, ignoring case, for half of them.
    let segment = env
        .run(&[
            "flag",
            "segment",
            "set",
            "staff",
            "--where",
            "email ~STR_ENDS_WITH @acme.com",
            "--description",
            "our people",
        ])
        .expect(0);
    assert_eq!(
        segment.stdout.trim(),
        "staff --where 'email ~STR_ENDS_WITH @acme.com' --description 'our people'"
    );
    env.run(&[
        "flag",
        "rule",
        "add",
        "checkout",
        "--segment",
        "staff",
        "--position",
        "0",
    ])
    .expect(0);
    let list = env.run(&["flag", "rule", "list", "checkout"]).expect(0);
    assert_eq!(
        list.stdout.trim(),
        "0 --segment staff\n1 --where 'plan IN pro,enterprise' --where 'app.version SEMVER_GT 2.0.0'"
    );
    let rules = env
        .run(&["flag", "rule", "list", "checkout", "--json"])
        .expect(0)
        .json()["rules"]
        .clone();
    assert_eq!(
        rules[0],
        serde_json::json!({"constraints": [], "segments": ["staff"]})
    );
    assert_eq!(
        rules[1]["constraints"][0],
        serde_json::json!({"property": "plan", "operator": "IN", "values": ["pro", "enterprise"]})
    );
    assert_eq!(
        eval(env, &["checkout", "--prop", "email=Bob@ACME.com"]).1,
        0,
        "the segment ignores case"
    );
    let segments = env
        .run(&["flag", "segment", "list", "--json"])
        .expect(0)
        .json();
    assert_eq!(segments["segments"][0]["name"], "staff");
    assert_eq!(segments["segments"][0]["description"], "our people");
    assert_eq!(
        env.run(&["flag", "segment", "get", "staff"])
            .expect(0)
            .stdout,
        segment.stdout
    );
    // A segment in use stays.
    let in_use = env.run(&["flag", "segment", "delete", "staff"]).expect(2);
    assert!(
        in_use
            .stderr
            .contains("segment staff is used by rules of checkout: remove those rules first"),
        "{}",
        in_use.stderr
    );
    // Removing the rule frees it.
    let removed = env
        .run(&["flag", "rule", "remove", "checkout", "0"])
        .expect(0);
    assert!(removed.stdout.starts_with("0 --where 'plan IN"));
    env.run(&["flag", "rule", "remove", "checkout", "5"])
        .expect(3);
    assert_eq!(
        env.run(&["flag", "segment", "delete", "staff", "--json"])
            .expect(0)
            .json(),
        serde_json::json!({"deleted": true})
    );
    env.run(&["flag", "segment", "get", "staff"]).expect(3);
    assert_eq!(env.run(&["flag", "segment", "list"]).expect(0).stdout, "");
    env.run(&["flag", "rule", "add", "checkout", "--segment", "staff"])
        .expect(3);

    // Variants with payloads: a subject always gets the same one.
    let variants = env
        .run(&[
            "flag",
            "variant",
            "set",
            "checkout",
            "blue=500:string:#0000ff",
            "green=500:string:#00ff00",
        ])
        .expect(0);
    assert_eq!(
        variants.stdout.trim(),
        "'blue=500:string:#0000ff'\n'green=500:string:#00ff00'"
    );
    let with_subject = |subject: &str| {
        let mut args = pro.to_vec();
        args.extend(["--subject", subject, "--json"]);
        env.run(&[&["flag", "eval"][..], &args].concat())
            .expect(0)
            .json()
    };
    let answer = with_subject("user-1");
    assert_eq!(answer["value_type"], "string");
    let colour = answer["variant"].as_str().unwrap().to_owned();
    let expected = if colour == "blue" {
        "#0000ff"
    } else {
        "#00ff00"
    };
    assert_eq!(answer["value"], expected);
    assert_eq!(with_subject("user-1")["variant"], colour.as_str());
    let seen: std::collections::BTreeSet<String> = (0..40)
        .map(|i| {
            with_subject(&format!("user-{i}"))["variant"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen.len(), 2, "both variants are handed out");
    // A split needs a subject.
    let no_subject = env.run(&[&["flag", "eval"][..], &pro].concat()).expect(2);
    assert!(
        no_subject.stderr.contains("rolls out by subject"),
        "{}",
        no_subject.stderr
    );
    // Numbers keep being integers or not.
    env.run(&["flag", "variant", "set", "checkout", "a=1:number:42"])
        .expect(0);
    let (text, _) = eval(env, &[&pro[..], &["--subject", "u"]].concat());
    assert_eq!(text, "on\nvariant a\nvalue 42\nreason TARGETING_MATCH");
    env.run(&["flag", "variant", "set", "checkout", "a=1:number:4.5"])
        .expect(0);
    let info = env
        .run(&["flag", "variant", "list", "checkout", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        info["variants"],
        serde_json::json!([{"name": "a", "weight": 1, "payload": {"type": "number", "value": 4.5}}])
    );
    env.run(&["flag", "variant", "set", "checkout", "--none"])
        .expect(0);
    assert_eq!(
        env.run(&["flag", "variant", "list", "checkout"])
            .expect(0)
            .stdout,
        ""
    );

    // A prerequisite as a kill switch.
    env.run(&["flag", "set", "payments-up", "--enable"])
        .expect(0);
    let required = env
        .run(&["flag", "prereq", "set", "checkout", "payments-up"])
        .expect(0);
    assert_eq!(required.stdout.trim(), "payments-up");
    assert_eq!(eval(env, &pro).1, 0);
    env.run(&["flag", "disable", "payments-up"]).expect(0);
    assert_eq!(
        eval(env, &pro),
        ("off\nvalue false\nreason PREREQUISITE_FAILED".into(), 1)
    );
    // No loops.
    let looped = env
        .run(&["flag", "prereq", "set", "payments-up", "checkout"])
        .expect(2);
    assert!(
        looped.stderr.contains("may not require itself"),
        "{}",
        looped.stderr
    );
    env.run(&["flag", "prereq", "set", "checkout", "--none"])
        .expect(0);
    assert_eq!(eval(env, &pro).1, 0);
    // Required on a variant the parent does not have.
    let no_variant = env
        .run(&["flag", "prereq", "set", "checkout", "payments-up=v1"])
        .expect(2);
    assert!(
        no_variant.stderr.contains("has no variant"),
        "{}",
        no_variant.stderr
    );
}

#[test]
fn targeting_on_a_local_file() {
    targeting_flow(&Env::local());
}

#[test]
fn targeting_against_a_server() {
    targeting_flow(&Env::remote());
}

/// Bad input is said by the flag that gave it, with what to write instead: exit 2, nothing
/// changed.
fn bad_targeting_input(env: &Env) {
    env.run(&["flag", "set", "f", "--enable"]).expect(0);
    for (args, said) in [
        (
            &["flag", "rule", "add", "f", "--where", "plan EQUALS pro"][..],
            "invalid --where: unknown operator \"EQUALS\" in \"plan EQUALS pro\": use one of \
             IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, STR_ENDS_WITH, NUM_EQ, NUM_GT, NUM_GTE, \
             NUM_LT, NUM_LTE, DATE_BEFORE, DATE_AFTER, SEMVER_EQ, SEMVER_GT, SEMVER_LT",
        ),
        (
            &["flag", "rule", "add", "f", "--where", "app.version SEMVER_GT two"],
            "invalid --where: \"app.version SEMVER_GT two\": \"two\" is not a semantic version",
        ),
        (
            &["flag", "rule", "add", "f", "--where", "plan"],
            "invalid --where: \"plan\" has no operator: write 'PROPERTY OPERATOR \
             VALUE[,VALUE...]', as 'plan IN pro,enterprise'",
        ),
        (
            &["flag", "rule", "add", "f", "--where", "seats NUM_GT 1,2"],
            "invalid --where: \"seats NUM_GT 1,2\": NUM_GT compares against exactly one value, got 2",
        ),
        (
            &["flag", "rule", "add", "f", "--where-json", r#"{"property":"p","operator":"IN"}"#],
            "invalid --where-json: ",
        ),
        (
            &["flag", "rule", "add", "f", "--percentage", "101"],
            "invalid --percentage: must be between 0 and 100, got 101",
        ),
        (
            &["flag", "segment", "set", "s", "--where", "plan in"],
            "invalid --where: \"plan in\" has no value after its operator",
        ),
        (
            &["flag", "variant", "set", "f", "blue=1:color:blue"],
            "invalid variant: \"blue=1:color:blue\": unknown type \"color\": use string, \
             number, boolean or json",
        ),
        (
            &["flag", "eval", "f", "--prop", "subject=bob"],
            "invalid --prop: \"subject=bob\": `subject` is the context's subject",
        ),
        (
            &["flag", "eval", "f", "--prop", "seats:=ten"],
            "invalid --prop: \"seats:=ten\": not JSON",
        ),
    ] {
        let run = env.run(args).expect(2);
        assert!(
            run.stderr.starts_with(&format!("octostore: {said}")),
            "{args:?}: {}",
            run.stderr
        );
    }
    // Refused by the store (or server), which names the field: a server's client knows no
    // targeting field yet, and says "request" instead of "variants".
    let mixed = env
        .run(&["flag", "variant", "set", "f", "a=1:string:x", "b=1"])
        .expect(2);
    assert!(
        mixed
            .stderr
            .contains("every variant's payload must be of one type (or none have one)"),
        "{}",
        mixed.stderr
    );
    assert_eq!(env.run(&["flag", "rule", "list", "f"]).expect(0).stdout, "");
    // Usage errors are clap's, exit 2 too.
    env.run(&["flag", "segment", "set", "s"]).expect(2);
    env.run(&["flag", "variant", "set", "f"]).expect(2);
    env.run(&["flag", "variant", "set", "f", "a=1", "--none"])
        .expect(2);
    env.run(&["flag", "rule", "list", "ghost"]).expect(3);
}

#[test]
fn bad_targeting_input_on_a_local_file() {
    bad_targeting_input(&Env::local());
}

#[test]
fn bad_targeting_input_against_a_server() {
    bad_targeting_input(&Env::remote());
}
