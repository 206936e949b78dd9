//! A request into a Cognigy session (COGNIGY.md, "Inject / Notify"): `POST
//! {base_url}/{inject|notify}/{URLToken}` with `{"userId", "sessionId", "text", "data"}`.
//! `userId` and `sessionId` come from the event, never from a template, so an answer cannot
//! be misaddressed; `text` and `data` come from the template, which renders a JSON object
//! with at most those two keys. Cognigy's limits are checked before anything is sent.
//! The URL token is a secret: it is only ever shown as `***`.

use crate::render::url::encode_component;
use serde_json::{Map, Value};
use url::Url;

/// Cognigy's limit on `userId` and `sessionId` (characters).
pub const MAX_ID_CHARS: usize = 256;
/// Cognigy's limit on `text` (characters).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Cognigy's limit on a REST JSON body (60 kB; bytes).
pub const MAX_BODY_BYTES: usize = 60_000;

/// The key under `data` that marks every body the router sends into a session, so a flow
/// can tell an injected answer from what the user typed and never fire the trigger again
/// for it (docs/cognigy.md, "Telling the router's answers from user input").
pub const MARK: &str = "webhookRouter";

/// What the mark says: that the router sent it, for which route and delivery.
#[derive(Debug, Clone, Copy)]
pub struct Injected<'a> {
    pub route: &'a str,
    pub delivery_id: &'a str,
}

/// What a request into the session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The text and data go into the flow as if the user had sent them (the flow runs).
    Inject,
    /// The text and data are shown to the user (the flow does not run).
    Notify,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inject => "inject",
            Self::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inject" => Some(Self::Inject),
            "notify" => Some(Self::Notify),
            _ => None,
        }
    }
}

/// The endpoint URL with its token: the token percent-encoded as one path segment.
pub fn endpoint_url(base: &Url, mode: Mode, token: &str) -> Result<Url, String> {
    let token = token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the endpoint's URL token is empty or has characters a URL token never has".to_owned(),
        );
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let path = format!(
        "{}/{}/{}",
        base.path().trim_end_matches('/'),
        mode.as_str(),
        encode_component(token)
    );
    url.set_path(&path);
    Ok(url)
}

/// The endpoint URL as it may be shown: the token as `***`, userinfo masked.
pub fn shown_url(base: &Url, mode: Mode) -> String {
    let shown = crate::secrets::mask_url(base);
    format!("{}/{}/***", shown.trim_end_matches('/'), mode.as_str())
}

/// Whether an event's `user_id` or `session_id` can address a Cognigy session: present,
/// not empty, at most [`MAX_ID_CHARS`] characters. The trigger checks it on every event a
/// route answering into a session fires for (a 422 before anything is sent), the deliver
/// side again on what it sends.
pub fn check_id(value: Option<&str>) -> Result<&str, String> {
    match value {
        None | Some("") => Err("is missing: the answer would have nowhere to go".to_owned()),
        Some(v) if v.chars().count() > MAX_ID_CHARS => Err(format!(
            "is longer than Cognigy's {MAX_ID_CHARS} characters"
        )),
        Some(v) => Ok(v),
    }
}

/// The request body: `userId` and `sessionId` from the event, `text` and `data` from the
/// rendered template (a JSON object with at most those keys, at least one of them), and
/// the router's mark under `data.webhookRouter` (over anything the template put there).
/// A violation of Cognigy's limits is an error naming it (a `render` failure).
pub fn body(
    user_id: Option<&str>,
    session_id: Option<&str>,
    rendered: &str,
    mark: Injected<'_>,
) -> Result<String, String> {
    let id = |name: &str, v: Option<&str>| -> Result<String, String> {
        check_id(v)
            .map(str::to_owned)
            .map_err(|why| format!("the event's {name} {why}"))
    };
    let user_id = id("user_id", user_id)?;
    let session_id = id("session_id", session_id)?;
    let parsed: Value = serde_json::from_str(rendered)
        .map_err(|e| format!("the template's output is not JSON: {e}"))?;
    let Value::Object(mut fields) = parsed else {
        return Err("the template must render a JSON object with `text` and/or `data`".to_owned());
    };
    if let Some(k) = fields.keys().find(|k| *k != "text" && *k != "data") {
        return Err(format!(
            "the template renders key `{}`; an answer into the session has only `text` and `data` (userId and sessionId come from the event)",
            crate::text::truncated(k, 40)
        ));
    }
    let text = fields.remove("text");
    let data = fields.remove("data");
    if text.is_none() && data.is_none() {
        return Err("the template renders neither `text` nor `data`".to_owned());
    }
    let mut out = Map::new();
    out.insert("userId".into(), Value::String(user_id));
    out.insert("sessionId".into(), Value::String(session_id));
    match text {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.chars().count() > MAX_TEXT_CHARS => {
            return Err(format!(
                "`text` is longer than Cognigy's {MAX_TEXT_CHARS} characters"
            ));
        }
        Some(Value::String(t)) => {
            out.insert("text".into(), Value::String(t));
        }
        Some(_) => return Err("`text` must be a string".to_owned()),
    }
    let mut data = match data {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => return Err("`data` must be an object".to_owned()),
    };
    data.insert(
        MARK.into(),
        serde_json::json!({"injected": true, "route": mark.route, "delivery_id": mark.delivery_id}),
    );
    out.insert("data".into(), Value::Object(data));
    let body = Value::Object(out).to_string();
    if body.len() > MAX_BODY_BYTES {
        return Err(format!(
            "the body is {} bytes; Cognigy takes at most {MAX_BODY_BYTES}",
            body.len()
        ));
    }
    Ok(body)
}

