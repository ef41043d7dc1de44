//! The OpenFeature provider through the SDK's own client: embedded (a `Session` of an
//! in-memory store, on tokio's current-thread scheduler) and remote (the HTTP `Client`
//! against a server on 127.0.0.1, on the multi-thread one), the same flags and the same
//! checks.

#[cfg(feature = "server")]
#[path = "http/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;

use octostore_core::{
    Api, Constraint, FlagName, Login, Operator, Payload, Percentage, Prerequisite, PropertyName,
    Rule, Store, TargetingChange, Variant, VariantName,
};
use octostore_http::openfeature::{OctoStoreProvider, PROVIDER_NAME};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode, EvaluationReason,
    OpenFeature, StructValue, Value,
};
use serde_json::json;

fn flag(name: &str) -> FlagName {
    FlagName::parse(name).unwrap()
}

fn rule(property: &str, operator: Operator, values: &[&str]) -> Rule {
    let property = PropertyName::parse(property).unwrap();
    let values = values.iter().map(|v| v.to_string()).collect();
    let constraint = Constraint::new(property, operator, values, false, false).unwrap();
    Rule::new(vec![constraint], vec![], None).unwrap()
}

fn variant(name: &str, weight: u32, payload: Payload) -> Variant {
    Variant {
        name: VariantName::parse(name).unwrap(),
        weight,
        payload: Some(payload),
    }
}

fn target(api: &dyn Api, name: &str, change: TargetingChange) {
    api.change_flag_targeting(&flag(name), change).unwrap();
}

fn add_rule(api: &dyn Api, name: &str, rule: Rule) {
    target(api, name, TargetingChange::AddRule { rule, at: None });
}

/// The flags every test evaluates, made through `api`.
fn define_flags(api: &dyn Api) {
    // A boolean flag with rules: pro plans, 10 seats or more, or signed up before 2024.
    api.set_flag(&flag("beta"), true, None).unwrap();
    add_rule(api, "beta", rule("plan", Operator::In, &["pro"]));
    add_rule(api, "beta", rule("seats", Operator::NumGte, &["10"]));
    add_rule(
        api,
        "beta",
        rule("signup", Operator::DateBefore, &["2024-01-01T00:00:00Z"]),
    );
    // A string for pro plans, none (the caller's default) for the others.
    api.set_flag(&flag("banner"), true, None).unwrap();
    add_rule(api, "banner", rule("plan", Operator::In, &["pro"]));
    let blue = variant("blue", 1, Payload::String("sky blue".into()));
    target(api, "banner", TargetingChange::SetVariants(vec![blue]));
    // A split between two strings, by the subject.
    api.set_flag(&flag("split"), true, None).unwrap();
    let halves = vec![
        variant("left", 50, Payload::String("left".into())),
        variant("right", 50, Payload::String("right".into())),
    ];
    target(api, "split", TargetingChange::SetVariants(halves));
    // Numbers and JSON, for everyone.
    api.set_flag(&flag("limit"), true, None).unwrap();
    let ten = variant("ten", 1, Payload::Number(10.into()));
    target(api, "limit", TargetingChange::SetVariants(vec![ten]));
    api.set_flag(&flag("ratio"), true, None).unwrap();
    let quarter = serde_json::Number::from_f64(0.25).unwrap();
    let quarter = variant("quarter", 1, Payload::Number(quarter));
    target(api, "ratio", TargetingChange::SetVariants(vec![quarter]));
    api.set_flag(&flag("theme"), true, None).unwrap();
    let red = json!({"color": "red", "size": 3, "scale": 1.5, "tags": ["a", "b"]});
    let red = variant("red", 1, Payload::Json(red));
    target(api, "theme", TargetingChange::SetVariants(vec![red]));
    api.set_flag(&flag("scalar-json"), true, None).unwrap();
    let list = variant("list", 1, Payload::Json(json!([1, 2])));
    target(api, "scalar-json", TargetingChange::SetVariants(vec![list]));
    // Off for everyone, and a flag that requires it.
    api.set_flag(&flag("off"), false, None).unwrap();
    api.set_flag(&flag("child"), true, None).unwrap();
    let parent = Prerequisite {
        flag: flag("off"),
        variants: vec![],
    };
    target(
        api,
        "child",
        TargetingChange::SetPrerequisites(vec![parent]),
    );
    // A rollout to half the subjects: it needs one.
    let half = Some(Percentage::new(50).unwrap());
    api.set_flag(&flag("rollout"), true, half).unwrap();
}

