//! [`OctoStoreProvider`]: an [OpenFeature](https://openfeature.dev) provider for the
//! `open-feature` crate, on any [`Api`]: an embedded `octostore_core::Session` or a remote
//! [`Client`](crate::Client), the same provider either way.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use open_feature::{EvaluationContext, OpenFeature};
//! use octostore_http::openfeature::OctoStoreProvider;
//!
//! let client = octostore_http::Client::new("https://octostore.example.com", "TOKEN")?;
//! OpenFeature::singleton_mut()
//!     .await
//!     .set_provider(OctoStoreProvider::new(Arc::new(client)))
//!     .await;
//! let flags = OpenFeature::singleton().await.create_client();
//! let context = EvaluationContext::default()
//!     .with_targeting_key("user-42")
//!     .with_custom_field("plan", "pro");
//! let on = flags
//!     .get_bool_value("new-checkout", Some(&context), None)
//!     .await
//!     .unwrap_or(false);
//! # Ok(()) }
//! ```
//!
//! # The context
//! The targeting key is the subject (an empty one counts as none); each custom field is a
//! property of that name: a string as is, a boolean, an integer or a float as a number (a
//! float must be finite), a date-time as its RFC 3339 text in UTC (what date constraints
//! parse; `currentTime` overrides the store's clock). A structure (an opaque `Any` in this
//! SDK), a field named `subject` (that is the targeting key) or a name or key out of the
//! store's bounds is `INVALID_CONTEXT`.
//!
//! # The answer
//! The flag's value must be of the type asked for, else `TYPE_MISMATCH`: a flag without
//! payloads answers a boolean (whether it is on); a string payload a string; a number payload
//! an integer (only if it is one, within `i64`) or a float (any number: an integer widens to a
//! float, as `serde_json`'s `as_f64` and the SDK's other number conversions do); a JSON object
//! payload a structure. The variant is the variant's name; the reason is the store's, except
//! `PREREQUISITE_FAILED`, which OpenFeature does not have, answered as `DISABLED`.
//!
//! A flag with payloads that is off has no value (the store leaves it to the caller's
//! default). This SDK's providers are not given the default, and the SDK has no reason for
//! "use the default", so that is an error, `GENERAL`, whose message says the flag is off and
//! why: the caller's `unwrap_or(default)` then applies, as for any error.
//!
//! Errors: an unknown flag (or a key that cannot name one) is `FLAG_NOT_FOUND`; a flag that
//! needs a subject (a rollout or a split between variants) and has none,
//! `TARGETING_KEY_MISSING`; an invalid context, `INVALID_CONTEXT`; anything else (an
//! unreachable server, a revoked token...), `GENERAL` with the store's message.
//!
//! # Blocking
//! [`Api`] is blocking (a store's transaction, or an HTTP request on reqwest's blocking
//! client, which must not run on an async worker), and the SDK's provider methods are async.
//! Each evaluation runs on tokio's blocking pool (`spawn_blocking`), which works on both of
//! tokio's schedulers; `block_in_place` would panic on the current-thread one (the default
//! of `#[tokio::test]`). Outside a tokio runtime (another executor) the evaluation runs
//! inline, blocking the polling thread.

use std::sync::Arc;

use octostore_core::{
    Api, Error, Evaluation, EvaluationContext, FlagName, Payload, PropertyName, PropertyValue,
    Reason, Resource, Subject,
};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode, EvaluationReason,
    EvaluationResult, StructValue, Value,
};

/// The provider's name in its metadata.
pub const PROVIDER_NAME: &str = "OctoStore";

/// An OpenFeature provider that evaluates each flag with [`Api::evaluate_flag_in`], as the
/// user the `Api` acts for (see the [module](self) for the mapping of contexts, values,
/// reasons and errors).
pub struct OctoStoreProvider {
    api: Arc<dyn Api + Send + Sync>,
    metadata: ProviderMetadata,
}

