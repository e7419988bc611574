//! Who may use which route. [`access`] is the whole rule, a pure function of the route, the peer
//! and the keys, so every case is a unit test; [`check`] feeds it what a request carries.
//!
//! The rule: `/health` and `/ready` are open to everyone (probes carry no keys). A server with no
//! keys of any kind is a developer's own: it answers everything on loopback and everything but
//! the operators' routes from elsewhere. Once any key is configured, loopback counts for nothing:
//! the operators' routes (`/admin`, `/admin/*`, `/metrics`) take only an admin key
//! (`server.admin_keys`; none listed = 403 that says how to set one), `/openapi.json` either kind,
//! and the model APIs a user key (an admin key when `server.api_keys` lists none: then the admins
//! are the only ones with keys). Loopback counts only in
//! the keyless case because behind a reverse proxy on the same host every request comes from
//! loopback; for the same reason `X-Forwarded-For`, `X-Real-IP` and `Forwarded` are never read.

use actix_web::dev::ServiceRequest;
use base64::Engine;

use super::error::ApiError;

/// What a route is, for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// `/health`, `/ready`: open to everyone.
    Probe,
    /// `GET /admin`, the dashboard page: an operators' route where a browser is asked to log in.
    Dashboard,
    /// `/admin/*`, `/metrics`, other methods on `/admin`.
    Operator,
    /// `/openapi.json`: describes the APIs; a user or an admin key opens it.
    Document,
    /// Everything else: the model APIs and unknown routes.
    Api,
}

impl Guard {
    /// `path` must be the path the router matches (percent-decoded), not the raw one: otherwise
    /// `/%61dmin/pools` would be judged as an API route and then served as `/admin/pools`.
    fn of(path: &str, method: &str) -> Self {
        match path {
            "/health" | "/ready" => Self::Probe,
            "/admin" if method == "GET" => Self::Dashboard,
            "/admin" | "/metrics" => Self::Operator,
            "/openapi.json" => Self::Document,
            _ if path.starts_with("/admin/") => Self::Operator,
            _ => Self::Api,
        }
    }
}

/// Why a request may not pass.
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    /// Set when the dashboard page is refused for want of a valid admin key: the 401 carries
    /// `WWW-Authenticate: Basic`, so a browser asks for the key (as the password) and then sends
    /// it with the page's own requests too.
    pub challenge: bool,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            challenge: false,
        }
    }
}

/// The realm of the dashboard's login prompt.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"clinvoker admin\"";

/// The remedy, in every refusal for want of admin keys.
const HOW_TO_SET_ADMIN_KEYS: &str = concat!(
    "set server.admin_keys in the config file or CLINVOKER__SERVER__ADMIN_KEYS=\"key1,key2\" ",
    "in the environment, then send one in the x-api-key header"
);

const MISSING: &str = concat!(
    "missing API key: send it in the x-api-key header, as Authorization: Bearer, ",
    "or as the password of Authorization: Basic"
);

/// Whether a request for `path` (as the router matches it) may go on. `presented` holds every
/// key the request carries; one listed key is enough.
pub fn access(
    path: &str,
    method: &str,
    loopback_peer: bool,
    presented: &[String],
    api_keys: &[String],
    admin_keys: &[String],
) -> Result<(), Refusal> {
    let listed = |keys: &[String]| presented.iter().any(|p| keys.contains(p));
    let refuse = |keys: &str| {
        if presented.is_empty() {
            ApiError::Authentication(MISSING.into())
        } else {
            ApiError::Authentication(format!("invalid {keys} key"))
        }
    };
    let guard = Guard::of(path, method);
    if api_keys.is_empty() && admin_keys.is_empty() {
        return match guard {
            Guard::Dashboard | Guard::Operator if !loopback_peer => {
                Err(ApiError::PermissionDenied(format!(
                    "no keys are configured, so {path} answers only on loopback; {}",
                    HOW_TO_SET_ADMIN_KEYS
                ))
                .into())
            }
            _ => Ok(()),
        };
    }
    match guard {
        Guard::Probe => Ok(()),
        Guard::Dashboard | Guard::Operator if admin_keys.is_empty() => {
            Err(ApiError::PermissionDenied(format!(
                "{path} needs an admin key and none is configured; {HOW_TO_SET_ADMIN_KEYS}"
            ))
            .into())
        }
        Guard::Dashboard | Guard::Operator if listed(admin_keys) => Ok(()),
        Guard::Dashboard => Err(Refusal {
            error: refuse("admin"),
            challenge: true,
        }),
        Guard::Operator => Err(refuse("admin").into()),
        Guard::Document if listed(api_keys) || listed(admin_keys) => Ok(()),
        Guard::Document => Err(refuse("API").into()),
        // With admin keys alone, the admins are the only ones with keys: theirs open the APIs.
        Guard::Api if listed(api_keys) || (api_keys.is_empty() && listed(admin_keys)) => Ok(()),
        Guard::Api => Err(refuse("API").into()),
    }
}

