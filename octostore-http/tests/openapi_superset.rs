//! The served contract (`openapi.yaml`, answered at `GET /openapi.yaml`) is the seed contract
//! (`seed-openapi.yaml`, a verbatim copy of `shared/openapi.yaml`) plus documented extensions
//! only: nothing of the seed is removed or changed in type.
//!
//! What "superset" means here, operation by operation (`$ref`s followed within each document):
//! - every seed path and method exists, with the same security (public stays public);
//! - every seed parameter (by name and location) exists, with the same `required` and schema;
//! - the request body keeps its `required`, its media types, the same required fields (a
//!   client of the seed must not be refused for leaving out a new one), and every property
//!   its type;
//! - every seed response status exists with the seed's headers and media types, and for each
//!   schema the seed's required fields and each property's type.
//!
//! A schema keeps its `type`, `format`, `nullable`, `enum`, `items` and `oneOf`/`anyOf`/`allOf`
//! branches, and never forbids additional properties the seed allowed. Bounds, patterns,
//! new optional properties, new parameters, responses and paths are extensions, and allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use octostore_http::operation::{Access, Operation};
use serde_json::{Map, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn load(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    // JSON values give JSON pointers, which is what a `$ref` is.
    serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn seed() -> Value {
    load("seed-openapi.yaml")
}

fn served() -> Value {
    load("openapi.yaml")
}

/// One document, whose local `$ref`s can be followed.
#[derive(Clone, Copy)]
struct Doc<'a> {
    root: &'a Value,
    name: &'static str,
}

impl<'a> Doc<'a> {
    /// `value`, or what its `$ref` chain points at.
    fn resolve(self, mut value: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| {
                panic!(
                    "{}: only local $refs are supported, got {reference}",
                    self.name
                )
            });
            value = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{}: unresolvable $ref {reference}", self.name));
        }
        panic!("{}: $ref chain too long", self.name)
    }

    /// The object at `key` of `value` (resolved), or an empty one.
    fn object(self, value: &'a Value, key: &str) -> &'a Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match value.get(key).map(|v| self.resolve(v)) {
            Some(Value::Object(map)) => map,
            _ => EMPTY.get_or_init(Map::new),
        }
    }

    /// An operation's parameters, the path item's included, by (location, name).
    fn parameters(self, item: &'a Value, op: &'a Value) -> BTreeMap<(String, String), &'a Value> {
        let mut all = BTreeMap::new();
        for list in [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
        {
            for parameter in list.as_array().into_iter().flatten() {
                let parameter = self.resolve(parameter);
                let text = |key| parameter[key].as_str().unwrap_or_default().to_owned();
                all.insert((text("in"), text("name")), parameter);
            }
        }
        all
    }

    /// The security requirements in force for `op`.
    fn security(self, op: &'a Value) -> Value {
        op.get("security")
            .or_else(|| self.root.get("security"))
            .cloned()
            .unwrap_or(Value::Array(Vec::new()))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Request,
    Response,
}

/// Every way in which `served` fails to be a superset of `seed`; empty when it is one.
fn superset_problems(seed: &Value, served: &Value) -> Vec<String> {
    let mut compare = Compare {
        seed: Doc {
            root: seed,
            name: "seed",
        },
        served: Doc {
            root: served,
            name: "served",
        },
        problems: Vec::new(),
    };
    compare.paths();
    compare.problems
}

struct Compare<'a> {
    seed: Doc<'a>,
    served: Doc<'a>,
    problems: Vec<String>,
}

