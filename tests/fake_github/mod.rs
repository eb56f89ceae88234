//! A fake GitHub for tests: a local HTTP server that behaves like the REST
//! API for the operations the orchestrator uses, so tests can assert the
//! end state (which issues are open, what their comments say) rather than
//! which calls were made.
//!
//! It is strict where GitHub is and stricter where that catches our bugs:
//! every request is checked against GitHub's OpenAPI description (method,
//! path, parameters, body schema with no unknown keys) and anything that
//! does not match is answered with a 4xx, which fails the test. Responses
//! are GitHub's own examples from that description, filled in with the
//! stored data. Bodies over 65,536 characters are refused as GitHub does.
//!
//! Tokens: [`TOKEN`] is a person's token (`platform-bot`), [`ACTIONS_TOKEN`]
//! a workflow's `GITHUB_TOKEN` (writes as `github-actions[bot]`, cannot read
//! `/user`), [`READ_ONLY_TOKEN`] the token of a pull request from a fork.
//! The repository is [`OWNER`]/[`REPO`]. Faults can be injected per
//! operation ([`Fault`]).
//!
//! Pull requests are issues with a head and a base branch, as on GitHub:
//! their comments go through the issues API. Given a git repository to
//! stand for the repository's branches ([`FakeGitHub::branches_in`]), the
//! fake refuses a pull request whose branches are not there, and reports
//! each head's commit from it.
//!
//! The server runs on its own thread and runtime, so tests can use it from
//! plain `#[test]` functions that spawn the real binary.

#![allow(dead_code)]

pub mod openapi;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use openapi::{check_parameter, percent_decode, spec};

/// A person's token: acts as `platform-bot`.
pub const TOKEN: &str = "ghp_FakePersonalToken0123456789abcdefXYZ";
/// A workflow run's `GITHUB_TOKEN`: acts as `github-actions[bot]`.
pub const ACTIONS_TOKEN: &str = "ghs_FakeActionsToken0123456789abcdefXYZ";
/// The token of a pull request from a fork: can only read.
pub const READ_ONLY_TOKEN: &str = "ghs_FakeForkReadOnlyToken0123456789XYZ";
/// The login [`TOKEN`] acts as.
pub const USER: &str = "platform-bot";
/// The login of a workflow's token.
pub const ACTIONS_BOT: &str = "github-actions[bot]";
/// The repository's owner.
pub const OWNER: &str = "acme";
/// The repository's name.
pub const REPO: &str = "infra";
/// GitHub's limit on issue and comment bodies, in characters.
pub const MAX_BODY: usize = 65_536;

/// Something to go wrong, for the next `times` requests to operation `op`
/// (an operationId such as `issues/create`).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `status` and do nothing.
    Status {
        op: &'static str,
        status: u16,
        times: u32,
    },
    /// Do the work, then answer `status`: GitHub did it, the answer was lost.
    StatusAfterWork {
        op: &'static str,
        status: u16,
        times: u32,
    },
    /// 403 secondary rate limit, with `retry-after`.
    SecondaryRateLimit {
        op: &'static str,
        retry_after: u64,
        times: u32,
    },
    /// 403 with the hourly budget spent: `x-ratelimit-remaining: 0` and a reset time.
    RateLimitReset {
        op: &'static str,
        reset_in: u64,
        times: u32,
    },
    /// 422 "Body is too long", whatever the length.
    TooLong { op: &'static str, times: u32 },
    /// Do the work, then answer only after `delay`.
    Slow {
        op: &'static str,
        delay: Duration,
        times: u32,
    },
}

impl Fault {
    fn op(&self) -> &'static str {
        match self {
            Fault::Status { op, .. }
            | Fault::StatusAfterWork { op, .. }
            | Fault::SecondaryRateLimit { op, .. }
            | Fault::RateLimitReset { op, .. }
            | Fault::TooLong { op, .. }
            | Fault::Slow { op, .. } => op,
        }
    }

    fn times(&mut self) -> &mut u32 {
        match self {
            Fault::Status { times, .. }
            | Fault::StatusAfterWork { times, .. }
            | Fault::SecondaryRateLimit { times, .. }
            | Fault::RateLimitReset { times, .. }
            | Fault::TooLong { times, .. }
            | Fault::Slow { times, .. } => times,
        }
    }
}

/// An issue (or pull request) as stored.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub author: String,
    pub is_pull_request: bool,
    pub duplicate_of: Option<u64>,
}