/// What Cognigy itself checks on an inject or notify body (its inject transformer's
/// rules), for fakes and demos that stand in for it.
pub fn check_body(raw: &str) -> Result<(), String> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(format!("the body is over {MAX_BODY_BYTES} bytes"));
    }
    let Ok(Value::Object(b)) = serde_json::from_str::<Value>(raw) else {
        return Err("the body is not a JSON object".to_owned());
    };
    let id_ok = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty() && s.chars().count() <= MAX_ID_CHARS)
    };
    if !id_ok("userId") || !id_ok("sessionId") {
        return Err("userId and sessionId must be strings of at most 256 characters".to_owned());
    }
    if b.get("text").is_some_and(|t| {
        t.as_str()
            .is_none_or(|t| t.chars().count() > MAX_TEXT_CHARS)
    }) {
        return Err("text must be a string of at most 10,000 characters".to_owned());
    }
    if b.get("data").is_some_and(|d| !d.is_object()) {
        return Err("data must be an object".to_owned());
    }
    if let Some(k) = b
        .keys()
        .find(|k| !matches!(k.as_str(), "userId" | "sessionId" | "text" | "data"))
    {
        return Err(format!("unknown key `{}`", crate::text::truncated(k, 40)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Injected<'static> = Injected {
        route: "order-status",
        delivery_id: "dlv_1",
    };

    #[test]
    fn the_url_carries_the_token_as_one_segment_and_is_shown_masked() {
        let base = Url::parse("https://endpoint-trial.cognigy.ai").unwrap();
        assert_eq!(
            endpoint_url(&base, Mode::Inject, "abc123")
                .unwrap()
                .as_str(),
            "https://endpoint-trial.cognigy.ai/inject/abc123"
        );
        let onprem = Url::parse("https://cx.example.com/endpoint/?x=1").unwrap();
        assert_eq!(
            endpoint_url(&onprem, Mode::Notify, "t/../x")
                .unwrap()
                .as_str(),
            "https://cx.example.com/endpoint/notify/t%2F..%2Fx"
        );
        assert!(endpoint_url(&base, Mode::Inject, " ").is_err());
        assert!(endpoint_url(&base, Mode::Inject, "a b").is_err());
        assert_eq!(
            shown_url(&base, Mode::Inject),
            "https://endpoint-trial.cognigy.ai/inject/***"
        );
    }

    #[test]
    fn the_body_takes_ids_from_the_event_and_text_and_data_from_the_template() {
        let b = body(
            Some("u1"),
            Some("s1"),
            r#"{"text": "hi", "data": {"k": 1}}"#,
            M,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&b).unwrap();
        let mark =
            serde_json::json!({"injected": true, "route": "order-status", "delivery_id": "dlv_1"});
        assert_eq!(
            v,
            serde_json::json!({"userId": "u1", "sessionId": "s1", "text": "hi", "data": {"k": 1, "webhookRouter": mark}})
        );
        let b = body(Some("u1"), Some("s1"), r#"{"data": {}}"#, M).unwrap();
        assert!(!b.contains("text"));
        // Marked even without data, and a template cannot forge or drop the mark.
        let v: Value =
            serde_json::from_str(&body(Some("u"), Some("s"), r#"{"text": "x"}"#, M).unwrap())
                .unwrap();
        assert_eq!(v["data"]["webhookRouter"], mark);
        let forged = r#"{"text": "x", "data": {"webhookRouter": {"injected": false}}}"#;
        let v: Value =
            serde_json::from_str(&body(Some("u"), Some("s"), forged, M).unwrap()).unwrap();
        assert_eq!(v["data"]["webhookRouter"], mark);
    }

    #[test]
    fn cognigys_limits_are_checked_before_sending() {
        let long = "x".repeat(MAX_ID_CHARS + 1);
        let big_text = format!(r#"{{"text": "{}"}}"#, "t".repeat(MAX_TEXT_CHARS + 1));
        let big_data = format!(r#"{{"data": {{"b": "{}"}}}}"#, "d".repeat(MAX_BODY_BYTES));
        for (u, s, r) in [
            (None, Some("s"), r#"{"text": "a"}"#),
            (Some("u"), None, r#"{"text": "a"}"#),
            (Some("u"), Some(""), r#"{"text": "a"}"#),
            (Some(long.as_str()), Some("s"), r#"{"text": "a"}"#),
            (Some("u"), Some("s"), r#"{"text": "a", "userId": "other"}"#),
            (Some("u"), Some("s"), r#"{"text": 5}"#),
            (Some("u"), Some("s"), r#"{"data": [1]}"#),
            (Some("u"), Some("s"), r#"{}"#),
            (Some("u"), Some("s"), r#"["text"]"#),
            (Some("u"), Some("s"), big_text.as_str()),
            (Some("u"), Some("s"), big_data.as_str()),
        ] {
            assert!(body(u, s, r, M).is_err(), "{u:?} {s:?} {r:.60}");
        }
        let ok_text = format!(r#"{{"text": "{}"}}"#, "t".repeat(MAX_TEXT_CHARS));
        let made = body(Some("u"), Some("s"), &ok_text, M).unwrap();
        assert!(
            check_body(&made).is_ok(),
            "what the router makes, Cognigy takes"
        );
        for bad in [
            r#"{"sessionId": "s", "text": "a"}"#,
            r#"{"userId": "u", "sessionId": 5}"#,
            r#"{"userId": "u", "sessionId": "s", "data": "x"}"#,
            r#"{"userId": "u", "sessionId": "s", "URLToken": "x"}"#,
            "[]",
        ] {
            assert!(check_body(bad).is_err(), "{bad}");
        }
    }
}