impl<'a> Compare<'a> {
    fn problem(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn paths(&mut self) {
        let served_paths = self.served.object(self.served.root, "paths");
        for (path, seed_item) in self.seed.object(self.seed.root, "paths") {
            let Some(served_item) = served_paths.get(path) else {
                self.problem(path, "path is missing");
                continue;
            };
            let (seed_item, served_item) = (
                self.seed.resolve(seed_item),
                self.served.resolve(served_item),
            );
            for method in METHODS {
                let Some(seed_op) = seed_item.get(method) else {
                    continue;
                };
                let at = format!("{} {path}", method.to_uppercase());
                match served_item.get(method) {
                    Some(served_op) => {
                        self.operation(&at, (seed_item, seed_op), (served_item, served_op))
                    }
                    None => self.problem(&at, "operation is missing"),
                }
            }
        }
    }

    fn operation(
        &mut self,
        at: &str,
        seed: (&'a Value, &'a Value),
        served: (&'a Value, &'a Value),
    ) {
        let (seed_security, served_security) =
            (self.seed.security(seed.1), self.served.security(served.1));
        if seed_security != served_security {
            self.problem(
                at,
                format!("security changed from {seed_security} to {served_security}"),
            );
        }
        self.parameters(at, seed, served);
        self.request_body(at, seed.1, served.1);
        self.responses(at, seed.1, served.1);
    }

    fn parameters(
        &mut self,
        at: &str,
        seed: (&'a Value, &'a Value),
        served: (&'a Value, &'a Value),
    ) {
        let served_parameters = self.served.parameters(served.0, served.1);
        for ((location, name), seed_parameter) in self.seed.parameters(seed.0, seed.1) {
            let at = format!("{at}: parameter `{name}` in {location}");
            let Some(served_parameter) = served_parameters.get(&(location, name)) else {
                self.problem(&at, "is missing");
                continue;
            };
            let required = |p: &Value| p.get("required").and_then(Value::as_bool) == Some(true);
            if required(seed_parameter) != required(served_parameter) {
                self.problem(
                    &at,
                    format!("`required` changed to {}", required(served_parameter)),
                );
            }
            match (seed_parameter.get("schema"), served_parameter.get("schema")) {
                (Some(seed_schema), Some(served_schema)) => {
                    self.schema(&at, seed_schema, served_schema, Direction::Request, 0)
                }
                (Some(_), None) => self.problem(&at, "schema is missing"),
                _ => {}
            }
        }
    }

    fn request_body(&mut self, at: &str, seed_op: &'a Value, served_op: &'a Value) {
        let Some(seed_body) = seed_op.get("requestBody") else {
            return;
        };
        let at = format!("{at}: request body");
        let Some(served_body) = served_op.get("requestBody") else {
            self.problem(&at, "is missing");
            return;
        };
        let (seed_body, served_body) = (
            self.seed.resolve(seed_body),
            self.served.resolve(served_body),
        );
        let required = |b: &Value| b.get("required").and_then(Value::as_bool) == Some(true);
        if required(seed_body) != required(served_body) {
            self.problem(
                &at,
                format!("`required` changed to {}", required(served_body)),
            );
        }
        self.content(&at, seed_body, served_body, Direction::Request);
    }

    fn responses(&mut self, at: &str, seed_op: &'a Value, served_op: &'a Value) {
        let served_responses = self.served.object(served_op, "responses");
        for (status, seed_response) in self.seed.object(seed_op, "responses") {
            let at = format!("{at}: response {status}");
            let Some(served_response) = served_responses.get(status) else {
                self.problem(&at, "is missing");
                continue;
            };
            let (seed_response, served_response) = (
                self.seed.resolve(seed_response),
                self.served.resolve(served_response),
            );
            let served_headers = self.served.object(served_response, "headers");
            for header in self.seed.object(seed_response, "headers").keys() {
                if !served_headers
                    .keys()
                    .any(|h| h.eq_ignore_ascii_case(header))
                {
                    self.problem(&at, format!("header `{header}` is missing"));
                }
            }
            self.content(&at, seed_response, served_response, Direction::Response);
        }
    }

    /// The media types of a request body or response, and their schemas.
    fn content(&mut self, at: &str, seed: &'a Value, served: &'a Value, direction: Direction) {
        let served_content = self.served.object(served, "content");
        for (media_type, seed_media) in self.seed.object(seed, "content") {
            let at = format!("{at}: {media_type}");
            let Some(served_media) = served_content.get(media_type) else {
                self.problem(&at, "media type is missing");
                continue;
            };
            match (seed_media.get("schema"), served_media.get("schema")) {
                (Some(seed_schema), Some(served_schema)) => {
                    self.schema(&at, seed_schema, served_schema, direction, 0)
                }
                (Some(_), None) => self.problem(&at, "schema is missing"),
                _ => {}
            }
        }
    }

    fn schema(
        &mut self,
        at: &str,
        seed: &'a Value,
        served: &'a Value,
        direction: Direction,
        depth: usize,
    ) {
        if depth > 64 {
            return; // A recursive schema: its first levels were compared.
        }
        let (seed, served) = (self.seed.resolve(seed), self.served.resolve(served));
        let show = |v: Option<&Value>| v.map_or_else(|| "none".to_owned(), Value::to_string);

        for keyword in ["type", "format", "enum"] {
            let (before, after) = (seed.get(keyword), served.get(keyword));
            // A format is a refinement the served contract may add, never drop or change.
            let added_format = keyword == "format" && before.is_none();
            if before != after && !added_format {
                self.problem(
                    at,
                    format!(
                        "`{keyword}` changed from {} to {}",
                        show(before),
                        show(after)
                    ),
                );
            }
        }
        let flag = |v: &Value, key| v.get(key).and_then(Value::as_bool);
        if flag(seed, "nullable") == Some(true) && flag(served, "nullable") != Some(true) {
            self.problem(at, "is no longer nullable");
        }
        if flag(served, "additionalProperties") == Some(false)
            && flag(seed, "additionalProperties") != Some(false)
        {
            self.problem(at, "forbids additional properties the seed allowed");
        }

        let required = |v: &Value| -> BTreeSet<String> {
            v.get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        };
        let (seed_required, served_required) = (required(seed), required(served));
        for field in seed_required.difference(&served_required) {
            self.problem(at, format!("field `{field}` is no longer required"));
        }
        if direction == Direction::Request {
            for field in served_required.difference(&seed_required) {
                self.problem(at, format!("field `{field}` became required"));
            }
        }

        let served_properties = self.served.object(served, "properties");
        for (name, seed_property) in self.seed.object(seed, "properties") {
            let at = format!("{at}: property `{name}`");
            match served_properties.get(name) {
                Some(served_property) => {
                    self.schema(&at, seed_property, served_property, direction, depth + 1)
                }
                None => self.problem(&at, "is missing"),
            }
        }

        if let Some(seed_items) = seed.get("items") {
            let at = format!("{at}: items");
            match served.get("items") {
                Some(served_items) => {
                    self.schema(&at, seed_items, served_items, direction, depth + 1)
                }
                None => self.problem(&at, "are missing"),
            }
        }

        for keyword in ["oneOf", "anyOf", "allOf"] {
            let Some(seed_branches) = seed.get(keyword).and_then(Value::as_array) else {
                continue;
            };
            let served_branches = served.get(keyword).and_then(Value::as_array);
            match served_branches {
                Some(served_branches) if served_branches.len() == seed_branches.len() => {
                    for (i, (a, b)) in seed_branches.iter().zip(served_branches).enumerate() {
                        self.schema(&format!("{at}: {keyword}[{i}]"), a, b, direction, depth + 1);
                    }
                }
                _ => self.problem(
                    at,
                    format!(
                        "`{keyword}` no longer has the seed's {} branches",
                        seed_branches.len()
                    ),
                ),
            }
        }
    }
}

#[test]
fn served_contract_is_a_superset_of_the_seed() {
    let problems = superset_problems(&seed(), &served());
    assert!(
        problems.is_empty(),
        "openapi.yaml removes or changes what the seed contract has:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_seed_is_a_superset_of_itself() {
    let seed = seed();
    assert_eq!(superset_problems(&seed, &seed), Vec::<String>::new());
}

#[test]
fn committed_seed_is_the_shared_one_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = dir.join("../../shared/openapi.yaml");
    if !shared.exists() {
        eprintln!(
            "note: {} is not there (a clone without the shared folder); \
             seed-openapi.yaml is taken as committed",
            shared.display()
        );
        return;
    }
    let committed = std::fs::read(dir.join("seed-openapi.yaml")).expect("seed-openapi.yaml");
    let shared = std::fs::read(&shared).expect("shared/openapi.yaml");
    assert!(
        committed == shared,
        "seed-openapi.yaml differs from shared/openapi.yaml: copy it again, verbatim"
    );
}

/// The comparison itself catches what it is meant to: each change below, made to the served
/// contract, is reported, at the place it was made.
#[test]
fn the_comparison_reports_what_was_removed_or_changed() {
    type Mutation = fn(&mut Value);

    /// The value at `pointer`, naming the pointer if the document has no such thing.
    fn node<'v>(v: &'v mut Value, pointer: &str) -> &'v mut Value {
        v.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in openapi.yaml"))
    }
    fn remove(v: &mut Value, pointer: &str, key: &str) {
        let removed = node(v, pointer).as_object_mut().and_then(|o| o.remove(key));
        assert!(
            removed.is_some(),
            "no {key} under {pointer} in openapi.yaml"
        );
    }

    let cases: [(&str, Mutation, &[&str]); 12] = [
        (
            "a response code",
            |v| remove(v, "/paths/~1limits~1{name}/get/responses", "404"),
            &["GET /limits/{name}", "response 404", "is missing"],
        ),
        (
            "a property's type",
            |v| {
                *node(
                    v,
                    "/components/schemas/LockResponse/properties/fencing_token/type",
                ) = "string".into()
            },
            &[
                "POST /locks/{name}/acquire",
                "`fencing_token`",
                "`type` changed",
            ],
        ),
        (
            "a whole path",
            |v| remove(v, "/paths", "/health"),
            &["/health", "path is missing"],
        ),
        (
            "a method",
            |v| remove(v, "/paths/~1flags~1{name}", "delete"),
            &["DELETE /flags/{name}", "operation is missing"],
        ),
        (
            "a path parameter",
            |v| {
                let parameters = node(v, "/paths/~1config~1{key}~1history/get/parameters");
                *parameters = Value::Array(Vec::new());
            },
            &[
                "GET /config/{key}/history",
                "parameter `key` in path",
                "is missing",
            ],
        ),
        (
            "a parameter's `required`",
            |v| {
                *node(
                    v,
                    "/paths/~1auth~1github~1callback/get/parameters/0/required",
                ) = false.into()
            },
            &["parameter `code` in query", "`required` changed"],
        ),
        (
            "a parameter's type",
            |v| *node(v, "/paths/~1config~1{key}/get/parameters/1/schema/type") = "string".into(),
            &["parameter `version` in query", "`type` changed"],
        ),
        (
            "a required request field",
            |v| {
                let required = node(v, "/paths/~1flags~1{name}/put/requestBody/content/application~1json/schema/required");
                *required = Value::Array(Vec::new());
            },
            &[
                "PUT /flags/{name}: request body",
                "`enabled` is no longer required",
            ],
        ),
        (
            "a new required request field",
            |v| {
                let required = node(v, "/paths/~1locks~1{name}~1acquire/post/requestBody/content/application~1json/schema/required");
                required.as_array_mut().unwrap().push("client_id".into());
            },
            &[
                "POST /locks/{name}/acquire: request body",
                "`client_id` became required",
            ],
        ),
        (
            "a response media type",
            |v| {
                let content = node(v, "/paths/~1health/get/responses/200/content");
                let text = content
                    .as_object_mut()
                    .unwrap()
                    .remove("text/plain")
                    .unwrap();
                content
                    .as_object_mut()
                    .unwrap()
                    .insert("application/json".into(), text);
            },
            &[
                "GET /health: response 200: text/plain",
                "media type is missing",
            ],
        ),
        (
            "a required response field",
            |v| {
                let required = node(v, "/components/schemas/LockConflict/required");
                required.as_array_mut().unwrap().retain(|r| r != "lock");
            },
            &["response 409", "`lock` is no longer required"],
        ),
        (
            "a public operation made private",
            |v| remove(v, "/paths/~1health/get", "security"),
            &["GET /health", "security changed"],
        ),
    ];

    let seed = seed();
    for (what, mutate, expected) in cases {
        let mut changed = served();
        mutate(&mut changed);
        let problems = superset_problems(&seed, &changed);
        assert!(
            problems
                .iter()
                .any(|p| expected.iter().all(|part| p.contains(part))),
            "changing {what} should be reported as {expected:?}, got:\n  {}",
            problems.join("\n  ")
        );
    }
}