/// A pull request's branches, stored beside its issue (same number).
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    /// The head branch.
    pub head: String,
    /// The base branch.
    pub base: String,
}

/// A comment as stored.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub author: String,
    /// How many times it was edited.
    pub edits: u32,
}

/// A label as stored.
#[derive(Debug, Clone)]
pub struct Label {
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

/// A request as received, and how it was answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The path, without the API prefix.
    pub path: String,
    pub query: String,
    /// The operation it matched, if any.
    pub operation: Option<String>,
    pub status: u16,
    pub body: String,
}

#[derive(Default)]
struct Store {
    next_number: u64,
    next_id: u64,
    issues: BTreeMap<u64, Issue>,
    pulls: BTreeMap<u64, Pull>,
    /// The git repository holding the branches pull requests name.
    branches: Option<std::path::PathBuf>,
    comments: Vec<Comment>,
    labels: Vec<Label>,
    faults: Vec<Fault>,
    received: Vec<Received>,
    /// Issue listings to hold until this many have arrived together.
    hold: Option<(Arc<tokio::sync::Barrier>, usize)>,
}

struct Shared {
    store: Mutex<Store>,
    /// `http://127.0.0.1:PORT` followed by the prefix.
    base: String,
    prefix: String,
}

/// The running fake. Stops when dropped.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitHub {
    /// A fake at `http://127.0.0.1:PORT`, like api.github.com.
    pub fn start() -> FakeGitHub {
        FakeGitHub::start_at("")
    }

    /// A fake at `http://127.0.0.1:PORT/api/v3`, like GitHub Enterprise
    /// Server: requests without the prefix are not found.
    pub fn start_enterprise() -> FakeGitHub {
        FakeGitHub::start_at("/api/v3")
    }

    fn start_at(prefix: &str) -> FakeGitHub {
        spec();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                next_number: 1,
                next_id: 1000,
                ..Store::default()
            }),
            base: format!("http://{addr}{prefix}"),
            prefix: prefix.to_string(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut stopped = stopped;
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let shared = server.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        FakeGitHub {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The API's base URL, for `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The environment the binary needs to use this fake with `token`, with
    /// short timeouts and delays so tests run fast.
    pub fn env(&self, token: &str) -> Vec<(String, String)> {
        [
            ("GITHUB_API_URL", self.url()),
            ("GITHUB_TOKEN", token.to_string()),
            ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
            ("ORCHESTRATOR_GITHUB_TIMEOUT", "2s".into()),
            ("ORCHESTRATOR_GITHUB_RETRY_DELAY", "20ms".into()),
            ("ORCHESTRATOR_GITHUB_SPACING", "0s".into()),
            ("ORCHESTRATOR_GITHUB_MAX_WAIT", "10s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Makes something go wrong (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.store().faults.push(fault);
    }

    /// Holds the next `n` issue listings until all `n` have arrived, so `n`
    /// jobs are sure to look at the same moment.
    pub fn hold_issue_listings(&self, n: usize) {
        self.store().hold = Some((Arc::new(tokio::sync::Barrier::new(n)), n));
    }

    /// Pull requests must name branches of the git repository at `path`
    /// (a bare origin), and their heads' commits are read from it.
    pub fn branches_in(&self, path: &std::path::Path) {
        self.store().branches = Some(path.to_path_buf());
    }

    /// Every pull request: its issue (title, body, state, author) and its
    /// branches, by number.
    pub fn pull_requests(&self) -> Vec<(Issue, Pull)> {
        let store = self.store();
        store
            .pulls
            .values()
            .map(|p| (store.issues[&p.number].clone(), p.clone()))
            .collect()
    }

    /// Opens a pull request (an issue with `pull_request` set, from branch
    /// `feature` into `main`); its number.
    pub fn open_pull_request(&self, title: &str) -> u64 {
        let mut store = self.store();
        let number = store.next_number;
        store.pulls.insert(
            number,
            Pull {
                number,
                head: "feature".into(),
                base: "main".into(),
            },
        );
        store.next_number += 1;
        let id = store.new_id();
        store.issues.insert(
            number,
            Issue {
                id,
                number,
                title: title.into(),
                body: String::new(),
                state: "open".into(),
                state_reason: None,
                labels: Vec::new(),
                assignees: Vec::new(),
                author: "contributor".into(),
                is_pull_request: true,
                duplicate_of: None,
            },
        );
        number
    }

    /// Adds a comment written by someone else.
    pub fn add_comment(&self, issue: u64, author: &str, body: &str) -> u64 {
        let mut store = self.store();
        let id = store.new_id();
        store.comments.push(Comment {
            id,
            issue,
            body: body.into(),
            author: author.into(),
            edits: 0,
        });
        id
    }

    /// Every issue, pull requests included, by number.
    pub fn issues(&self) -> Vec<Issue> {
        self.store().issues.values().cloned().collect()
    }

    /// The issues (not pull requests) whose body holds `text`.
    pub fn issues_with(&self, text: &str) -> Vec<Issue> {
        self.issues()
            .into_iter()
            .filter(|i| !i.is_pull_request && i.body.contains(text))
            .collect()
    }

    /// The comments on issue `number`, oldest first.
    pub fn comments(&self, number: u64) -> Vec<Comment> {
        self.store()
            .comments
            .iter()
            .filter(|c| c.issue == number)
            .cloned()
            .collect()
    }

    /// Every label of the repository.
    pub fn labels(&self) -> Vec<Label> {
        self.store().labels.clone()
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.store().received.clone()
    }

    /// Every text the fake was sent or stores: request bodies, issue titles
    /// and bodies, comments. For checking that no secret got out.
    pub fn everything_sent(&self) -> String {
        let store = self.store();
        let mut all = String::new();
        for r in &store.received {
            all.push_str(&r.body);
            all.push('\n');
        }
        for i in store.issues.values() {
            all.push_str(&format!("{}\n{}\n", i.title, i.body));
        }
        for c in &store.comments {
            all.push_str(&c.body);
            all.push('\n');
        }
        all
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store {
    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// What one request gets: a status, headers, a JSON body, and a delay.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    delay: Option<Duration>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body,
            delay: None,
        }
    }

    fn error(status: u16, message: &str) -> Answer {
        Answer::json(
            status,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        )
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let (path, query) = path_and_query
        .split_once('?')
        .map(|(p, q)| (p.to_string(), q.to_string()))
        .unwrap_or((path_and_query.clone(), String::new()));
    let path = path.strip_prefix(&shared.prefix).map(String::from);

    // Listings held together, so concurrent jobs see the same state.
    let op_guess = path
        .as_deref()
        .and_then(|p| spec().route(&method, p))
        .map(|(op, _)| op.id.clone());
    if op_guess.as_deref() == Some("issues/list-for-repo") {
        let barrier = {
            let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            match &mut store.hold {
                Some((barrier, left)) if *left > 0 => {
                    *left -= 1;
                    Some(barrier.clone())
                }
                _ => None,
            }
        };
        if let Some(barrier) = barrier {
            let _ = tokio::time::timeout(Duration::from_secs(20), barrier.wait()).await;
        }
    }

    let answer = {
        let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        let (answer, operation) = match &path {
            None => (Answer::error(404, "Not Found"), None),
            Some(path) => answer(&shared, &mut store, &method, path, &query, &headers, &body),
        };
        store.received.push(Received {
            method: method.clone(),
            path: path.clone().unwrap_or_else(|| path_and_query.clone()),
            query: query.clone(),
            operation: operation.clone(),
            status: answer.status,
            body: body.clone(),
        });
        answer
    };
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-github-media-type", "github.v3; format=json");
    for (k, v) in &answer.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    let text = if answer.status == 204 {
        String::new()
    } else {
        answer.body.to_string()
    };
    Ok(response
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

/// Who a token is: login, and whether it may write and read `/user`.
struct Caller {
    login: &'static str,
    writes: bool,
    reads_user: bool,
}

fn caller(headers: &hyper::HeaderMap) -> Result<Caller, Answer> {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Answer::error(401, "Requires authentication"));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or_default();
    match token {
        TOKEN => Ok(Caller {
            login: USER,
            writes: true,
            reads_user: true,
        }),
        ACTIONS_TOKEN => Ok(Caller {
            login: ACTIONS_BOT,
            writes: true,
            reads_user: false,
        }),
        READ_ONLY_TOKEN => Ok(Caller {
            login: ACTIONS_BOT,
            writes: false,
            reads_user: false,
        }),
        _ => Err(Answer::error(401, "Bad credentials")),
    }
}

/// Checks a request against the description, then answers it.
fn answer(
    shared: &Shared,
    store: &mut Store,
    method: &str,
    path: &str,
    query: &str,
    headers: &hyper::HeaderMap,
    body: &str,
) -> (Answer, Option<String>) {
    let Some((op, params)) = spec().route(method, path) else {
        return (Answer::error(404, "Not Found"), None);
    };
    let id = op.id.clone();
    let fail = |a: Answer| (a, Some(id.clone()));
    let caller = match caller(headers) {
        Ok(c) => c,
        Err(a) => return fail(a),
    };
    // Parameters: known, well-typed, required ones present.
    let query_pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect();
    for (k, v) in &query_pairs {
        let Some(param) = op
            .parameters
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == k.as_str())
        else {
            return fail(Answer::error(
                400,
                &format!("unknown query parameter `{k}` for {id}"),
            ));
        };
        if let Err(e) = check_parameter(param, v) {
            return fail(Answer::error(422, &e));
        }
    }
    for param in &op.parameters {
        let name = param["name"].as_str().unwrap_or_default();
        match param["in"].as_str() {
            Some("path") => {
                if let Some(v) = params.get(name) {
                    if let Err(e) = check_parameter(param, v) {
                        return fail(Answer::error(422, &e));
                    }
                }
            }
            Some("query")
                if param["required"] == true && !query_pairs.iter().any(|(k, _)| k == name) =>
            {
                return fail(Answer::error(
                    422,
                    &format!("missing required query parameter `{name}`"),
                ));
            }
            _ => {}
        }
    }
    // The body: JSON, matching the schema, only where one is expected.
    let json_body = match &op.body {
        None if !body.trim().is_empty() => {
            return fail(Answer::error(400, &format!("{id} takes no request body")));
        }
        None => Value::Null,
        Some((required, validator)) => {
            if body.trim().is_empty() {
                if *required {
                    return fail(Answer::error(400, "Requires a request body"));
                }
                Value::Null
            } else {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !content_type.starts_with("application/json") {
                    return fail(Answer::error(
                        415,
                        "Unsupported Media Type: send application/json",
                    ));
                }
                let Ok(value) = serde_json::from_str::<Value>(body) else {
                    return fail(Answer::error(400, "Problems parsing JSON"));
                };
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| format!("{e} at `{}`", e.instance_path()))
                    .collect();
                if !errors.is_empty() {
                    return fail(Answer::error(
                        422,
                        &format!("Invalid request.\n\n{}", errors.join("\n")),
                    ));
                }
                value
            }
        }
    };
    if params.get("owner").map(String::as_str) != Some(OWNER) && params.contains_key("owner")
        || params.get("repo").map(String::as_str) != Some(REPO) && params.contains_key("repo")
    {
        return fail(Answer::error(404, "Not Found"));
    }
    if method != "GET" && !caller.writes {
        return fail(Answer::error(403, "Resource not accessible by integration"));
    }
    // Faults, in the order injected.
    let mut after: Option<Fault> = None;
    if let Some(i) = store
        .faults
        .iter_mut()
        .position(|f| f.op() == id && *f.times() > 0)
    {
        let fault = &mut store.faults[i];
        *fault.times() -= 1;
        match fault.clone() {
            Fault::Status { status, .. } => {
                return fail(Answer::error(status, "Server Error"));
            }
            Fault::SecondaryRateLimit { retry_after, .. } => {
                return fail(
                    Answer::error(
                        403,
                        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    )
                    .header("retry-after", retry_after.to_string()),
                );
            }
            Fault::RateLimitReset { reset_in, .. } => {
                let reset = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + reset_in;
                return fail(
                    Answer::error(403, "API rate limit exceeded for user.")
                        .header("x-ratelimit-limit", "5000")
                        .header("x-ratelimit-remaining", "0")
                        .header("x-ratelimit-reset", reset.to_string()),
                );
            }
            Fault::TooLong { .. } => return fail(too_long("IssueComment")),
            other => after = Some(other),
        }
    }
    let mut answer = work(
        shared,
        store,
        &id,
        &params,
        &query_pairs,
        &json_body,
        &caller,
    );
    match after {
        Some(Fault::StatusAfterWork { status, .. }) if answer.status < 300 => {
            answer = Answer::error(status, "Server Error");
        }
        Some(Fault::Slow { delay, .. }) => answer.delay = Some(delay),
        _ => {}
    }
    (answer, Some(id))
}

fn too_long(resource: &str) -> Answer {
    Answer::json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": "custom", "field": "body",
                        "message": "body is too long (maximum is 65536 characters)"}],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422"
        }),
    )
}

