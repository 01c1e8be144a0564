use std::{collections::BTreeSet, path::Path};

use serde_json::Value;

use super::{PROTOCOL_SCHEMAS, document, protocol_component};

const METHODS: [&str; 8] = ["get", "post", "put", "delete", "patch", "head", "options", "trace"];

/// (method, path) of every operation in the document.
fn described() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// A route registered in the source without utoipa-axum's `routes!`: `.route("/p", get(h))`,
/// `.nest_service("/p", s)`, ….
#[derive(Debug)]
struct PlainRoute {
    file: String,
    path: String,
    /// Methods named in the method router (`any` for every method; empty for a service).
    methods: Vec<String>,
}

/// The text up to the parenthesis closing the one just before `s` starts.
fn until_close(s: &str) -> &str {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// The method routers named in a route's arguments (`get(h).post(g)`: get, post).
fn methods_in(args: &str) -> Vec<String> {
    METHODS
        .iter()
        .chain(&["any"])
        .filter(|m| {
            args.match_indices(&format!("{m}(")).any(|(i, _)| {
                i == 0 || !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            })
        })
        .map(|m| m.to_string())
        .collect()
}

/// Plain routes of one file's non-test code.
fn plain_routes(file: &str, text: &str) -> Vec<PlainRoute> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = Vec::new();
    for call in [".route(", ".route_service(", ".nest_service(", ".nest("] {
        for (at, _) in code.match_indices(call) {
            let args = until_close(&code[at + call.len()..]);
            let methods = methods_in(args);
            let Some(path) = args.trim_start().strip_prefix('"').and_then(|r| r.split('"').next())
            else {
                // Another type's `route` method (the scheduler's); an axum route with a path
                // that is not a literal would hide from this test, so it is refused.
                assert!(methods.is_empty(), "{file}: a route whose path is not a literal: {args}");
                continue;
            };
            found.push(PlainRoute { file: file.to_string(), path: path.to_string(), methods });
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// Every plain route of the crate's source (test modules in `tests.rs` files left out).
fn source_routes() -> Vec<PlainRoute> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("source readable");
            plain_routes(&f.strip_prefix(&src).unwrap_or(f).display().to_string(), &text)
        })
        .collect()
}

/// Routes registered with `routes!` are described by construction (utoipa-axum adds the
/// handler's `#[utoipa::path]` to the document and routes the path it names). Every other
/// route in the source must be described too: the MCP service, and the gateways that forward
/// `/v1/market/...` on nodes without a marketplace (described by the marketplace's own paths).
#[test]
fn every_route_in_the_source_is_described() {
    let ops = described();
    let routes = source_routes();
    assert!(routes.iter().any(|r| r.path == "/mcp"), "the scan finds the MCP service: {routes:?}");
    for r in &routes {
        match (r.path.as_str(), r.methods.as_slice()) {
            ("/mcp", []) => {
                for m in ["get", "post", "delete"] {
                    assert!(ops.contains(&(m.into(), "/mcp".into())), "{m} /mcp is not described");
                }
            }
            // The gateways: whatever reaches them is a marketplace path, described by the
            // marketplace's routes (a node without one forwards or refuses them).
            ("/v1/market" | "/v1/market/{*rest}", [any]) if any == "any" => {
                assert!(
                    r.file.ends_with("gateway.rs"),
                    "{}: a catch-all /v1/market route outside the gateway",
                    r.file
                );
                assert!(ops.iter().filter(|(_, p)| p.starts_with("/v1/market/")).count() >= 7);
            }
            // Not the node's: the x402 endpoint a metered agent serves on its own listener
            // (`reef agent serve-metered --x402-listen`), described in docs/x402.md with its
            // JSON Schemas, which test_x402.py checks its answers against.
            ("/v1/x402/call", [post]) if post == "post" && r.file.starts_with("x402") => {
                assert_eq!(crate::x402::server::CALL_PATH, "/v1/x402/call");
            }
            (path, methods) => {
                assert!(!methods.is_empty(), "{}: {path} names no method", r.file);
                for m in methods {
                    assert!(
                        ops.contains(&(m.clone(), path.to_string())),
                        "{}: route {m} {path} is not in the OpenAPI document: register it \
                         with utoipa_axum's routes! and a #[utoipa::path]",
                        r.file
                    );
                }
            }
        }
    }
}

