//! Policies: each tier's schedule in words and the policy's summary (`12h/7d/4w/2m/1y`); admins
//! create, edit (system ones too) and delete (not system ones, not ones in use).

use dilux_domain::compression::Compression;
use dilux_domain::encryption::Encryption;
use dilux_domain::format::DumpFormat;
use dilux_domain::policy::{BackupPolicy, TierConfig, TIERS};
use dilux_domain::user::Permission;
use dilux_domain::BackupTier;
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::json;

use crate::api;
use crate::widgets::{fetched, show, Notice};

#[derive(Clone, Deserialize)]
struct PolicyRow {
    #[serde(flatten)]
    policy: BackupPolicy,
    database_count: usize,
}

#[derive(Clone, Deserialize)]
struct Policies {
    policies: Vec<PolicyRow>,
}

#[component]
pub fn Policies() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let policies = fetched::<Policies>(|| "/api/backup-policies".into(), reload);
    let editing = RwSignal::new(None::<BackupPolicy>);
    let message = RwSignal::new(None::<Result<String, String>>);
    let is_admin = move || s.can(Permission::ManageSettings);
    let new_policy = move |_| {
        editing.set(Some(BackupPolicy {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            is_system: false,
            hourly: TierConfig { interval_hours: Some(1), ..Default::default() },
            daily: TierConfig { enabled: true, keep_count: 7, time: Some("02:00".into()), ..Default::default() },
            weekly: TierConfig { time: Some("03:00".into()), day_of_week: Some(0), ..Default::default() },
            monthly: TierConfig { time: Some("04:00".into()), day_of_month: Some(1), ..Default::default() },
            yearly: TierConfig {
                time: Some("05:00".into()),
                day_of_month: Some(1),
                month: Some(1),
                ..Default::default()
            },
            verification: Default::default(),
            compression: Default::default(),
            encryption: None,
            postgresql_format: Default::default(),
        }))
    };
    let remove = move |id: String| {
        leptos::task::spawn_local(async move {
            message.set(Some(
                api::delete(&format!("/api/backup-policies/{id}"))
                    .await
                    .map(|_| "Policy deleted".to_string())
                    .map_err(|e| e.message),
            ));
            reload.update(|n| *n += 1);
        });
    };
    view! {
        <h1>"Policies"</h1>
        <Show when=is_admin>
            <div class="toolbar"><button id="add-policy" on:click=new_policy>"New policy"</button></div>
        </Show>
        <Notice message=message/>
        {move || editing.get().map(|p| view! {
            <PolicyEditor policy=p on_done=move || { editing.set(None); reload.update(|n| *n += 1); }/>
        })}
        {show(policies, move |list: &Policies| view! {
            <table id="policies">
                <thead><tr><th>"Policy"</th><th>"Summary"</th><th>"Tiers"</th><th>"Databases"</th><th></th></tr></thead>
                <tbody>{list.policies.iter().map(|row| {
                    let p = row.policy.clone();
                    let (edit, id) = (p.clone(), p.id.clone());
                    let system = p.is_system;
                    view! {
                        <tr>
                            <td>
                                <strong>{p.name.clone()}</strong>
                                {system.then(|| view! { <span class="badge">"system"</span> })}
                                <div class="hint">{p.description.clone()}</div>
                            </td>
                            <td class="summary">
                                {p.summary()}
                                <div class="hint drills">{p.verification.describe()}</div>
                                <div class="hint compression">
                                    {format!("compressed with {}", p.compression.describe())}
                                </div>
                                <div class="hint encryption">{describe_encryption(p.encryption.as_ref())}</div>
                                {(p.postgresql_format == DumpFormat::Custom).then(|| view! {
                                    <div class="hint format">
                                        "PostgreSQL: custom archives (pg_restore, table by table)"
                                    </div>
                                })}
                            </td>
                            <td><ul class="tiers">{TIERS.iter().map(|t| view! {
                                <li>{format!("{}: {}", t.as_str(), p.describe(*t))}</li>
                            }).collect_view()}</ul></td>
                            <td>{row.database_count}</td>
                            <td class="actions"><Show when=is_admin>
                                <button on:click={let e = edit.clone(); move |_| editing.set(Some(e.clone()))}>
                                    "Edit"
                                </button>
                                {(!system).then(|| {
                                    let id = id.clone();
                                    view! {
                                        <button class="danger" on:click=move |_| remove(id.clone())>"Delete"</button>
                                    }
                                })}
                            </Show></td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
    }
}

/// The tier editor: every change shows the new schedule in words and the new summary at once.
#[component]
fn PolicyEditor(policy: BackupPolicy, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let draft = RwSignal::new(policy.clone());
    let message = RwSignal::new(None::<Result<String, String>>);
    let is_new = policy.id.is_empty();
    let done = on_done.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let p = draft.get_untracked();
        let body = json!({
            "name": p.name,
            "description": p.description,
            "hourly": p.hourly,
            "daily": p.daily,
            "weekly": p.weekly,
            "monthly": p.monthly,
            "yearly": p.yearly,
            "verification": p.verification,
            "compression": p.compression,
            "encryption": p.encryption,
            "postgresql_format": p.postgresql_format
        });
        let done = done.clone();
        leptos::task::spawn_local(async move {
            let r = if is_new {
                api::post("/api/backup-policies", &body).await
            } else {
                api::put(&format!("/api/backup-policies/{}", p.id), &body).await
            };
            match r {
                Ok(_) => done(),
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    let tier = move |t: BackupTier| {
        let get = move |f: fn(&TierConfig) -> String| move || draft.with(|p| f(p.tier(t)));
        let set = move |apply: fn(&mut TierConfig, String)| {
            move |ev: leptos::ev::Event| {
                let v = event_target_value(&ev);
                draft.update(|p| apply(p.tier_mut(t), v));
            }
        };
        view! {
            <fieldset class="tier">
                <legend>
                    <label><input type="checkbox" prop:checked=move || draft.with(|p| p.tier(t).enabled)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            draft.update(|p| {
                                let c = p.tier_mut(t);
                                c.enabled = on;
                                // A tier switched on keeps something, or it would still be off.
                                if on && c.keep_count == 0 {
                                    c.keep_count = 4;
                                }
                            })
                        }/>
                    {format!(" {}", t.as_str())}</label>
                </legend>
                <label>"Keep"
                    <input
                        type="number"
                        min="0"
                        prop:value=get(|c| c.keep_count.to_string())
                        on:input=set(|c, v| c.keep_count = v.parse().unwrap_or(0))
                    />
                </label>
                {match t {
                    BackupTier::Hourly => view! {
                        <label>"Every N hours (1–12)"
                            <input
                                type="number"
                                min="1"
                                max="12"
                                prop:value=get(|c| c.interval_hours.unwrap_or(1).to_string())
                                on:input=set(|c, v| c.interval_hours = v.parse().ok())
                            />
                        </label>
                    }.into_any(),
                    _ => view! {
                        <label>"At (UTC)"
                            <input
                                type="time"
                                prop:value=get(|c| c.time.clone().unwrap_or_default())
                                on:input=set(|c, v| c.time = Some(v))
                            />
                        </label>
                    }.into_any(),
                }}
                {(t == BackupTier::Weekly).then(|| view! {
                    <label>"Day of week (0 = Sunday)"
                        <input
                            type="number"
                            min="0"
                            max="6"
                            prop:value=get(|c| c.day_of_week.unwrap_or(0).to_string())
                            on:input=set(|c, v| c.day_of_week = v.parse().ok())
                        />
                    </label>
                })}
                {matches!(t, BackupTier::Monthly | BackupTier::Yearly).then(|| view! {
                    <label>"Day of month (1–28)"
                        <input
                            type="number"
                            min="1"
                            max="28"
                            prop:value=get(|c| c.day_of_month.unwrap_or(1).to_string())
                            on:input=set(|c, v| c.day_of_month = v.parse().ok())
                        />
                    </label>
                })}
                {(t == BackupTier::Yearly).then(|| view! {
                    <label>"Month (1–12)"
                        <input
                            type="number"
                            min="1"
                            max="12"
                            prop:value=get(|c| c.month.unwrap_or(1).to_string())
                            on:input=set(|c, v| c.month = v.parse().ok())
                        />
                    </label>
                })}
                <p class="hint words">{move || draft.with(|p| p.describe(t))}</p>
            </fieldset>
        }
    };
    view! {
        <form class="dialog wide" id="policy-editor" on:submit=save>
            <h2>{if is_new { "New policy".to_string() } else { format!("Edit {}", policy.name) }}</h2>
            <label>"Name"
                <input
                    name="name"
                    required
                    prop:value=move || draft.with(|p| p.name.clone())
                    on:input=move |ev| { let v = event_target_value(&ev); draft.update(|p| p.name = v) }
                />
            </label>
            <label>"Description"
                <input
                    name="description"
                    prop:value=move || draft.with(|p| p.description.clone())
                    on:input=move |ev| { let v = event_target_value(&ev); draft.update(|p| p.description = v) }
                />
            </label>
            <div class="tiers-grid">{TIERS.iter().map(|t| tier(*t)).collect_view()}</div>
            <fieldset class="drills" id="policy-drills">
                <legend>"Restore drills"</legend>
                <label>"Every N days (empty: none)"
                    <input
                        type="number"
                        min="1"
                        max="365"
                        name="drill-every-days"
                        prop:value=move || draft.with(|p| p.verification.every_days.map(|d| d.to_string()))
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            draft.update(|p| p.verification.every_days = v.trim().parse().ok())
                        }
                    />
                </label>
                <label><input type="checkbox" name="drill-after-each"
                    prop:checked=move || draft.with(|p| p.verification.after_each_backup)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        draft.update(|p| p.verification.after_each_backup = on)
                    }/>
                " after each new backup"</label>
                <p class="hint">
                    "The newest backup is restored into a scratch database, every table compared with the backup's \
                     manifest (exact rows and content), then dropped."
                </p>
            </fieldset>
            <fieldset class="compression" id="policy-compression">
                <legend>"Compression"</legend>
                <label>"Algorithm"
                    <select
                        name="compression-algorithm"
                        prop:value=move || draft.with(|p| p.compression.algorithm().to_string())
                        on:change=move |ev| {
                            let algorithm = event_target_value(&ev);
                            draft.update(|p| {
                                p.compression = match algorithm.as_str() {
                                    "gzip" => Compression::Gzip { level: 6 },
                                    _ => Compression::Zstd { level: 3 },
                                }
                            })
                        }
                    >
                        <option value="zstd">"zstd (.sql.zst)"</option>
                        <option value="gzip">"gzip (.sql.gz)"</option>
                    </select>
                </label>
                <label>"Level"
                    <input
                        type="number"
                        min="1"
                        max=move || if draft.with(|p| p.compression.algorithm() == "gzip") { "9" } else { "19" }
                        name="compression-level"
                        prop:value=move || draft.with(|p| p.compression.level().to_string())
                        on:input=move |ev| {
                            let Ok(level) = event_target_value(&ev).trim().parse() else { return };
                            draft.update(|p| {
                                p.compression = match p.compression {
                                    Compression::Gzip { .. } => Compression::Gzip { level },
                                    Compression::Zstd { .. } => Compression::Zstd { level },
                                }
                            })
                        }
                    />
                </label>
                <p class="hint">
                    "For new backups; every earlier one still restores. zstd level 3 stores about what gzip level 6 \
                     does, several times faster; gzip suits tools that read nothing else."
                </p>
            </fieldset>
            <fieldset class="format" id="policy-format">
                <legend>"PostgreSQL dump format"</legend>
                <label>"Format"
                    <select
                        name="postgresql-format"
                        prop:value=move || draft.with(|p| format_name(p.postgresql_format))
                        on:change=move |ev| {
                            let custom = event_target_value(&ev) == "custom";
                            let format = if custom { DumpFormat::Custom } else { DumpFormat::Plain };
                            draft.update(|p| p.postgresql_format = format)
                        }
                    >
                        <option value="plain">"plain SQL (.sql.*: psql restores it)"</option>
                        <option value="custom">"custom archive (.dump.*: pg_restore, table by table)"</option>
                    </select>
                </label>
                <p class="hint">
                    "A custom archive can restore chosen tables only. MariaDB backups are always SQL."
                </p>
            </fieldset>
            <fieldset class="encryption" id="policy-encryption">
                <legend>"Encryption"</legend>
                <label>"Encrypt new backups to these age recipients, one per line"
                    <textarea
                        name="encryption-recipients"
                        rows="3"
                        placeholder="age1…"
                        prop:value=move || draft.with(|p| {
                            p.encryption.as_ref().map(|e| e.recipients.join("\n")).unwrap_or_default()
                        })
                        on:input=move |ev| {
                            let recipients: Vec<String> = event_target_value(&ev)
                                .lines()
                                .map(|l| l.trim().to_string())
                                .filter(|l| !l.is_empty())
                                .collect();
                            draft.update(|p| {
                                p.encryption = (!recipients.is_empty()).then_some(Encryption { recipients })
                            })
                        }
                    ></textarea>
                </label>
                <p class="hint">
                    "Empty: not encrypted. Include the dumper-host's own recipient (Status page): the product restores \
                     and drills only what it can decrypt. Anyone holding one of these identities can read the \
                     backups; keep a second one offline to restore without the product (age -d -i key.txt)."
                </p>
            </fieldset>
            <p>"Summary: " <strong id="policy-summary">{move || draft.with(|p| p.summary())}</strong></p>
            <div class="buttons">
                <button type="submit" id="save-policy">"Save"</button>
                <button type="button" class="link" on:click={let d = on_done.clone(); move |_| d()}>"Cancel"</button>
            </div>
            <Notice message=message/>
        </form>
    }
}

/// "encrypted to 2 age recipients", or "not encrypted".
fn describe_encryption(e: Option<&Encryption>) -> String {
    match e.map(|e| e.recipients.len()) {
        None => "not encrypted".into(),
        Some(1) => "encrypted to 1 age recipient".into(),
        Some(n) => format!("encrypted to {n} age recipients"),
    }
}

/// A format's value in the editor's select (its JSON name).
fn format_name(f: DumpFormat) -> &'static str {
    match f {
        DumpFormat::Plain => "plain",
        DumpFormat::Custom => "custom",
    }
}