/// GitHub's refusal of a request whose body is over the limit, if it is.
fn over_limit(body: &Value, resource: &str) -> Option<Answer> {
    let text = body["body"].as_str()?;
    (text.chars().count() > MAX_BODY).then(|| too_long(resource))
}

/// Does what the operation does, on the store.
fn work(
    shared: &Shared,
    store: &mut Store,
    op: &str,
    params: &BTreeMap<String, String>,
    query: &[(String, String)],
    body: &Value,
    caller: &Caller,
) -> Answer {
    let number = |name: &str| {
        params
            .get(name)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match op {
        "users/get-authenticated" => {
            if !caller.reads_user {
                return Answer::error(403, "Resource not accessible by integration");
            }
            let mut user = spec().example("private-user-response-with-public-profile-information");
            user["login"] = json!(caller.login);
            Answer::json(200, user)
        }
        "issues/list-for-repo" => {
            let state = q("state").unwrap_or("open");
            let labels: Vec<&str> = q("labels")
                .map(|l| l.split(',').collect())
                .unwrap_or_default();
            let mut found: Vec<&Issue> = store
                .issues
                .values()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| {
                    labels
                        .iter()
                        .all(|l| i.labels.iter().any(|il| il.eq_ignore_ascii_case(l)))
                })
                .collect();
            if q("direction").unwrap_or("desc") == "desc" {
                found.reverse();
            }
            let items: Vec<Value> = found.iter().map(|i| issue_json(shared, store, i)).collect();
            page(
                shared,
                &format!("/repos/{OWNER}/{REPO}/issues"),
                query,
                items,
            )
        }
        "issues/create" => {
            if let Some(refused) = over_limit(body, "Issue") {
                return refused;
            }
            let text = body["body"].as_str().unwrap_or_default();
            let labels: Vec<String> = body["labels"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for l in &labels {
                if !store.labels.iter().any(|x| x.name.eq_ignore_ascii_case(l)) {
                    store.labels.push(Label {
                        name: l.clone(),
                        color: "ededed".into(),
                        description: None,
                    });
                }
            }
            let number = store.next_number;
            store.next_number += 1;
            let id = store.new_id();
            let issue = Issue {
                id,
                number,
                title: body["title"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| body["title"].to_string()),
                body: text.to_string(),
                state: "open".into(),
                state_reason: None,
                labels,
                assignees: body["assignees"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                author: caller.login.into(),
                is_pull_request: false,
                duplicate_of: None,
            };
            let json = issue_json(shared, store, &issue);
            store.issues.insert(number, issue);
            Answer::json(201, json)
        }
        "issues/get" => match store.issues.get(&number("issue_number")) {
            Some(i) => Answer::json(200, issue_json(shared, store, i)),
            None => Answer::error(404, "Not Found"),
        },
        "issues/update" => {
            let n = number("issue_number");
            if !store.issues.contains_key(&n) {
                return Answer::error(404, "Not Found");
            }
            if let Some(refused) = over_limit(body, "Issue") {
                return refused;
            }
            let duplicate_of = match body["duplicate_issue_id"].as_u64() {
                Some(id) => match store.issues.values().find(|i| i.id == id) {
                    Some(i) => Some(i.number),
                    None => return Answer::error(422, "duplicate_issue_id names no issue"),
                },
                None => None,
            };
            let issue = store.issues.get_mut(&n).expect("checked");
            if let Some(t) = body["title"].as_str() {
                issue.title = t.into();
            }
            if let Some(b) = body["body"].as_str() {
                issue.body = b.into();
            }
            if let Some(s) = body["state"].as_str() {
                issue.state = s.into();
                issue.state_reason = body["state_reason"].as_str().map(String::from);
                if body["state_reason"] == "duplicate" {
                    issue.duplicate_of = duplicate_of;
                }
            }
            if let Some(ls) = body["labels"].as_array() {
                issue.labels = ls
                    .iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect();
            }
            let issue = issue.clone();
            Answer::json(200, issue_json(shared, store, &issue))
        }
        "issues/list-comments" => {
            let n = number("issue_number");
            if !store.issues.contains_key(&n) {
                return Answer::error(404, "Not Found");
            }
            let items: Vec<Value> = store
                .comments
                .iter()
                .filter(|c| c.issue == n)
                .map(|c| comment_json(shared, c))
                .collect();
            page(
                shared,
                &format!("/repos/{OWNER}/{REPO}/issues/{n}/comments"),
                query,
                items,
            )
        }
        "issues/create-comment" => {
            let n = number("issue_number");
            if !store.issues.contains_key(&n) {
                return Answer::error(404, "Not Found");
            }
            let text = body["body"].as_str().unwrap_or_default();
            if text.chars().count() > MAX_BODY {
                return too_long("IssueComment");
            }
            let id = store.new_id();
            let comment = Comment {
                id,
                issue: n,
                body: text.into(),
                author: caller.login.into(),
                edits: 0,
            };
            let json = comment_json(shared, &comment);
            store.comments.push(comment);
            Answer::json(201, json)
        }
        "issues/update-comment" => {
            let id = number("comment_id");
            let text = body["body"].as_str().unwrap_or_default();
            if text.chars().count() > MAX_BODY {
                return too_long("IssueComment");
            }
            match store.comments.iter_mut().find(|c| c.id == id) {
                Some(c) => {
                    c.body = text.into();
                    c.edits += 1;
                    let c = c.clone();
                    Answer::json(200, comment_json(shared, &c))
                }
                None => Answer::error(404, "Not Found"),
            }
        }
        "issues/delete-comment" => {
            let id = number("comment_id");
            let before = store.comments.len();
            store.comments.retain(|c| c.id != id);
            if store.comments.len() == before {
                Answer::error(404, "Not Found")
            } else {
                Answer::json(204, Value::Null)
            }
        }
        "issues/get-label" => {
            let name = params.get("name").cloned().unwrap_or_default();
            match store
                .labels
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&name))
            {
                Some(l) => Answer::json(200, label_json(shared, l)),
                None => Answer::error(404, "Not Found"),
            }
        }
        "issues/create-label" => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            if store
                .labels
                .iter()
                .any(|l| l.name.eq_ignore_ascii_case(&name))
            {
                return Answer::json(
                    422,
                    json!({"message": "Validation Failed",
                           "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}],
                           "documentation_url": "https://docs.github.com/rest", "status": "422"}),
                );
            }
            let label = Label {
                name,
                color: body["color"].as_str().unwrap_or("ededed").into(),
                description: body["description"].as_str().map(String::from),
            };
            let json = label_json(shared, &label);
            store.labels.push(label);
            Answer::json(201, json)
        }
        "pulls/list" => {
            let state = q("state").unwrap_or("open");
            let head = q("head");
            let base = q("base");
            let mut found: Vec<Value> = store
                .pulls
                .values()
                .filter(|p| state == "all" || store.issues[&p.number].state == state)
                .filter(|p| head.is_none_or(|h| h == format!("{OWNER}:{}", p.head)))
                .filter(|p| base.is_none_or(|b| b == p.base))
                .map(|p| pull_json(shared, store, p))
                .collect();
            if q("direction").unwrap_or("desc") == "desc" {
                found.reverse();
            }
            page(
                shared,
                &format!("/repos/{OWNER}/{REPO}/pulls"),
                query,
                found,
            )
        }
        "pulls/create" => {
            if let Some(refused) = over_limit(body, "PullRequest") {
                return refused;
            }
            let text = body["body"].as_str().unwrap_or_default();
            let (Some(title), Some(head), Some(base)) = (
                body["title"].as_str(),
                body["head"].as_str(),
                body["base"].as_str(),
            ) else {
                return Answer::error(422, "title, head and base are required");
            };
            let head = head.strip_prefix(&format!("{OWNER}:")).unwrap_or(head);
            for (field, branch) in [("head", head), ("base", base)] {
                if store.branches.is_some() && branch_commit(store, branch).is_none() {
                    return invalid("PullRequest", field);
                }
            }
            let taken = store.pulls.values().any(|p| {
                p.head == head && p.base == base && store.issues[&p.number].state == "open"
            });
            if taken {
                return Answer::json(
                    422,
                    json!({"message": "Validation Failed",
                           "errors": [{"resource": "PullRequest", "code": "custom",
                                       "message": format!("A pull request already exists for {OWNER}:{head}.")}],
                           "documentation_url": "https://docs.github.com/rest", "status": "422"}),
                );
            }
            let number = store.next_number;
            store.next_number += 1;
            let id = store.new_id();
            store.issues.insert(
                number,
                Issue {
                    id,
                    number,
                    title: title.to_string(),
                    body: text.to_string(),
                    state: "open".into(),
                    state_reason: None,
                    labels: Vec::new(),
                    assignees: Vec::new(),
                    author: caller.login.into(),
                    is_pull_request: true,
                    duplicate_of: None,
                },
            );
            let pull = Pull {
                number,
                head: head.to_string(),
                base: base.to_string(),
            };
            store.pulls.insert(number, pull.clone());
            Answer::json(201, pull_json(shared, store, &pull))
        }
        "pulls/get" => match store.pulls.get(&number("pull_number")) {
            Some(p) => Answer::json(200, pull_json(shared, store, p)),
            None => Answer::error(404, "Not Found"),
        },
        "pulls/update" => {
            let n = number("pull_number");
            if !store.pulls.contains_key(&n) {
                return Answer::error(404, "Not Found");
            }
            if let Some(refused) = over_limit(body, "PullRequest") {
                return refused;
            }
            if let Some(base) = body["base"].as_str() {
                if store.branches.is_some() && branch_commit(store, base).is_none() {
                    return invalid("PullRequest", "base");
                }
                store.pulls.get_mut(&n).expect("checked").base = base.to_string();
            }
            let issue = store
                .issues
                .get_mut(&n)
                .expect("a pull request is an issue");
            if let Some(t) = body["title"].as_str() {
                issue.title = t.into();
            }
            if let Some(b) = body["body"].as_str() {
                issue.body = b.into();
            }
            if let Some(s) = body["state"].as_str() {
                issue.state = s.into();
            }
            Answer::json(200, pull_json(shared, store, &store.pulls[&n]))
        }
        other => Answer::error(501, &format!("the fake GitHub does not implement {other}")),
    }
}