/// The SDK's client, on a provider of `api`; an instance of the SDK's own, not the global
/// singleton, so that tests run side by side.
async fn client_on(api: Arc<dyn Api + Send + Sync>) -> open_feature::Client {
    let mut sdk = OpenFeature::default();
    sdk.set_provider(OctoStoreProvider::new(api)).await;
    assert_eq!(sdk.provider_metadata().await.name, PROVIDER_NAME);
    sdk.create_client()
}

fn user(plan: &str) -> EvaluationContext {
    EvaluationContext::default()
        .with_targeting_key("user-42")
        .with_custom_field("plan", plan)
}

fn date(year: i32) -> time::OffsetDateTime {
    time::Date::from_calendar_date(year, time::Month::June, 1)
        .unwrap()
        .with_hms(12, 0, 0)
        .unwrap()
        .assume_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
}

/// Every check, through the SDK's client.
async fn check_all(client: &open_feature::Client) {
    check_booleans(client).await;
    check_strings(client).await;
    check_numbers(client).await;
    check_structs(client).await;
    check_type_mismatches(client).await;
    check_errors(client).await;
    check_contexts(client).await;
}

async fn check_booleans(client: &open_feature::Client) {
    let pro = client
        .get_bool_details("beta", Some(&user("pro")), None)
        .await
        .unwrap();
    assert!(pro.value);
    assert_eq!(pro.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(pro.variant, None);
    let free = client
        .get_bool_details("beta", Some(&user("free")), None)
        .await
        .unwrap();
    assert!(!free.value);
    assert_eq!(free.reason, Some(EvaluationReason::Default));
    assert!(client
        .get_bool_value("beta", Some(&user("free")), None)
        .await
        .is_ok_and(|on| !on));

    let off = client
        .get_bool_details("off", Some(&user("pro")), None)
        .await
        .unwrap();
    assert_eq!(
        (off.value, off.reason),
        (false, Some(EvaluationReason::Disabled))
    );
    // PREREQUISITE_FAILED is not OpenFeature's: the parent's kill switch disables the child.
    let child = client
        .get_bool_details("child", Some(&user("pro")), None)
        .await
        .unwrap();
    assert_eq!(
        (child.value, child.reason),
        (false, Some(EvaluationReason::Disabled))
    );
}

async fn check_strings(client: &open_feature::Client) {
    let pro = client
        .get_string_details("banner", Some(&user("pro")), None)
        .await
        .unwrap();
    assert_eq!(pro.value, "sky blue");
    assert_eq!(pro.variant.as_deref(), Some("blue"));
    assert_eq!(pro.reason, Some(EvaluationReason::TargetingMatch));
    // Off with payloads: no value, an error, and so the caller's default.
    let free = client
        .get_string_value("banner", Some(&user("free")), None)
        .await;
    let error = free.clone().unwrap_err();
    assert!(matches!(error.code, EvaluationErrorCode::General(_)));
    assert!(error.message.unwrap().contains("off (DEFAULT)"));
    assert_eq!(free.unwrap_or_else(|_| "plain".into()), "plain");

    let split = client
        .get_string_details("split", Some(&user("free")), None)
        .await
        .unwrap();
    assert!(["left", "right"].contains(&split.value.as_str()));
    assert_eq!(split.variant.as_deref(), Some(split.value.as_str()));
    assert_eq!(split.reason, Some(EvaluationReason::Split));
    // The same subject, the same side; across subjects, both sides.
    let sides: std::collections::BTreeSet<String> = split_answers(client, "split").await;
    assert_eq!(sides.len(), 2, "{sides:?}");
}

/// The split's answers for 40 subjects.
async fn split_answers(
    client: &open_feature::Client,
    name: &str,
) -> std::collections::BTreeSet<String> {
    let mut answers = std::collections::BTreeSet::new();
    for i in 0..40 {
        let context = EvaluationContext::default().with_targeting_key(format!("user-{i}"));
        let first = client
            .get_string_value(name, Some(&context), None)
            .await
            .unwrap();
        let again = client
            .get_string_value(name, Some(&context), None)
            .await
            .unwrap();
        assert_eq!(first, again);
        answers.insert(first);
    }
    answers
}

async fn check_numbers(client: &open_feature::Client) {
    let limit = client
        .get_int_details("limit", Some(&user("free")), None)
        .await
        .unwrap();
    assert_eq!(limit.value, 10);
    assert_eq!(limit.variant.as_deref(), Some("ten"));
    assert_eq!(limit.reason, Some(EvaluationReason::Static));
    // An integer widens to a float.
    let limit = client.get_float_value("limit", None, None).await.unwrap();
    assert_eq!(limit, 10.0);
    let ratio = client
        .get_float_details("ratio", Some(&user("free")), None)
        .await
        .unwrap();
    assert_eq!(ratio.value, 0.25);
    assert_eq!(ratio.variant.as_deref(), Some("quarter"));
    // A fraction is not an integer.
    let ratio = client.get_int_value("ratio", None, None).await.unwrap_err();
    assert_eq!(ratio.code, EvaluationErrorCode::TypeMismatch);
}

async fn check_structs(client: &open_feature::Client) {
    let theme = client
        .get_struct_details::<StructValue>("theme", Some(&user("free")), None)
        .await
        .unwrap();
    let expected = StructValue::default()
        .with_field("color", "red")
        .with_field("size", 3)
        .with_field("scale", 1.5)
        .with_field("tags", Value::Array(vec!["a".into(), "b".into()]));
    assert_eq!(theme.value, expected);
    assert_eq!(theme.variant.as_deref(), Some("red"));
    assert_eq!(theme.reason, Some(EvaluationReason::Static));
    // JSON that is not an object is no structure.
    let list = client
        .get_struct_value::<StructValue>("scalar-json", None, None)
        .await
        .unwrap_err();
    assert_eq!(list.code, EvaluationErrorCode::TypeMismatch);
}

async fn check_type_mismatches(client: &open_feature::Client) {
    let pro = Some(user("pro"));
    let pro = pro.as_ref();
    let mismatches = [
        client
            .get_string_value("beta", pro, None)
            .await
            .unwrap_err(),
        client.get_int_value("beta", pro, None).await.unwrap_err(),
        client
            .get_bool_value("banner", pro, None)
            .await
            .unwrap_err(),
        client
            .get_float_value("banner", pro, None)
            .await
            .unwrap_err(),
        client
            .get_struct_value::<StructValue>("banner", pro, None)
            .await
            .unwrap_err(),
        client.get_bool_value("limit", pro, None).await.unwrap_err(),
        client
            .get_string_value("theme", pro, None)
            .await
            .unwrap_err(),
    ];
    for error in mismatches {
        assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "{error:?}");
        assert!(error.message.unwrap().contains(", not "));
    }
}

