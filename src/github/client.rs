//! The GitHub API client: octocrab for the transport (base URL, token,
//! timeouts, error decoding), with our own retry and pacing policy around it.
//!
//! octocrab's own retries are not compiled in: they resend POSTs at once, so
//! a create that GitHub carried out but answered with a 502 would be made
//! twice. Instead:
//!
//! - GET and PATCH are retried on 5xx and transport errors, with exponential
//!   backoff and jitter;
//! - any request refused by a rate limit (403/429 with `retry-after`, or
//!   `x-ratelimit-remaining: 0` with `x-ratelimit-reset`) waits as GitHub asks
//!   and is sent again: GitHub did nothing with it, so this is safe for POST;
//! - a POST that failed in a way that leaves its outcome unknown is never
//!   resent blindly: [`Client::create_once`] looks for what it would have
//!   created, by its marker, and creates only if it is still absent;
//! - mutations are spaced ([`Settings::spacing`], 1 s by default) to stay
//!   under GitHub's 80 content-creating requests a minute.
//!
//! Responses are read into our own small types rather than octocrab's
//! models: those require fields that GitHub (and GitHub Enterprise Server)
//! sometimes leave out, and they change between patch releases.
//!
//! Durations can be set through the environment, for slow networks and for
//! tests: `ORCHESTRATOR_GITHUB_TIMEOUT` (read timeout, 30s),
//! `ORCHESTRATOR_GITHUB_RETRY_DELAY` (first backoff, 1s),
//! `ORCHESTRATOR_GITHUB_ATTEMPTS` (tries per request, 4),
//! `ORCHESTRATOR_GITHUB_SPACING` (between mutations, 1s) and
//! `ORCHESTRATOR_GITHUB_MAX_WAIT` (longest rate-limit wait, 2m).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use octocrab::{Octocrab, Page};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use super::body::{MAX_BODY_CHARS, fit};
use super::{ACTIONS_BOT, DEFAULT_API_URL, Error, Repo};
use crate::redact::Redactor;

/// Follows at most this many pages of one listing (10,000 items at 100 a
/// page), so a server that always links a next page cannot loop us forever.
const MAX_PAGES: usize = 100;

/// How the client talks to GitHub.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API's base URL: `https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for each read of an answer.
    pub read_timeout: Duration,
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The first backoff; later ones double, with jitter.
    pub retry_delay: Duration,
    /// The longest a rate limit may make us wait; a longer wait fails the
    /// request instead of holding the job.
    pub max_wait: Duration,
    /// The least time between two mutations.
    pub spacing: Duration,
    /// The run's link, for the note on a body cut to fit.
    pub run_link: Option<String>,
}

impl Settings {
    /// The settings from `GITHUB_API_URL` and the `ORCHESTRATOR_GITHUB_*`
    /// variables, with defaults for what is unset.
    pub fn from_env() -> Result<Settings, Error> {
        let api_url = std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let read_timeout = duration_var("ORCHESTRATOR_GITHUB_TIMEOUT", Duration::from_secs(30))?;
        let attempts = match std::env::var("ORCHESTRATOR_GITHUB_ATTEMPTS") {
            Ok(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Error::setup(
                        format!("ORCHESTRATOR_GITHUB_ATTEMPTS is `{text}`, not a number of tries"),
                        "set it to 1 or more, or unset it for the default of 4",
                    )
                })?,
            Err(_) => 4,
        };
        Ok(Settings {
            api_url: api_url.trim().trim_end_matches('/').to_string(),
            connect_timeout: read_timeout.min(Duration::from_secs(10)),
            read_timeout,
            attempts,
            retry_delay: duration_var("ORCHESTRATOR_GITHUB_RETRY_DELAY", Duration::from_secs(1))?,
            max_wait: duration_var("ORCHESTRATOR_GITHUB_MAX_WAIT", Duration::from_secs(120))?,
            spacing: duration_var("ORCHESTRATOR_GITHUB_SPACING", Duration::from_secs(1))?,
            run_link: None,
        })
    }
}

fn duration_var(name: &str, default: Duration) -> Result<Duration, Error> {
    match std::env::var(name) {
        Ok(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            Error::setup(
                format!("{name} is `{text}`, not a duration ({e})"),
                format!("write it with a unit, e.g. `500ms` or `2s`, or unset {name}"),
            )
        }),
        Err(_) => Ok(default),
    }
}

/// A GitHub API client for one repository.
pub struct Client {
    gh: Octocrab,
    repo: Repo,
    settings: Settings,
    redactor: Redactor,
    last_mutation: Mutex<Option<Instant>>,
}

/// Who a request is, as the answer to `GET /user` says.
#[derive(Deserialize)]
struct User {
    login: String,
}