/// 422 Validation Failed for an invalid field, as GitHub words it.
fn invalid(resource: &str, field: &str) -> Answer {
    Answer::json(
        422,
        json!({"message": "Validation Failed",
               "errors": [{"resource": resource, "field": field, "code": "invalid"}],
               "documentation_url": "https://docs.github.com/rest", "status": "422"}),
    )
}

/// The commit branch `name` points at in the repository standing for the
/// repository's branches, if both exist.
fn branch_commit(store: &Store, name: &str) -> Option<String> {
    let dir = store.branches.as_ref()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{name}^{{commit}}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One page of a listing, with GitHub's `Link` header.
fn page(shared: &Shared, path: &str, query: &[(String, String)], items: Vec<Value>) -> Answer {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("per_page").unwrap_or(30).clamp(1, 100);
    let page = get("page").unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut answer = Answer::json(200, Value::Array(shown));
    if page < last {
        let link = |p: usize| {
            let mut q: Vec<String> = query
                .iter()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            q.push(format!("page={p}"));
            format!("<{}{path}?{}>", shared.base, q.join("&"))
        };
        answer = answer.header(
            "link",
            format!(
                "{}; rel=\"next\", {}; rel=\"last\"",
                link(page + 1),
                link(last)
            ),
        );
    }
    answer
}

fn user_json(login: &str) -> Value {
    let mut user = spec().example("issue")["user"].clone();
    user["login"] = json!(login);
    user["type"] = json!(if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    });
    user["url"] = json!(format!("https://api.github.com/users/{login}"));
    user["html_url"] = json!(format!("https://github.com/{login}"));
    user
}