/// The conventions the served contract promises in its description hold for every operation.
#[test]
fn served_contract_documents_the_conventions() {
    let root = served();
    let doc = Doc {
        root: &root,
        name: "served",
    };
    let mut problems = Vec::new();
    for (path, item) in doc.object(&root, "paths") {
        let item = doc.resolve(item);
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let at = format!("{} {path}", method.to_uppercase());
            let responses = doc.object(op, "responses");
            let response = |status: &str| responses.get(status).map(|r| doc.resolve(r));

            // Whether the server's table has the path public.
            let public = Operation::ALL
                .iter()
                .any(|op| op.template() == path && op.access() == Access::Public);
            let secured = doc.security(op) != Value::Array(Vec::new());
            if public == secured {
                problems.push(format!(
                    "{at}: should be {}",
                    if public { "public" } else { "secured" }
                ));
            }
            if secured {
                let challenge = response("401").map(|r| doc.object(r, "headers"));
                if !challenge.is_some_and(|h| h.contains_key("WWW-Authenticate")) {
                    problems.push(format!("{at}: 401 with WWW-Authenticate is not documented"));
                }
            }

            let parameters = doc.parameters(item, op);
            let path_parameters: Vec<_> = parameters
                .iter()
                .filter(|((location, _), _)| location == "path")
                .collect();
            for ((_, name), parameter) in &path_parameters {
                let schema = doc.resolve(&parameter["schema"]);
                for bound in ["pattern", "minLength", "maxLength"] {
                    if schema.get(bound).is_none() {
                        problems.push(format!("{at}: path parameter `{name}` has no {bound}"));
                    }
                }
            }
            // OFREP answers its own failures: a key that names no flag is its 404, a body it
            // cannot read its 400, each in its own shape (`Ofrep...`); a refused token and a
            // body over the cap are the API's.
            let ofrep = path.starts_with("/ofrep/");
            let refused = if ofrep { "400" } else { "422" };
            if !path_parameters.is_empty() && response(if ofrep { "404" } else { "422" }).is_none()
            {
                problems.push(format!("{at}: has a path name but no answer for a bad one"));
            }
            if op.get("requestBody").is_some() {
                for status in ["413", refused] {
                    if response(status).is_none() {
                        problems.push(format!("{at}: has a request body but no {status}"));
                    }
                }
            }

            for (status, response) in responses {
                if status.as_str() < "400" {
                    continue;
                }
                let response = doc.resolve(response);
                let schema = response
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str);
                let expected = if status == "409" && path.ends_with("/acquire") {
                    "#/components/schemas/LockConflict"
                } else if ofrep && !["401", "413"].contains(&status.as_str()) {
                    "#/components/schemas/Ofrep"
                } else {
                    "#/components/schemas/Error"
                };
                let matches = match schema {
                    Some(schema) if ofrep && expected.ends_with("/Ofrep") => {
                        schema.starts_with(expected)
                    }
                    schema => schema == Some(expected),
                };
                if !matches {
                    problems.push(format!("{at}: {status} is not a JSON {expected}"));
                }
            }
        }
    }
    let not_allowed = doc.resolve(&root["components"]["responses"]["MethodNotAllowed"]);
    if !doc.object(not_allowed, "headers").contains_key("Allow") {
        problems.push("the 405 response does not document `Allow`".into());
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
}