/// Whether `path` (as the router matches it) is a model API route: what client rate limits count.
pub fn is_model_api(path: &str, method: &str) -> bool {
    Guard::of(path, method) == Guard::Api
}

/// The key that names the request's client: the first presented key that opens the model APIs
/// (a user key; an admin key when there are none). `None` on a server without keys, or when no
/// presented key opens them.
pub fn client_key<'a>(
    presented: &'a [String],
    api_keys: &[String],
    admin_keys: &[String],
) -> Option<&'a str> {
    let opening = if api_keys.is_empty() {
        admin_keys
    } else {
        api_keys
    };
    presented
        .iter()
        .find(|p| opening.contains(p))
        .map(String::as_str)
}

/// [`access`] for a request: the router's path, the socket peer (never a forwarding header: a
/// proxy on the same host makes every peer loopback, and the headers are the client's to write)
/// and the keys presented.
pub fn check(
    req: &ServiceRequest,
    api_keys: &[String],
    admin_keys: &[String],
) -> Result<(), Refusal> {
    // An IPv4 client of a dual-stack socket shows as `::ffff:127.0.0.1`.
    let loopback = req
        .peer_addr()
        .is_some_and(|a| a.ip().to_canonical().is_loopback());
    access(
        req.match_info().as_str(),
        req.method().as_str(),
        loopback,
        &presented_keys(req),
        api_keys,
        admin_keys,
    )
}

/// Every key the request carries: `x-api-key`, and `Authorization` as `Bearer KEY` or
/// `Basic base64(user:KEY)` (the user name is ignored; it is how a browser sends a password).
/// Empty keys are no keys.
pub fn presented_keys(req: &ServiceRequest) -> Vec<String> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let authorization = header("authorization").and_then(|v| {
        let (scheme, value) = v.split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(value.to_string())
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic_password(value)
        } else {
            None
        }
    });
    header("x-api-key")
        .map(String::from)
        .into_iter()
        .chain(authorization)
        .filter(|k| !k.is_empty())
        .collect()
}