async fn check_errors(client: &open_feature::Client) {
    for name in ["missing", "not a flag name!"] {
        let error = client
            .get_bool_value(name, Some(&user("pro")), None)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::FlagNotFound, "{error:?}");
    }
    // A split between variants and a rollout need a subject; an empty key is none.
    for key in [None, Some("")] {
        let mut context = EvaluationContext::default().with_custom_field("plan", "pro");
        context.targeting_key = key.map(str::to_owned);
        let split = client
            .get_string_value("split", Some(&context), None)
            .await
            .unwrap_err();
        assert_eq!(split.code, EvaluationErrorCode::TargetingKeyMissing);
        let rollout = client
            .get_bool_value("rollout", Some(&context), None)
            .await
            .unwrap_err();
        assert_eq!(rollout.code, EvaluationErrorCode::TargetingKeyMissing);
    }
    // A flag without a rollout needs none.
    let anonymous = EvaluationContext::default().with_custom_field("plan", "pro");
    assert!(client
        .get_bool_value("beta", Some(&anonymous), None)
        .await
        .unwrap());
}

async fn check_contexts(client: &open_feature::Client) {
    let seats = |n: EvaluationContextFieldValue| user("free").with_custom_field("seats", n);
    for (n, on) in [
        (EvaluationContextFieldValue::Int(12), true),
        (EvaluationContextFieldValue::Int(9), false),
        (EvaluationContextFieldValue::Float(10.5), true),
        (EvaluationContextFieldValue::Float(9.5), false),
    ] {
        let context = seats(n.clone());
        let answer = client
            .get_bool_value("beta", Some(&context), None)
            .await
            .unwrap();
        assert_eq!(answer, on, "{n:?}");
    }
    // A date-time is its RFC 3339 text (10:00 UTC on 2023-06-01 is before 2024).
    for (year, on) in [(2023, true), (2024, false)] {
        let context = user("free").with_custom_field("signup", date(year));
        let answer = client
            .get_bool_details("beta", Some(&context), None)
            .await
            .unwrap();
        assert_eq!(answer.value, on, "{year}");
    }
    let invalid = [
        user("free").with_custom_field("subject", "someone-else"),
        user("free").with_custom_field("nested", EvaluationContextFieldValue::new_struct(7u8)),
        user("free").with_custom_field("seats", f64::NAN),
        user("free").with_custom_field("bad name!", "x"),
        EvaluationContext::default().with_targeting_key("bell\u{7}"),
    ];
    for context in invalid {
        let error = client
            .get_bool_value("beta", Some(&context), None)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::InvalidContext, "{error:?}");
    }
}