/// The served contract and the server's table of operations describe the same operations:
/// each (method, path) once, with the same `operationId` and the same need of a token.
#[test]
fn served_contract_and_the_operation_table_agree() {
    let root = served();
    let doc = Doc {
        root: &root,
        name: "served",
    };
    let mut documented = BTreeSet::new();
    for (path, item) in doc.object(&root, "paths") {
        let item = doc.resolve(item);
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let public = doc.security(op) == Value::Array(Vec::new());
            let id = op["operationId"].as_str().unwrap_or("").to_owned();
            documented.insert((method.to_uppercase(), path.clone(), id, public));
        }
    }
    let table: BTreeSet<_> = Operation::ALL
        .iter()
        .map(|op| {
            let public = op.access() == Access::Public;
            (
                op.method().to_string(),
                op.template().to_owned(),
                op.id().to_owned(),
                public,
            )
        })
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && unserved.is_empty(),
        "in the table, not documented: {missing:?}\ndocumented, not in the table: {unserved:?}"
    );
}

/// README's table of endpoints lists exactly the operations of the table, public ones
/// marked so: a row per `METHOD path`, in the section `## Endpoints`.
#[test]
fn readme_lists_the_operation_table() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md beside the workspace's crates");
    let section = readme
        .split("\n## Endpoints\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a section ## Endpoints");
    let listed: BTreeSet<(String, bool)> = section
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.splitn(2, "` | ");
            let endpoint = cells.next()?.to_owned();
            Some((endpoint, cells.next()?.starts_with("*public*")))
        })
        .collect();
    let table: BTreeSet<(String, bool)> = Operation::ALL
        .iter()
        .map(|op| {
            let endpoint = format!("{} {}", op.method(), op.template());
            (endpoint, op.access() == Access::Public)
        })
        .collect();
    let missing: Vec<_> = table.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&table).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "(endpoint, public) not in README: {missing:?}\nin README, not served: {stale:?}"
    );
}
