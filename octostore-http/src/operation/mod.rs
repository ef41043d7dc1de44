//! Every operation of the API, each written once, in `operations!`: its `operationId`, method
//! and path template, whether it needs a token, and whether it reads a body. The server's dispatcher, `Allow`, the metrics labels, the client's URLs and the
//! tests' lists of operations all come from [`Operation`]; the served `openapi.yaml` is checked
//! against it.

pub(crate) mod fields;
pub mod requests;

use std::sync::LazyLock;

use http::Method;

/// Whether an operation reads a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// None: a body sent is not read.
    None,
    /// A JSON object, read only as far as the token earns (past 4 KiB, only once the token is
    /// known good) and up to the server's body cap.
    Json,
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token is asked for.
    Public,
    /// The holder of a bearer token, acting as its user.
    Token,
}

macro_rules! operations {
    ($(
        $(#[doc = $doc:literal])*
        $op:ident = $id:literal: $method:ident $template:literal, $access:ident, $body:ident;
    )*) => {
        /// An operation of the API: one method on one path template.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[doc = $doc])* $op,)*
        }

        impl Operation {
            /// Every operation, in the table's order.
            pub const ALL: &'static [Operation] = &[$(Operation::$op),*];

            /// Its `operationId` in `openapi.yaml`.
            pub fn id(self) -> &'static str {
                match self { $(Operation::$op => $id,)* }
            }

            /// Its HTTP method.
            pub fn method(self) -> Method {
                match self { $(Operation::$op => Method::$method,)* }
            }

            /// Its path template, as `openapi.yaml` writes it (`/locks/{name}/acquire`); also
            /// its `route` label in the metrics.
            pub fn template(self) -> &'static str {
                match self { $(Operation::$op => $template,)* }
            }

            /// Who may call it.
            pub fn access(self) -> Access {
                match self { $(Operation::$op => Access::$access,)* }
            }

            /// Whether it reads a request body.
            pub fn body(self) -> Body {
                match self { $(Operation::$op => Body::$body,)* }
            }
        }
    };
}

