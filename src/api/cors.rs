//! CORS for pages that call the APIs from a browser (`server.cors_allowed_origins`), with
//! actix-cors. A preflight from an allowed origin is answered with the headers the official SDKs
//! send from a browser; one from any other origin is refused (400). Ordinary requests from other
//! origins are served without CORS headers, so the browser keeps their answer from the page,
//! while clients that are not browsers (which may send any `Origin`) are unaffected.

use actix_cors::Cors;

/// The request headers the official Anthropic and OpenAI SDKs send from a browser (read from
/// `@anthropic-ai/sdk`, `openai`, and their Python twins).
pub const SDK_HEADERS: [&str; 25] = [
    "authorization",
    "content-type",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
    "x-request-id",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-read-timeout",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
];

/// Response headers a page's SDK reads: the request id, when to retry, the rate left.
const EXPOSED: [&str; 7] = [
    "request-id",
    "x-request-id",
    "retry-after",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "x-clinvoker-token-count",
];

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 600;

/// The middleware for `origins` (validated by the configuration: `*` or `scheme://host[:port]`).
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers(SDK_HEADERS)
        .expose_headers(EXPOSED)
        .max_age(PREFLIGHT_MAX_AGE_SECS)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = match origin.as_str() {
            "*" => cors.allow_any_origin(),
            origin => cors.allowed_origin(origin),
        };
    }
    cors
}