/// The scan sees a route added the plain way, so the test above can fail.
#[test]
fn the_route_scan_sees_plain_routes() {
    let text = r#"
        fn r() -> Router {
            Router::new()
                .route("/v1/extra", get(extra).post(more))
                .route(
                    "/v1/other/{id}",
                    delete(gone),
                )
                .nest_service("/svc", service)
        }
        #[cfg(test)]
        mod tests { fn t() { Router::new().route("/only/in/tests", get(x)); } }
    "#;
    let found = plain_routes("x.rs", text);
    let seen: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|r| (r.path.as_str(), r.methods.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/v1/extra", vec!["get", "post"]),
            ("/v1/other/{id}", vec!["delete"]),
            ("/svc", vec![]),
        ]
    );
    assert!(!described().contains(&("get".into(), "/v1/extra".into())));
}

/// The routes the issue names are all there, with their methods.
#[test]
fn the_issue_routes_are_described() {
    let ops = described();
    for (m, p) in [
        ("get", "/v1/health"),
        ("get", "/v1/ws"),
        ("post", "/v1/auth/challenge"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/agents"),
        ("get", "/v1/agents/{address}"),
        ("post", "/v1/discover"),
        ("post", "/v1/groups"),
        ("get", "/v1/groups"),
        ("get", "/v1/groups/{id}"),
        ("post", "/v1/groups/{id}/members"),
        ("delete", "/v1/groups/{id}/members/{address}"),
        ("get", "/v1/groups/{id}/messages"),
        ("post", "/v1/groups/{id}/messages"),
        ("get", "/v1/market/info"),
        ("get", "/v1/market/bounties"),
        ("post", "/v1/market/bounties"),
        ("get", "/v1/market/bounties/{id}"),
        ("post", "/v1/market/bounties/{id}/bids"),
        ("post", "/v1/market/bounties/{id}/entries"),
        ("get", "/v1/market/agents/{address}/reputation"),
        ("get", "/metrics"),
        ("post", "/mcp"),
        ("get", "/v1/openapi.json"),
    ] {
        assert!(ops.contains(&(m.into(), p.into())), "{m} {p} missing");
    }
    let doc = document();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "3.1");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let view = &doc["paths"]["/v1/market/bounties/{id}"]["get"]["parameters"];
    let names: Vec<&str> =
        view.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["id", "wait_ms", "after_events"]);
}

/// Each value of `v` (recursively) with its JSON pointer.
fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((at.clone(), v));
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, format!("{at}/{k}"), out)),
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| walk(x, format!("{at}/{i}"), out))
        }
        _ => {}
    }
}

/// Bodies defined by docs/schemas are those schemas: the component is the file (without its
/// `$schema`/`$id`), so the description and the protocol's JSON Schemas cannot disagree.
#[test]
fn protocol_components_are_the_json_schemas_of_docs() {
    let doc = document();
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
    for (name, file, _) in PROTOCOL_SCHEMAS {
        let text = std::fs::read_to_string(schemas.join(file)).expect("schema file");
        let mut want: Value = serde_json::from_str(&text).expect("schema JSON");
        let got = &doc["components"]["schemas"][*name];
        let o = want.as_object_mut().unwrap();
        o.remove("$schema");
        o.remove("$id");
        if *name == "GroupMessage" {
            // The stored message: the frame without `type` (history answers strip it).
            assert!(got["properties"].get("type").is_none());
            assert!(!got["required"].as_array().unwrap().contains(&"type".into()));
            o["properties"].as_object_mut().unwrap().remove("type");
            o["required"].as_array_mut().unwrap().retain(|f| f != "type");
            assert_eq!(got["properties"], o["properties"], "{name}");
            assert_eq!(got["required"], o["required"], "{name}");
            continue;
        }
        assert_eq!(got, &want, "component {name} differs from docs/schemas/{file}");
    }
    // The error component is rest_error.json; a wrong shape is refused by it.
    assert_eq!(
        doc["components"]["schemas"]["Error"]["required"],
        serde_json::json!(["code", "error", "message"])
    );
    assert!(protocol_component("Error", "not json")["description"].is_string());
}

/// Every `$ref` resolves, every operation has a description of each answer, the bearer scheme
/// is declared and every protected operation says how it answers a missing token.
#[test]
fn the_document_is_complete() {
    let doc = document();
    let mut all = Vec::new();
    walk(doc, String::new(), &mut all);
    let mut refs = 0;
    for (at, v) in &all {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let target = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(target).is_some(), "{at}: dangling $ref {r}");
            refs += 1;
        }
    }
    assert!(refs > 30, "{refs} refs");
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id), "operationId {id} is used twice");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, r) in responses {
                assert!(r["description"].is_string(), "{method} {path} {status}");
            }
            // A token is required when the operation names a scheme and no empty
            // alternative; such an operation says how it answers a missing one. (Where a token
            // is optional, as on the dashboard's reads, an unknown one is a stranger.)
            let security = op["security"].as_array();
            let required = security.is_some_and(|s| {
                !s.is_empty() && s.iter().all(|req| req.as_object().is_some_and(|r| !r.is_empty()))
            });
            if required {
                assert!(responses.contains_key("401"), "{method} {path} has no 401");
            }
            for req in security.into_iter().flatten() {
                for scheme in req.as_object().unwrap().keys() {
                    assert!(
                        doc["components"]["securitySchemes"].get(scheme).is_some(),
                        "{method} {path}: unknown security scheme {scheme}"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: {name}");
                }
            }
        }
    }
}