operations! {
    /// `GET /health`: the server is up.
    Health = "health": GET "/health", Public, None;
    /// `GET /ready`: the server reaches its store (a read through the operations' runner).
    Ready = "ready": GET "/ready", Public, None;
    /// `GET /metrics`: Prometheus text.
    Metrics = "metrics": GET "/metrics", Public, None;
    /// `GET /openapi.yaml`: the contract this server implements.
    Openapi = "openapi": GET "/openapi.yaml", Public, None;
    /// `GET /auth/github`: begin signing in with GitHub.
    GithubLogin = "githubLogin": GET "/auth/github", Public, None;
    /// `GET /auth/github/callback`: finish signing in; answers a token.
    GithubCallback = "githubCallback": GET "/auth/github/callback", Public, None;
    /// `POST /auth/token/rotate`: replace the caller's token.
    RotateToken = "rotateToken": POST "/auth/token/rotate", Token, None;
    /// `GET /locks`: the caller's held locks.
    ListLocks = "listLocks": GET "/locks", Token, None;
    /// `GET /locks/{name}`: who holds a lock.
    GetLock = "getLock": GET "/locks/{name}", Token, None;
    /// `POST /locks/{name}/acquire`: take a lease with a fencing token.
    AcquireLock = "acquireLock": POST "/locks/{name}/acquire", Token, Json;
    /// `POST /locks/{name}/release`: end a lease.
    ReleaseLock = "releaseLock": POST "/locks/{name}/release", Token, Json;
    /// `POST /locks/{name}/renew`: extend a lease.
    RenewLock = "renewLock": POST "/locks/{name}/renew", Token, Json;
    /// `GET /limits`: the caller's rate limits.
    ListLimits = "listLimits": GET "/limits", Token, None;
    /// `GET /limits/{name}`: a limit's state, without counting a request.
    GetLimit = "getLimit": GET "/limits/{name}", Token, None;
    /// `DELETE /limits/{name}`: forget a limit's requests.
    ResetLimit = "resetLimit": DELETE "/limits/{name}", Token, None;
    /// `POST /limits/{name}/check`: count a request if the window allows it.
    CheckLimit = "checkLimit": POST "/limits/{name}/check", Token, Json;
    /// `GET /flags`: the caller's flags.
    ListFlags = "listFlags": GET "/flags", Token, None;
    /// `PUT /flags/{name}`: create or replace a flag.
    SetFlag = "setFlag": PUT "/flags/{name}", Token, Json;
    /// `GET /flags/{name}?subject=`: whether a flag is on (for a subject).
    EvaluateFlag = "evaluateFlag": GET "/flags/{name}", Token, None;
    /// `DELETE /flags/{name}`: delete a flag.
    DeleteFlag = "deleteFlag": DELETE "/flags/{name}", Token, None;
    /// `PATCH /flags/{name}`: turn a flag on or off, keeping its percentage.
    PatchFlag = "patchFlag": PATCH "/flags/{name}", Token, Json;
    /// `GET /flags/{name}/targeting`: a flag with its rules, variants and prerequisites.
    GetFlagTargeting = "getFlagTargeting": GET "/flags/{name}/targeting", Token, None;
    /// `POST /flags/{name}/rules`: add a rule.
    AddFlagRule = "addFlagRule": POST "/flags/{name}/rules", Token, Json;
    /// `DELETE /flags/{name}/rules?index=`: remove a rule.
    RemoveFlagRule = "removeFlagRule": DELETE "/flags/{name}/rules", Token, None;
    /// `PUT /flags/{name}/variants`: set a flag's variants.
    SetFlagVariants = "setFlagVariants": PUT "/flags/{name}/variants", Token, Json;
    /// `PUT /flags/{name}/prerequisites`: set the flags a flag requires.
    SetFlagPrerequisites = "setFlagPrerequisites": PUT "/flags/{name}/prerequisites", Token, Json;
    /// `POST /flags/{name}/evaluate`: a flag's value, variant and reason for a context.
    EvaluateFlagInContext = "evaluateFlagInContext": POST "/flags/{name}/evaluate", Token, Json;
    /// `GET /segments`: the caller's segments.
    ListSegments = "listSegments": GET "/segments", Token, None;
    /// `GET /segments/{name}`: a segment.
    GetSegment = "getSegment": GET "/segments/{name}", Token, None;
    /// `PUT /segments/{name}`: create or replace a segment.
    SetSegment = "setSegment": PUT "/segments/{name}", Token, Json;
    /// `DELETE /segments/{name}`: delete a segment no rule uses.
    DeleteSegment = "deleteSegment": DELETE "/segments/{name}", Token, None;
    /// `POST /ofrep/v1/evaluate/flags/{key}`: OpenFeature's remote evaluation of one flag.
    OfrepEvaluateFlag = "ofrepEvaluateFlag": POST "/ofrep/v1/evaluate/flags/{key}", Token, Json;
    /// `POST /ofrep/v1/evaluate/flags`: OpenFeature's remote evaluation of every flag.
    OfrepEvaluateFlags = "ofrepEvaluateFlags": POST "/ofrep/v1/evaluate/flags", Token, Json;
    /// `GET /config?deleted=`: the caller's config keys (or deleted keys).
    ListConfigs = "listConfigs": GET "/config", Token, None;
    /// `PUT /config/{key}`: store a new version of a value.
    PutConfig = "putConfig": PUT "/config/{key}", Token, Json;
    /// `GET /config/{key}?version=`: the latest (or a given) version.
    GetConfig = "getConfig": GET "/config/{key}", Token, None;
    /// `DELETE /config/{key}?purge=`: delete a key and its history (kept for an undelete
    /// unless purged).
    DeleteConfig = "deleteConfig": DELETE "/config/{key}", Token, None;
    /// `GET /config/{key}/history?after=&limit=`: a page of versions, oldest first.
    GetConfigHistory = "getConfigHistory": GET "/config/{key}/history", Token, None;
    /// `POST /config/{key}/rollback`: put a kept version again, as the next.
    RollbackConfig = "rollbackConfig": POST "/config/{key}/rollback", Token, Json;
    /// `GET /config/{key}/diff?from=&to=`: the JSON Patch between two kept versions.
    DiffConfig = "diffConfig": GET "/config/{key}/diff", Token, None;
    /// `POST /config/{key}/undelete`: bring back a deleted key.
    UndeleteConfig = "undeleteConfig": POST "/config/{key}/undelete", Token, None;
    /// `PUT /config/{key}/schema`: set a key's JSON Schema.
    PutConfigSchema = "putConfigSchema": PUT "/config/{key}/schema", Token, Json;
    /// `GET /config/{key}/schema`: a key's JSON Schema.
    GetConfigSchema = "getConfigSchema": GET "/config/{key}/schema", Token, None;
    /// `DELETE /config/{key}/schema`: stop checking a key's puts.
    DeleteConfigSchema = "deleteConfigSchema": DELETE "/config/{key}/schema", Token, None;
    /// `GET /events?since=&kind=&prefix=&limit=`: a page of the change log.
    ListEvents = "listEvents": GET "/events", Token, None;
}