fn basic_password(encoded: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web::test::TestRequest;

    const USER: &str = "user-key";
    const ADMIN: &str = "admin-key";
    const OPERATOR_ROUTES: [(&str, &str); 6] = [
        ("/admin/pools", "GET"),
        ("/metrics", "GET"),
        ("/admin/requests", "GET"),
        ("/admin/processes/1/kill", "POST"),
        ("/admin/pools/default/drain", "POST"),
        ("/admin", "GET"),
    ];

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    /// `access` with `presented` keys against the given user and admin keys; the error text.
    fn run(
        (path, method): (&str, &str),
        loopback: bool,
        presented: &[&str],
        users: &[&str],
        admins: &[&str],
    ) -> Result<(), String> {
        access(
            path,
            method,
            loopback,
            &keys(presented),
            &keys(users),
            &keys(admins),
        )
        .map_err(|r| format!("{} {}", status(&r), r.error))
    }

    /// The Anthropic-shaped status of a refusal, plus whether it challenges.
    fn status(r: &Refusal) -> String {
        let code = match r.error {
            ApiError::Authentication(_) => "401",
            ApiError::PermissionDenied(_) => "403",
            _ => "other",
        };
        format!("{code}{}", if r.challenge { "+challenge" } else { "" })
    }

    #[test]
    fn no_keys_anywhere_is_a_developers_server() {
        for route in OPERATOR_ROUTES {
            assert_eq!(run(route, true, &[], &[], &[]), Ok(()), "{route:?}");
            let far = run(route, false, &[], &[], &[]).expect_err("not loopback");
            assert!(
                far.starts_with("403 ") && far.contains("only on loopback"),
                "{far}"
            );
            assert!(far.contains("CLINVOKER__SERVER__ADMIN_KEYS"), "{far}");
        }
        for route in [("/anthropic/v1/messages", "POST"), ("/openapi.json", "GET")] {
            assert_eq!(run(route, false, &[], &[], &[]), Ok(()), "{route:?}");
        }
    }

    #[test]
    fn api_keys_alone_close_the_operators_routes_even_on_loopback() {
        for route in OPERATOR_ROUTES {
            for presented in [&[][..], &[USER], &["made-up"]] {
                let e = run(route, true, presented, &[USER], &[]).expect_err("no admin keys");
                assert!(e.starts_with("403 "), "{route:?} {presented:?}: {e}");
                assert!(
                    e.contains("server.admin_keys") && e.contains("CLINVOKER__SERVER__ADMIN_KEYS"),
                    "the refusal says how to set an admin key: {e}"
                );
            }
        }
        let api = ("/anthropic/v1/messages", "POST");
        assert_eq!(run(api, false, &[USER], &[USER], &[]), Ok(()));
        assert!(
            run(api, true, &[], &[USER], &[]).is_err(),
            "loopback opens nothing"
        );
    }

    #[test]
    fn admin_keys_alone_open_the_operators_routes() {
        for route in OPERATOR_ROUTES {
            assert_eq!(
                run(route, false, &[ADMIN], &[USER], &[ADMIN]),
                Ok(()),
                "{route:?}"
            );
            assert_eq!(
                run(route, true, &[ADMIN], &[], &[ADMIN]),
                Ok(()),
                "{route:?}"
            );
            let challenge = if route == ("/admin", "GET") {
                "+challenge"
            } else {
                ""
            };
            for (presented, why) in [
                (&[][..], "missing API key"),
                (&[USER], "invalid admin key"),
                (&["made-up"], "invalid admin key"),
            ] {
                let e = run(route, true, presented, &[USER], &[ADMIN]).expect_err("not admin");
                assert!(
                    e.starts_with(&format!("401{challenge} ")) && e.contains(why),
                    "{route:?} {presented:?}: {e}"
                );
            }
        }
        // One valid key among those presented is enough (a stale x-api-key beside the browser's
        // Basic credentials).
        let pools = ("/admin/pools", "GET");
        assert_eq!(run(pools, false, &["stale", ADMIN], &[], &[ADMIN]), Ok(()));
        // Admin keys alone close the model APIs too; the admins' keys open them.
        let api = ("/anthropic/v1/messages", "POST");
        let e = run(api, true, &[], &[], &[ADMIN]).expect_err("keys are configured");
        assert!(e.starts_with("401 "), "{e}");
        assert_eq!(run(api, false, &[ADMIN], &[], &[ADMIN]), Ok(()));
        // Other methods on the page are operator routes that do not ask a browser to log in.
        let post = run(("/admin", "POST"), true, &[], &[], &[ADMIN]).expect_err("no key");
        assert!(post.starts_with("401 "), "{post}");
    }

    #[test]
    fn user_and_admin_keys_are_separate() {
        let api = ("/anthropic/v1/messages", "POST");
        let e = run(api, true, &[ADMIN], &[USER], &[ADMIN]).expect_err("admin is not user");
        assert!(
            e.starts_with("401 ") && e.contains("invalid API key"),
            "{e}"
        );
        assert_eq!(run(api, false, &[USER], &[USER], &[ADMIN]), Ok(()));
        // With admin keys alone, the model APIs need a key too (the admins').
        assert!(run(api, false, &[], &[], &[ADMIN]).is_err());
    }

    #[test]
    fn the_client_is_named_by_the_key_that_opens_the_model_apis() {
        let (users, admins) = (keys(&[USER]), keys(&[ADMIN]));
        let presented = keys(&["stale", ADMIN, USER]);
        assert_eq!(client_key(&presented, &users, &admins), Some(USER));
        assert_eq!(
            client_key(&presented, &[], &admins),
            Some(ADMIN),
            "admins alone"
        );
        assert_eq!(client_key(&keys(&["stale"]), &users, &admins), None);
        assert_eq!(
            client_key(&[], &[], &[]),
            None,
            "keyless: the peer names it"
        );
        assert!(is_model_api("/anthropic/v1/messages", "POST"));
        assert!(!is_model_api("/admin/pools", "GET") && !is_model_api("/health", "GET"));
    }

    #[test]
    fn probes_are_open_and_the_document_takes_either_key() {
        for (users, admins) in [(&[USER][..], &[][..]), (&[], &[ADMIN]), (&[USER], &[ADMIN])] {
            for probe in [("/health", "GET"), ("/ready", "GET")] {
                assert_eq!(run(probe, false, &[], users, admins), Ok(()), "{probe:?}");
            }
            let doc = ("/openapi.json", "GET");
            let e = run(doc, true, &[], users, admins).expect_err("keys configured");
            assert!(e.starts_with("401 ") && e.contains("missing"), "{e}");
            for key in users.iter().chain(admins) {
                assert_eq!(run(doc, false, &[key], users, admins), Ok(()), "{key}");
            }
        }
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> ServiceRequest {
        let mut req = TestRequest::get()
            .uri("/admin/pools")
            .peer_addr(peer.parse().expect("a socket address"));
        for &(name, value) in headers {
            req = req.insert_header((name, value));
        }
        req.to_srv_request()
    }

    #[test]
    fn only_the_socket_peer_counts_never_forwarding_headers() {
        let none: Vec<String> = Vec::new();
        let forwarded = [
            ("x-forwarded-for", "127.0.0.1"),
            ("x-real-ip", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
        ];
        let far = request("203.0.113.7:5000", &forwarded);
        let e = check(&far, &none, &none).expect_err("a far peer is not loopback");
        assert!(matches!(e.error, ApiError::PermissionDenied(_)), "{e:?}");
        assert!(check(&request("127.0.0.1:5000", &[]), &none, &none).is_ok());
        assert!(check(&request("[::1]:5000", &[]), &none, &none).is_ok());
        assert!(check(&request("[::ffff:127.0.0.1]:5000", &[]), &none, &none).is_ok());
    }

    #[test]
    fn the_router_path_is_judged_not_the_raw_one() {
        for (raw, routed) in [
            ("/%61dmin/pools", "/admin/pools"),
            ("/%6Detrics", "/metrics"),
        ] {
            let req = TestRequest::get()
                .uri(raw)
                .insert_header(("x-api-key", USER))
                .to_srv_request();
            assert_eq!(req.match_info().as_str(), routed, "what the router matches");
            let e = check(&req, &keys(&[USER]), &keys(&[ADMIN])).expect_err("an operator route");
            assert!(
                matches!(e.error, ApiError::Authentication(_)),
                "{raw}: {e:?}"
            );
        }
    }

    #[test]
    fn keys_are_read_from_every_place_a_client_may_put_them() {
        let keys_of = |headers: &[(&str, &str)]| {
            let mut req = TestRequest::get();
            for &(name, value) in headers {
                req = req.insert_header((name, value));
            }
            presented_keys(&req.to_srv_request())
        };
        // "any-user:k:with:colons"
        let basic = "Basic YW55LXVzZXI6azp3aXRoOmNvbG9ucw==";
        assert_eq!(keys_of(&[("authorization", basic)]), ["k:with:colons"]);
        assert_eq!(keys_of(&[("authorization", "bearer k1")]), ["k1"]);
        assert_eq!(
            keys_of(&[("x-api-key", "k2"), ("authorization", "Bearer k3")]),
            ["k2", "k3"]
        );
        assert!(keys_of(&[("authorization", "Basic not-base64!")]).is_empty());
        assert!(
            keys_of(&[("authorization", "Basic bm9jb2xvbg==")]).is_empty(),
            "no colon"
        );
        assert!(keys_of(&[("x-api-key", ""), ("authorization", "Bearer ")]).is_empty());
    }
}