impl OctoStoreProvider {
    /// A provider on `api`: `Arc::new(session)` embedded, `Arc::new(client)` remote.
    pub fn new(api: Arc<dyn Api + Send + Sync>) -> Self {
        Self {
            api,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    /// The flag's evaluation for the context, on the blocking pool.
    async fn evaluate(
        &self,
        flag_key: &str,
        context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<(FlagName, Evaluation)> {
        let name = FlagName::parse(flag_key).map_err(|e| {
            error(
                EvaluationErrorCode::FlagNotFound,
                format!("no flag can be named {flag_key:?}: {e}"),
            )
        })?;
        let context = context_of(context)?;
        let api = Arc::clone(&self.api);
        let flag = name.clone();
        let run = move || api.evaluate_flag_in(&flag, &context);
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::spawn_blocking(run).await.map_err(|e| {
                general(format!("the evaluation of flag {name} did not finish: {e}"))
            })?,
            Err(_) => run(),
        };
        answer.map(|a| (name, a)).map_err(error_of)
    }

    /// The flag's answer as a `T`: `convert` takes the value, or gives it back when it is not
    /// a `T`, which is then a type mismatch.
    async fn resolve<T>(
        &self,
        flag_key: &str,
        context: &open_feature::EvaluationContext,
        wanted: &str,
        convert: impl FnOnce(Payload) -> Result<T, Payload>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let (name, answer) = self.evaluate(flag_key, context).await?;
        let reason = reason_of(answer.reason);
        let Some(payload) = answer.value else {
            return Err(general(format!(
                "flag {name} has no value for this context: it is off ({}) and its variants \
                 carry payloads, so the caller's default applies",
                answer.reason.name()
            )));
        };
        let value = convert(payload).map_err(|payload| {
            error(
                EvaluationErrorCode::TypeMismatch,
                format!("flag {name} answers {}, not {wanted}", describe(&payload)),
            )
        })?;
        Ok(ResolutionDetails {
            value,
            variant: answer.variant.map(|v| v.as_str().to_owned()),
            reason: Some(reason),
            flag_metadata: None,
        })
    }
}

impl std::fmt::Debug for OctoStoreProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OctoStoreProvider")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

#[open_feature::async_trait]
impl FeatureProvider for OctoStoreProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, evaluation_context, "a boolean", |p| match p {
            Payload::Boolean(b) => Ok(b),
            other => Err(other),
        })
        .await
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, evaluation_context, "an integer", |p| match p {
            Payload::Number(n) => n.as_i64().ok_or(Payload::Number(n)),
            other => Err(other),
        })
        .await
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, evaluation_context, "a number", |p| match p {
            // Every JSON number the store keeps has an `f64` (an integer widens).
            Payload::Number(n) => n.as_f64().ok_or(Payload::Number(n)),
            other => Err(other),
        })
        .await
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, "a string", |p| match p {
            Payload::String(s) => Ok(s),
            other => Err(other),
        })
        .await
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, evaluation_context, "a JSON object", |p| match p {
            // The SDK's own conversion; it refuses a null anywhere in the object.
            Payload::Json(json) if json.is_object() => match Value::try_from(&json) {
                Ok(Value::Struct(s)) => Ok(s),
                _ => Err(Payload::Json(json)),
            },
            other => Err(other),
        })
        .await
    }
}

/// The store's context for the SDK's.
fn context_of(context: &open_feature::EvaluationContext) -> EvaluationResult<EvaluationContext> {
    let invalid = |reason: String| error(EvaluationErrorCode::InvalidContext, reason);
    let mut ours = EvaluationContext::default();
    match context.targeting_key.as_deref() {
        None | Some("") => {}
        Some(key) => {
            let subject = Subject::parse(key)
                .map_err(|e| invalid(format!("the targeting key {key:?}: {e}")))?;
            ours.subject = Some(subject);
        }
    }
    // By name, so that of several bad fields the same one is reported each time.
    let mut fields: Vec<_> = context.custom_fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in fields {
        let name =
            PropertyName::parse(key).map_err(|e| invalid(format!("the field {key:?}: {e}")))?;
        let value = match value {
            EvaluationContextFieldValue::Bool(b) => PropertyValue::Boolean(*b),
            EvaluationContextFieldValue::Int(i) => PropertyValue::Number(*i as f64),
            EvaluationContextFieldValue::Float(f) if f.is_finite() => PropertyValue::Number(*f),
            EvaluationContextFieldValue::Float(f) => {
                return Err(invalid(format!(
                    "the field {key:?}: {f} is not a finite number"
                )))
            }
            EvaluationContextFieldValue::String(s) => PropertyValue::String(s.clone()),
            EvaluationContextFieldValue::DateTime(t) => {
                let utc = chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
                    .ok_or_else(|| invalid(format!("the field {key:?}: {t} is out of range")))?;
                PropertyValue::String(utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            EvaluationContextFieldValue::Struct(_) => {
                return Err(invalid(format!(
                    "the field {key:?} is a structure: a property is a string, a boolean, a \
                     number or a date-time"
                )))
            }
        };
        // Refuses `subject`: the subject is the targeting key.
        ours = ours.with(name, value).map_err(error_of)?;
    }
    Ok(ours)
}

/// OpenFeature's reason for the store's.
fn reason_of(reason: Reason) -> EvaluationReason {
    match reason.in_open_feature() {
        Reason::Static => EvaluationReason::Static,
        Reason::Split => EvaluationReason::Split,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Default => EvaluationReason::Default,
        Reason::Disabled | Reason::PrerequisiteFailed => EvaluationReason::Disabled,
    }
}

/// OpenFeature's error for the store's.
fn error_of(e: Error) -> EvaluationError {
    let code = match &e {
        Error::NotFound {
            what: Resource::Flag,
            ..
        } => EvaluationErrorCode::FlagNotFound,
        Error::SubjectRequired { .. } => EvaluationErrorCode::TargetingKeyMissing,
        Error::Invalid { .. } => EvaluationErrorCode::InvalidContext,
        _ => return general(e.to_string()),
    };
    error(code, e.to_string())
}

/// A `GENERAL` error: the SDK's code carries the message, and so does the error.
fn general(message: String) -> EvaluationError {
    error(EvaluationErrorCode::General(message.clone()), message)
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

/// A payload as a type mismatch names it.
fn describe(payload: &Payload) -> String {
    match payload {
        Payload::Boolean(_) => "a boolean (it has no payloads)".into(),
        Payload::String(_) => "a string".into(),
        Payload::Number(n) if n.is_i64() => "an integer".into(),
        Payload::Number(n) if n.is_u64() => format!("an integer past i64 ({n})"),
        Payload::Number(_) => "a number with a fraction".into(),
        Payload::Json(v) if v.is_object() => {
            "a JSON object that holds a null or a number past i64".into()
        }
        Payload::Json(_) => "JSON that is not an object".into(),
    }
}