impl Client {
    /// A client for `repo`, authenticated with `token`. Every title and body
    /// it sends goes through `redactor` first. Must be called inside a tokio
    /// runtime.
    pub fn new(
        settings: Settings,
        token: &str,
        repo: Repo,
        redactor: Redactor,
    ) -> Result<Client, Error> {
        let bad_url = |detail: String| {
            Error::setup(
                format!(
                    "GITHUB_API_URL `{}` is not a usable URL: {detail}",
                    settings.api_url
                ),
                "set it to https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
            )
        };
        if !(settings.api_url.starts_with("https://") || settings.api_url.starts_with("http://")) {
            return Err(bad_url("it must start with https://".into()));
        }
        let gh = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| bad_url(chain(&e)))?
            .personal_token(token.to_string())
            .set_connect_timeout(Some(settings.connect_timeout))
            .set_read_timeout(Some(settings.read_timeout))
            .set_write_timeout(Some(settings.read_timeout))
            .build()
            .map_err(|e| {
                Error::setup(
                    format!("cannot set up the GitHub client: {}", chain(&e)),
                    "the client needs the system's CA certificates (the ca-certificates package)",
                )
            })?;
        let mut redactor = redactor;
        redactor.add_secrets([token.to_string()]);
        Ok(Client {
            gh,
            repo,
            settings,
            redactor,
            last_mutation: Mutex::new(None),
        })
    }

    /// The repository this client works on.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// `/repos/{owner}/{repo}` followed by `tail`.
    pub fn repo_route(&self, tail: &str) -> String {
        format!("/repos/{}/{}{tail}", self.repo.owner, self.repo.name)
    }

    /// The login the token acts as. A workflow's `GITHUB_TOKEN` may not ask
    /// (403), and writes as `github-actions[bot]`.
    pub async fn identity(&self) -> Result<String, Error> {
        match self.get::<User>("/user").await {
            Ok(user) => Ok(user.login),
            Err(Error::Api { status: 403, .. }) => Ok(ACTIONS_BOT.to_string()),
            Err(e) => Err(e),
        }
    }

    /// `GET route`, retried on 5xx, transport errors and rate limits.
    pub async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, Error> {
        self.call("GET", route, true, || self.gh.get::<T, _, ()>(route, None))
            .await
    }

    /// Every item of a paginated listing, 100 a page, following the `Link`
    /// header's `next`.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        let mut query: Vec<(&str, &str)> = query.to_vec();
        query.push(("per_page", "100"));
        let mut page: Page<T> = self
            .call("GET", route, true, || {
                self.gh.get::<Page<T>, _, _>(route, Some(&query))
            })
            .await?;
        let mut items = page.take_items();
        for _ in 1..MAX_PAGES {
            let Some(next) = page.next.take() else {
                break;
            };
            let next = next.to_string();
            page = self
                .call("GET", route, true, || {
                    self.gh.get::<Page<T>, _, ()>(next.as_str(), None)
                })
                .await?;
            items.append(&mut page.take_items());
        }
        Ok(items)
    }

    /// `POST route` with a JSON body. Never resent after an answer that
    /// leaves its outcome unknown; see [`Client::create_once`].
    pub async fn post<T: DeserializeOwned>(&self, route: &str, body: Value) -> Result<T, Error> {
        self.send_body("POST", route, body, false).await
    }

    /// `PATCH route` with a JSON body, retried like a GET: sending the same
    /// change twice leaves the same result.
    pub async fn patch<T: DeserializeOwned>(&self, route: &str, body: Value) -> Result<T, Error> {
        self.send_body("PATCH", route, body, true).await
    }

    /// Creates something exactly once: `create` is tried, and when it fails
    /// in a way that leaves its outcome unknown (5xx, no answer), `look`
    /// searches for what it would have created (by its marker) before
    /// trying again. Returns what was found or created, and whether it was
    /// created by this call.
    pub async fn create_once<T, L, LF, C, CF>(&self, look: L, create: C) -> Result<(T, bool), Error>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<Option<T>, Error>>,
        C: Fn() -> CF,
        CF: Future<Output = Result<T, Error>>,
    {
        let mut backoff = self.backoff();
        let mut tries = 0;
        loop {
            tries += 1;
            match create().await {
                Ok(made) => return Ok((made, true)),
                Err(e) if e.outcome_unknown() && tries < self.settings.attempts => {
                    let delay = backoff.next().unwrap_or(self.settings.retry_delay);
                    eprintln!(
                        "warning: {e}; it may have been created anyway: looking again in {}",
                        humantime::format_duration(round(delay))
                    );
                    tokio::time::sleep(delay).await;
                    if let Some(found) = look().await? {
                        return Ok((found, false));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A random pause of up to one backoff step, so that jobs reporting the
    /// same thing at the same moment look again at different times.
    pub async fn jitter(&self) {
        let max = self.settings.retry_delay.as_millis() as u64;
        let pause = Duration::from_millis(fastrand::u64(0..=max));
        tokio::time::sleep(pause).await;
    }

    async fn send_body<T: DeserializeOwned>(
        &self,
        method: &str,
        route: &str,
        mut body: Value,
        idempotent: bool,
    ) -> Result<T, Error> {
        self.prepare(&mut body, MAX_BODY_CHARS);
        let result = self.send_once(method, route, &body, idempotent).await;
        match result {
            // Our count and GitHub's disagreed (it may count differently for
            // some scripts): a 422 created nothing, so cut harder and resend.
            Err(e) if e.is_too_long() => {
                let chars = body["body"].as_str().map_or(0, |b| b.chars().count());
                eprintln!("warning: {e}; cutting the text to half and sending it again");
                self.prepare(&mut body, chars / 2);
                self.send_once(method, route, &body, idempotent).await
            }
            other => other,
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: &str,
        route: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<T, Error> {
        match method {
            "PATCH" => {
                self.call(method, route, idempotent, || {
                    self.gh.patch::<T, _, _>(route, Some(body))
                })
                .await
            }
            _ => {
                self.call(method, route, idempotent, || {
                    self.gh.post::<_, T>(route, Some(body))
                })
                .await
            }
        }
    }

    /// A body as it will be sent: redacted, and cut to GitHub's limit.
    /// Preparing it again leaves it as it is, so a comment can be compared
    /// with what GitHub has.
    pub fn prepare_text(&self, text: &str) -> String {
        self.prepare_within(text, MAX_BODY_CHARS)
    }

    /// A title as it will be sent: redacted.
    pub fn prepare_title(&self, title: &str) -> String {
        self.redactor.redact(title).into_owned()
    }

    fn prepare_within(&self, text: &str, limit: usize) -> String {
        fit(
            &self.redact_around_markers(text),
            limit,
            self.settings.run_link.as_deref(),
        )
    }

    /// Redacts everything but our own marker lines: they hold only names we
    /// validated, and a marker changed by redaction (`key=config-diff` looks
    /// like a secret) would never be found again.
    fn redact_around_markers(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut block = String::new();
        for line in text.split_inclusive('\n') {
            if is_marker(line) {
                out.push_str(&self.redactor.redact(&block));
                block.clear();
                out.push_str(line);
            } else {
                block.push_str(line);
            }
        }
        out.push_str(&self.redactor.redact(&block));
        out
    }

    /// Redacts the title and body, and cuts the body to `limit` characters.
    fn prepare(&self, body: &mut Value, limit: usize) {
        if let Some(Value::String(text)) = body.get_mut("title") {
            *text = self.prepare_title(text);
        }
        if let Some(Value::String(text)) = body.get_mut("body") {
            *text = self.prepare_within(text, limit);
        }
    }

    /// Sends one request through the policy: pacing for mutations, retries
    /// for what may be retried, and errors made readable.
    async fn call<T, F, Fut>(
        &self,
        method: &str,
        route: &str,
        idempotent: bool,
        op: F,
    ) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = octocrab::Result<T>>,
    {
        let request = format!("{method} {}", route.split('?').next().unwrap_or(route));
        let mut backoff = self.backoff();
        let mut tries = 0;
        loop {
            if method != "GET" {
                self.space().await;
            }
            tries += 1;
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let (error, retry) = classify(&request, error, idempotent);
            let Some(at_least) = retry else {
                return Err(error);
            };
            if tries >= self.settings.attempts {
                return Err(error);
            }
            let delay = backoff
                .next()
                .unwrap_or(self.settings.retry_delay)
                .max(at_least);
            if delay > self.settings.max_wait {
                return Err(Error::Api {
                    request,
                    status: error.status().unwrap_or(403),
                    message: format!(
                        "rate limited, and GitHub asks to wait {}, longer than the {} allowed",
                        humantime::format_duration(round(at_least)),
                        humantime::format_duration(self.settings.max_wait)
                    ),
                    hint: Some(
                        "run again later, or raise ORCHESTRATOR_GITHUB_MAX_WAIT".to_string(),
                    ),
                });
            }
            eprintln!(
                "warning: {error}; trying again in {}",
                humantime::format_duration(round(delay))
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_delay)
            .with_max_delay(self.settings.retry_delay * 16)
            .with_max_times(self.settings.attempts as usize)
            .with_jitter()
            .build()
    }

    /// Waits until the last mutation is `spacing` ago. Holding the lock
    /// while waiting keeps this process's mutations in single file.
    async fn space(&self) {
        let mut last = self.last_mutation.lock().await;
        if let Some(at) = *last {
            let ready = at + self.settings.spacing;
            let now = Instant::now();
            if ready > now {
                tokio::time::sleep(ready - now).await;
            }
        }
        *last = Some(Instant::now());
    }
}

/// Whether a line is one of our hidden markers, `<!-- orchestrator:... -->`.
fn is_marker(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("<!-- orchestrator:")
        && line.ends_with("-->")
        && line.matches("-->").count() == 1
}

/// Durations printed to the millisecond.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Our error for an octocrab error, and whether (after how long, at least)
/// the request may be sent again.
fn classify(request: &str, error: octocrab::Error, idempotent: bool) -> (Error, Option<Duration>) {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let wait = rate_limit_wait(&source);
            let mut message = source.message.clone();
            for e in source.errors.iter().flatten() {
                let detail = e["message"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| {
                        e["code"]
                            .as_str()
                            .map(|c| format!("{c} {}", e["field"].as_str().unwrap_or_default()))
                    })
                    .unwrap_or_else(|| e.to_string());
                message.push_str(&format!("; {}", detail.trim()));
            }
            let error = Error::Api {
                request: request.to_string(),
                status,
                hint: hint(status, &message, wait.is_some()),
                message,
            };
            let retry = match wait {
                Some(wait) => Some(wait),
                None if status >= 500 && idempotent => Some(Duration::ZERO),
                None => None,
            };
            (error, retry)
        }
        e @ (octocrab::Error::Serde { .. } | octocrab::Error::Json { .. }) => (
            Error::Decode {
                request: request.to_string(),
                detail: chain(&e),
            },
            None,
        ),
        e => (
            Error::Transport {
                request: request.to_string(),
                detail: chain(&e),
            },
            idempotent.then_some(Duration::ZERO),
        ),
    }
}

/// How long a rate-limited answer asks us to wait, if it is one.
fn rate_limit_wait(e: &octocrab::GitHubError) -> Option<Duration> {
    let status = e.status_code.as_u16();
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        e.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining").as_deref() == Some("0") {
        if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
        }
    }
    // GitHub's advice for a secondary limit without headers: a minute at least.
    if status == 429 || e.message.to_lowercase().contains("secondary rate limit") {
        return Some(Duration::from_secs(60));
    }
    None
}

/// What to do about an error status.
fn hint(status: u16, message: &str, rate_limited: bool) -> Option<String> {
    let text = match status {
        _ if rate_limited => "GitHub's rate limit: run again later",
        401 => {
            "the token is missing, invalid or expired: check the `github-token` input or GITHUB_TOKEN"
        }
        403 if message.contains("Resource not accessible by integration") => {
            "the token may not do this: give the job `permissions: {issues: write, pull-requests: write}`; on a pull request from a fork the token can only read"
        }
        403 => "the token may not do this: check its scopes, or the job's `permissions:`",
        404 => {
            "check GITHUB_REPOSITORY (owner/name) and that the token can see the repository; for GitHub Enterprise Server, GITHUB_API_URL is https://HOST/api/v3"
        }
        410 => {
            "issues are turned off in this repository: turn them on (Settings → General → Features), or leave out open-issue-on-failure"
        }
        422 => "GitHub refused the content of the request",
        s if s >= 500 => "GitHub had a problem of its own: run again later",
        _ => return None,
    };
    Some(text.to_string())
}

/// An error and its sources, on one line. octocrab's own `Display` of a
/// GitHub error is just "GitHub", and its `Debug` holds a backtrace.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl Error {
    /// Whether a failed create may have been carried out anyway: GitHub
    /// answered 5xx, or did not answer.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether GitHub refused a body as too long.
    pub fn is_too_long(&self) -> bool {
        matches!(self, Error::Api { status: 422, message, .. }
            if message.to_lowercase().contains("too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_permissions_a_token_lacks() {
        let h = hint(403, "Resource not accessible by integration", false).unwrap();
        assert!(h.contains("issues: write") && h.contains("pull-requests: write"));
        assert!(
            hint(410, "Issues are disabled", false)
                .unwrap()
                .contains("turn them on")
        );
        assert!(hint(403, "x", true).unwrap().contains("rate limit"));
        assert_eq!(hint(200, "", false), None);
    }

    #[test]
    fn only_server_errors_and_silence_leave_a_create_in_doubt() {
        let api = |status| Error::Api {
            request: "POST /x".into(),
            status,
            message: String::new(),
            hint: None,
        };
        assert!(api(502).outcome_unknown());
        assert!(!api(422).outcome_unknown());
        assert!(
            Error::Transport {
                request: "POST /x".into(),
                detail: "timed out".into()
            }
            .outcome_unknown()
        );
    }
}