/// A segment of a path template.
#[derive(Clone, Copy, Debug)]
enum Segment {
    /// Itself.
    Literal(&'static str),
    /// Any non-empty segment: a name, called this (`name`, `key`).
    Name(&'static str),
}

/// A template cut into its segments, and what its path answers.
struct Pattern {
    segments: Vec<Segment>,
    /// `Allow`: every method of the template's operations, in the table's order.
    allow: &'static str,
    /// The index in [`Operation::ALL`] of the template's first operation.
    route: usize,
}

/// Each operation's pattern, in [`Operation::ALL`]'s order.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let all = Operation::ALL;
    all.iter()
        .map(|op| {
            let segments = op.template()[1..]
                .split('/')
                .map(|segment| match segment.strip_prefix('{') {
                    Some(name) => Segment::Name(name.trim_end_matches('}')),
                    None => Segment::Literal(segment),
                })
                .collect();
            let same_path = || all.iter().filter(|other| other.template() == op.template());
            let allow: Vec<_> = same_path()
                .map(|other| other.method().to_string())
                .collect();
            Pattern {
                segments,
                allow: Box::leak(allow.join(", ").into_boxed_str()),
                route: same_path()
                    .next()
                    .and_then(|first| all.iter().position(|op| op == first))
                    .unwrap_or(0),
            }
        })
        .collect()
});

/// How many routes (path templates) there are at most: every [`Matched::route`] is below.
pub const ROUTES: usize = Operation::ALL.len();

/// A request's path as the table matched it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The operation of the request's method, or `None` if the path has none (405).
    pub operation: Option<Operation>,
    /// The path template matched, for metrics and logs.
    pub template: &'static str,
    /// A dense number of the template, below [`ROUTES`], for metrics.
    pub route: usize,
    /// Every method the path answers (`PUT, GET, DELETE`), for 405's `Allow`.
    pub allow: &'static str,
    /// The name in the path as sent (percent-encoded), and what the template calls it.
    pub name: Option<(&'a str, &'static str)>,
}

impl Operation {
    /// What `method` on `path` (without its query string) asks for, or `None` if no template
    /// matches (404). A path matches a template segment by segment, after one leading `/` and
    /// at most one trailing `/`; a name is any non-empty segment.
    pub fn find<'a>(method: &Method, path: &'a str) -> Option<Matched<'a>> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut segments: [&str; 5] = [""; 5];
        let mut count = 0;
        for segment in path.split('/') {
            *segments.get_mut(count)? = segment;
            count += 1;
        }
        let segments = &segments[..count];
        let mut found = None;
        for (op, pattern) in Operation::ALL.iter().zip(PATTERNS.iter()) {
            let Some(name) = pattern.matches(segments) else {
                continue;
            };
            let matched = Matched {
                operation: (op.method() == method).then_some(*op),
                template: op.template(),
                route: pattern.route,
                allow: pattern.allow,
                name,
            };
            if matched.operation.is_some() {
                return Some(matched);
            }
            found.get_or_insert(matched);
        }
        found
    }

    /// What its template calls the name in its path (`name`, `key`), if it has one.
    pub fn name_field(self) -> Option<&'static str> {
        let template = self.template();
        let open = template.find('{')?;
        let close = template.find('}')?;
        Some(&template[open + 1..close])
    }

    /// Its path with `name` (already escaped as one segment) in the place of the template's
    /// name; a template without one ignores `name`.
    pub fn path_with(self, name: &str) -> String {
        let template = self.template();
        match (template.find('{'), template.find('}')) {
            (Some(open), Some(close)) => {
                format!("{}{name}{}", &template[..open], &template[close + 1..])
            }
            _ => template.to_owned(),
        }
    }
}

