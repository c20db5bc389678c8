//! A notifier plug-in for Dilux Backup: posts each event to a Discord channel webhook as an embed.
//!
//! Settings (the channel's `settings`): `webhook_url` (required: Discord's "Copy Webhook URL"), and
//! `username` (optional: the name the messages are posted under, default "Dilux Backup").

spin_sdk::wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/notify",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

use dilux::notify::types::{Delivered, Event, Severity};
use exports::dilux::notify::notifier::Guest;
use serde_json::{json, Value};

struct Discord;

export!(Discord);

impl Guest for Discord {
    fn notify(event: Event, delivery_id: String, settings: Vec<(String, String)>) -> Result<Delivered, String> {
        let get = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let url =
            get("webhook_url").ok_or("the channel has no `webhook_url` setting: paste the Discord webhook URL")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            // Never echo the value: the URL is the webhook's credential.
            return Err("the `webhook_url` setting is not an http(s) URL".into());
        }
        let body = payload(&event, &delivery_id, get("username").unwrap_or("Dilux Backup"));
        spin_sdk::http::run(post(url.to_string(), body.to_string()))
    }
}

async fn post(url: String, body: String) -> Result<Delivered, String> {
    let request = spin_sdk::http::Request::post(url, body).header("content-type", "application/json").build();
    let response: spin_sdk::http::Response = spin_sdk::http::send(request)
        .await
        .map_err(|e| format!("could not reach Discord ({e}); is its host in the plug-in's allowed_outbound_hosts?"))?;
    let status = *response.status();
    let said = String::from_utf8_lossy(response.body()).chars().take(200).collect::<String>();
    match status {
        200..=299 => Ok(Delivered { status: Some(status), message: format!("Discord took it ({status})") }),
        401 | 404 => Err(format!("Discord answered {status}: the webhook was deleted or its URL is wrong")),
        429 => Err(format!("Discord answered 429 (rate limited): {said}")),
        _ => Err(format!("Discord answered {status}: {said}")),
    }
}

/// Discord's webhook message: one embed, coloured by severity, with the event's facts as fields.
fn payload(e: &Event, delivery_id: &str, username: &str) -> Value {
    let color = match (e.resolved, e.severity) {
        (true, _) => 0x2e_a0_43,
        (false, Severity::Error) => 0xd0_2f_2f,
        (false, Severity::Warning) => 0xe3_a0_08,
        (false, Severity::Info) => 0x3b_82_f6,
    };
    let mut fields = vec![json!({ "name": "Event", "value": e.kind, "inline": true })];
    if let Some(db) = e.database_alias.as_ref().or(e.database_id.as_ref()) {
        fields.push(json!({ "name": "Database", "value": db, "inline": true }));
    }
    let mark = if e.resolved { "Resolved: " } else { "" };
    json!({
        "username": username,
        // Nobody is pinged by what a message says.
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": format!("{mark}{}", e.title).chars().take(256).collect::<String>(),
            "description": e.message,
            "color": color,
            "timestamp": e.at,
            "fields": fields,
            "footer": { "text": format!("Dilux Backup · {delivery_id}") },
        }],
    })
}