fn label_json(shared: &Shared, l: &Label) -> Value {
    let mut v = spec().example("label");
    v["name"] = json!(l.name);
    v["color"] = json!(l.color);
    v["description"] = json!(l.description);
    v["default"] = json!(false);
    v["url"] = json!(format!(
        "{}/repos/{OWNER}/{REPO}/labels/{}",
        shared.base, l.name
    ));
    v
}

fn issue_json(shared: &Shared, store: &Store, i: &Issue) -> Value {
    let mut v = spec().example("issue");
    let api = format!("{}/repos/{OWNER}/{REPO}/issues/{}", shared.base, i.number);
    v["id"] = json!(i.id);
    v["number"] = json!(i.number);
    v["title"] = json!(i.title);
    v["body"] = json!(i.body);
    v["state"] = json!(i.state);
    v["state_reason"] = json!(i.state_reason);
    v["url"] = json!(api);
    v["comments_url"] = json!(format!("{api}/comments"));
    v["events_url"] = json!(format!("{api}/events"));
    v["labels_url"] = json!(format!("{api}/labels{{/name}}"));
    v["repository_url"] = json!(format!("{}/repos/{OWNER}/{REPO}", shared.base));
    v["html_url"] = json!(format!(
        "https://github.com/{OWNER}/{REPO}/issues/{}",
        i.number
    ));
    v["user"] = user_json(&i.author);
    v["labels"] = Value::Array(
        i.labels
            .iter()
            .map(|name| {
                let l = store
                    .labels
                    .iter()
                    .find(|l| &l.name == name)
                    .cloned()
                    .unwrap_or(Label {
                        name: name.clone(),
                        color: "ededed".into(),
                        description: None,
                    });
                label_json(shared, &l)
            })
            .collect(),
    );
    v["assignees"] = Value::Array(i.assignees.iter().map(|a| user_json(a)).collect());
    v["assignee"] = i.assignees.first().map_or(Value::Null, |a| user_json(a));
    v["milestone"] = Value::Null;
    v["comments"] = json!(
        store
            .comments
            .iter()
            .filter(|c| c.issue == i.number)
            .count()
    );
    v["closed_at"] = if i.state == "closed" {
        json!("2026-11-22T10:00:00Z")
    } else {
        Value::Null
    };
    v["closed_by"] = Value::Null;
    if i.is_pull_request {
        v["pull_request"] = json!({
            "url": format!("{}/repos/{OWNER}/{REPO}/pulls/{}", shared.base, i.number),
            "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{}", i.number),
            "diff_url": format!("https://github.com/{OWNER}/{REPO}/pull/{}.diff", i.number),
            "patch_url": format!("https://github.com/{OWNER}/{REPO}/pull/{}.patch", i.number),
        });
    } else if let Some(map) = v.as_object_mut() {
        map.remove("pull_request");
    }
    v
}