impl Pattern {
    /// Whether `segments` match, and the name among them if the template has one.
    fn matches<'a>(&self, segments: &[&'a str]) -> Option<Option<(&'a str, &'static str)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut name = None;
        for (segment, pattern) in segments.iter().zip(&self.segments) {
            match pattern {
                Segment::Literal(literal) if segment == literal => {}
                Segment::Name(called) if !segment.is_empty() => name = Some((*segment, *called)),
                _ => return None,
            }
        }
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates() {
        let cases = [
            ("/health", Some("/health")),
            ("/health/", Some("/health")),
            ("//health", None),
            ("/health//", None),
            ("", None),
            ("/", None),
            ("/locks", Some("/locks")),
            ("/locks/", Some("/locks")),
            ("/locks//", None),
            ("/locks/a", Some("/locks/{name}")),
            ("/locks//acquire", None),
            ("/locks/a/acquire", Some("/locks/{name}/acquire")),
            ("/locks/a/acquire/", Some("/locks/{name}/acquire")),
            ("/locks/a/b", None),
            ("/auth/github", Some("/auth/github")),
            ("/auth/github/callback", Some("/auth/github/callback")),
            ("/auth/x/callback", None),
            ("/config/k/history", Some("/config/{key}/history")),
            ("/config/k/history/x", None),
            ("/nope/x/y/z", None),
        ];
        for (path, want) in cases {
            let found = Operation::find(&Method::GET, path);
            assert_eq!(found.map(|m| m.template), want, "{path}");
        }
        // Each template is the one its own paths match, with its own method.
        for op in Operation::ALL {
            let path = op.path_with("n");
            let found = Operation::find(&op.method(), &path).unwrap();
            assert_eq!(found.operation, Some(*op), "{path}");
            assert_eq!(found.template, op.template());
            let name = op.template().contains('{').then_some("n");
            assert_eq!(found.name.map(|(name, _)| name), name);
        }
    }

    #[test]
    fn a_path_answers_the_methods_of_its_operations() {
        let put = Operation::find(&Method::PUT, "/flags/f").unwrap();
        assert_eq!(put.operation, Some(Operation::SetFlag));
        assert_eq!(put.allow, "PUT, GET, DELETE, PATCH");
        assert_eq!(put.name, Some(("f", "name")));
        let patch = Operation::find(&Method::PATCH, "/config/k").unwrap();
        assert_eq!(patch.operation, None);
        assert_eq!(patch.allow, "PUT, GET, DELETE");
        assert_eq!(patch.name, Some(("k", "key")));
        let head = Operation::find(&Method::HEAD, "/limits/l").unwrap();
        assert_eq!((head.operation, head.allow), (None, "GET, DELETE"));
        // One route a template, its number below ROUTES and the same for each method.
        let get = Operation::find(&Method::GET, "/flags/f").unwrap();
        assert_eq!(get.route, put.route);
        assert_ne!(
            get.route,
            Operation::find(&Method::GET, "/flags").unwrap().route
        );
        assert!(Operation::ALL.iter().all(|op| {
            Operation::find(&op.method(), &op.path_with("n"))
                .unwrap()
                .route
                < ROUTES
        }));
    }

    #[test]
    fn every_operation_is_one_method_on_one_template() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            for other in &Operation::ALL[i + 1..] {
                assert!(
                    (op.method(), op.template()) != (other.method(), other.template()),
                    "{op:?} and {other:?}"
                );
                assert_ne!(op.id(), other.id());
            }
        }
    }
}