/// Routers bring their own components; two with the same name would silently replace one
/// another in the merged document (the dashboard's and the marketplace's `BountySummary`, …).
#[test]
fn no_router_component_is_replaced_by_another_one() {
    let doc = document();
    let parts = [
        ("ioa", crate::ioa::rest::routes().into_openapi()),
        ("market", crate::market::rest::routes().into_openapi()),
        ("metrics", crate::metrics::routes().into_openapi()),
        ("dashboard", crate::dashboard::routes().into_openapi()),
        ("erc8004", crate::erc8004::routes().into_openapi()),
        ("a2a", crate::a2a::routes().into_openapi()),
    ];
    let mut seen = 0;
    for (part, api) in parts {
        let api = serde_json::to_value(api).unwrap();
        for (name, schema) in api["components"]["schemas"].as_object().into_iter().flatten() {
            if PROTOCOL_SCHEMAS.iter().any(|(n, _, _)| n == name) {
                continue; // replaced by the docs/schemas file on purpose
            }
            assert_eq!(&doc["components"]["schemas"][name], schema, "{part}: component {name}");
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen} components");
}

/// The dashboard: every route tagged, the page and assets with their own content types, the
/// live stream as server-sent events, and the session cookie next to the bearer token where
/// either is accepted.
#[test]
fn the_dashboard_is_described() {
    let doc = document();
    let session = &doc["components"]["securitySchemes"]["session"];
    assert_eq!((&session["type"], &session["in"]), (&"apiKey".into(), &"cookie".into()));
    assert_eq!(session["name"], crate::dashboard::auth::COOKIE);
    let paths = doc["paths"].as_object().unwrap();
    let dashboard: Vec<(&String, &Value)> = paths
        .iter()
        .filter(|(p, _)| {
            *p == "/" || p.starts_with("/dashboard/") || p.starts_with("/v1/dashboard/")
        })
        .flat_map(|(p, item)| item.as_object().unwrap().values().map(move |op| (p, op)))
        .collect();
    assert_eq!(dashboard.len(), 13, "{dashboard:?}");
    for (path, op) in &dashboard {
        assert_eq!(op["tags"], serde_json::json!(["dashboard"]), "{path}");
        for req in op["security"].as_array().into_iter().flatten() {
            if req.get("bearer").is_some() {
                let either =
                    op["security"].as_array().unwrap().iter().any(|r| r.get("session").is_some());
                assert!(either, "{path}: the bearer token without the session cookie");
            }
        }
    }
    let content = |path: &str, status: &str| -> Vec<String> {
        doc["paths"][path]["get"]["responses"][status]["content"]
            .as_object()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(content("/", "200"), ["text/html"]);
    assert_eq!(
        content("/dashboard/{file}", "200"),
        ["image/svg+xml", "text/css", "text/javascript"]
    );
    assert_eq!(content("/dashboard/{file}", "404"), ["application/json"]);
    assert_eq!(content("/v1/dashboard/live", "200"), ["text/event-stream"]);
    assert_eq!(content("/v1/dashboard/live", "503"), ["application/json"]);
    let group = &doc["paths"]["/v1/dashboard/groups/{id}"]["get"];
    assert_eq!(group["security"], serde_json::json!([{ "session": [] }, { "bearer": [] }]));
    // The private parts of a bounty page are always there, `null` for whoever may not see them.
    let page = &doc["components"]["schemas"]["dashboard.BountyPage"];
    for field in ["ranking", "input", "verdict", "conversation", "viewer"] {
        let required = page["required"].as_array().unwrap();
        assert!(required.contains(&field.into()), "{field} is not required: {required:?}");
    }
    // Every embedded file is served with a content type the description names.
    let described = content("/dashboard/{file}", "200");
    for (name, ty, _) in crate::dashboard::ASSETS {
        let media = ty.split(';').next().unwrap_or(ty);
        assert!(described.iter().any(|d| d == media), "{name}: {ty} is not described");
    }
}