fn pull_json(shared: &Shared, store: &Store, p: &Pull) -> Value {
    let issue = &store.issues[&p.number];
    let mut v = spec().example("pull-request");
    let api = format!("{}/repos/{OWNER}/{REPO}", shared.base);
    let html = format!("https://github.com/{OWNER}/{REPO}/pull/{}", p.number);
    v["id"] = json!(issue.id);
    v["number"] = json!(p.number);
    v["title"] = json!(issue.title);
    v["body"] = json!(issue.body);
    v["state"] = json!(issue.state);
    v["locked"] = json!(false);
    v["active_lock_reason"] = Value::Null;
    v["user"] = user_json(&issue.author);
    v["url"] = json!(format!("{api}/pulls/{}", p.number));
    v["html_url"] = json!(html);
    v["diff_url"] = json!(format!("{html}.diff"));
    v["patch_url"] = json!(format!("{html}.patch"));
    v["issue_url"] = json!(format!("{api}/issues/{}", p.number));
    v["comments_url"] = json!(format!("{api}/issues/{}/comments", p.number));
    v["closed_at"] = Value::Null;
    v["merged_at"] = Value::Null;
    v["merged"] = json!(false);
    v["merged_by"] = Value::Null;
    v["labels"] = json!([]);
    v["assignees"] = json!([]);
    v["assignee"] = Value::Null;
    v["milestone"] = Value::Null;
    for (side, branch) in [("head", &p.head), ("base", &p.base)] {
        let end = &mut v[side];
        end["ref"] = json!(branch);
        end["label"] = json!(format!("{OWNER}:{branch}"));
        if let Some(sha) = branch_commit(store, branch) {
            end["sha"] = json!(sha);
        }
        end["user"] = user_json(OWNER);
        end["repo"]["name"] = json!(REPO);
        end["repo"]["full_name"] = json!(format!("{OWNER}/{REPO}"));
        end["repo"]["owner"] = user_json(OWNER);
        end["repo"]["url"] = json!(api);
        end["repo"]["html_url"] = json!(format!("https://github.com/{OWNER}/{REPO}"));
        end["repo"]["fork"] = json!(false);
    }
    v
}

fn comment_json(shared: &Shared, c: &Comment) -> Value {
    let mut v = spec().example("issue-comment");
    v["id"] = json!(c.id);
    v["body"] = json!(c.body);
    v["user"] = user_json(&c.author);
    v["url"] = json!(format!(
        "{}/repos/{OWNER}/{REPO}/issues/comments/{}",
        shared.base, c.id
    ));
    v["issue_url"] = json!(format!(
        "{}/repos/{OWNER}/{REPO}/issues/{}",
        shared.base, c.issue
    ));
    v["html_url"] = json!(format!(
        "https://github.com/{OWNER}/{REPO}/issues/{}#issuecomment-{}",
        c.issue, c.id
    ));
    v
}