#[tokio::test]
async fn embedded_session() {
    let store = Store::in_memory();
    let alice = store.create_user(&Login::parse("alice").unwrap()).unwrap();
    let session = store.session(alice);
    define_flags(&session);
    let client = client_on(Arc::new(session)).await;
    check_all(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_session_on_the_multi_thread_scheduler() {
    let store = Store::in_memory();
    let alice = store.create_user(&Login::parse("alice").unwrap()).unwrap();
    let session = store.session(alice);
    define_flags(&session);
    let client = client_on(Arc::new(session)).await;
    check_booleans(&client).await;
    check_errors(&client).await;
}

/// Outside a tokio runtime, the provider evaluates inline.
#[test]
fn outside_a_tokio_runtime() {
    use open_feature::provider::FeatureProvider;
    let store = Store::in_memory();
    let alice = store.create_user(&Login::parse("alice").unwrap()).unwrap();
    let session = store.session(alice);
    define_flags(&session);
    let provider = OctoStoreProvider::new(Arc::new(session));
    let answer = poll_once(provider.resolve_int_value("limit", &EvaluationContext::default()));
    assert_eq!(answer.unwrap().value, 10);
}

/// Polls a future that is ready at once, without a runtime.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the evaluation waited"),
    }
}

/// The same flags and checks through the HTTP client, against a server. The client is made
/// and dropped outside the runtime (reqwest's blocking client must not be dropped in one).
#[cfg(feature = "server")]
#[test]
fn remote_client() {
    let server = support::Server::start();
    let client = octostore_http::Client::new(server.url(""), server.token("alice")).unwrap();
    define_flags(&client);
    let api: Arc<dyn Api + Send + Sync> = Arc::new(client);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let flags = client_on(Arc::clone(&api)).await;
        check_all(&flags).await;
    });
    drop(runtime);
    drop(api);
}
