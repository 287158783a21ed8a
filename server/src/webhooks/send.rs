//! One webhook request (blocking; runs on a blocking thread). ureq with rustls, the client the
//! symbol downloader already uses: no second HTTP stack, no OpenSSL.

use super::policy;
use super::sign;
use crate::db::webhooks::Due;
use std::time::Duration;

/// Why an attempt failed: the receiver's status if it answered, and a line for the record.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub message: String,
}

/// POSTs the delivery's body, signed. `Ok(status)` for a 2xx answer.
pub fn post(due: &Due, secret: &[u8], timeout: Duration) -> Result<u16, Failure> {
    // Stored URLs were checked when recorded; checked again so no other scheme is ever used.
    if let Err(e) = policy::parse(&due.url) {
        return Err(Failure {
            status: None,
            message: e.to_string(),
        });
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        // Never follow a redirect: it could lead off the allow-list (see `policy`).
        .redirects(0)
        .user_agent(concat!("pooltriage-webhook/", env!("CARGO_PKG_VERSION")))
        .build();
    let result = agent
        .post(&due.url)
        .set("Content-Type", "application/json")
        .set("X-Pooltriage-Event", &due.event)
        .set("X-Pooltriage-Delivery", &due.id)
        .set(sign::HEADER, &sign::signature(secret, due.body.as_bytes()))
        .send_string(&due.body);
    match result {
        Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp.status()),
        Ok(resp) => Err(Failure {
            status: Some(resp.status()),
            message: format!("answered {}", resp.status()),
        }),
        Err(ureq::Error::Status(code, _)) => Err(Failure {
            status: Some(code),
            message: format!("answered {code}"),
        }),
        Err(ureq::Error::Transport(t)) => Err(Failure {
            status: None,
            message: without_url(&t.to_string(), &due.url)
                .chars()
                .take(300)
                .collect(),
        }),
    }
}

/// `message` with the URL cut to its origin: its path and query may hold a secret (a token in
/// `?key=`), and the message goes to the log and to the delivery list.
fn without_url(message: &str, url: &str) -> String {
    let origin = url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "the webhook".into());
    message.replace(url, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_message_keeps_the_origin_only() {
        let url = "https://hooks.example.com:8443/t/abc?key=s3cret";
        let m = format!("{url}: Connection Failed: Connect error: connection refused");
        let clean = without_url(&m, url);
        assert!(
            !clean.contains("s3cret") && !clean.contains("/t/abc"),
            "{clean}"
        );
        assert!(
            clean.starts_with("https://hooks.example.com:8443: "),
            "{clean}"
        );
    }
}
