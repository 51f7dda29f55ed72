//! `tenure user ...` and `tenure token ...`: platform users and API tokens from the command
//! line (a local administrator's door; the API and console call the same use cases).

use crate::users::{self, Role};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use store::Secret;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Set the client secret tenure has at the identity provider of [auth.oidc], kept sealed
    /// in the store and sent to that issuer only: read from a file, or from standard input.
    OidcSecret {
        /// Read it from this file (default: standard input).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Add a user. The password comes from --password-file, else a prompt on a terminal, else
    /// a one-time password is made and shown once (to be changed at the first login).
    Add {
        /// The user's login name (letters, digits, '.', '-', '_', '@'; case does not count).
        name: String,
        /// What the user may do: admin, editor, reviewer or viewer.
        #[arg(long, value_parser = role())]
        role: Role,
        /// A file holding the password (at least 12 characters).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users: name, role, state (never a password or its hash).
    List {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role.
    SetRole {
        /// The user's name.
        name: String,
        /// The new role: admin, editor, reviewer or viewer.
        #[arg(value_parser = role())]
        role: Role,
    },
    /// Disable a user: their sessions end, they cannot log in.
    Disable {
        /// The user's name.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user's name.
        name: String,
    },
    /// Set a new password (from --password-file or a prompt), or a one-time password shown
    /// once; the user's sessions end either way.
    ResetPassword {
        /// The user's name.
        name: String,
        /// A file holding the new password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Where a user is signed in: when, from which address, in which browser.
    Sessions {
        /// The user's name.
        name: String,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// End every session of a user (a lost laptop, a person who left): they sign in again.
    EndSessions {
        /// The user's name.
        name: String,
    },
    /// Remove a user's second factor (a lost phone): their password alone signs them in, or,
    /// where one is required, they set up a new one at their next sign-in.
    ResetSecondFactor {
        /// The user's name.
        name: String,
        /// Once the store has platform users: why (audited as break-glass, noticed); an admin
        /// signed in to the console does it there (Settings) without one.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// Require a second factor of every local account (on), or no longer (off).
    RequireSecondFactor {
        /// on: every local account needs one; off: each person chooses.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Turning it off on the store itself, once it has platform users: why (break-glass).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token, shown once.
    Create {
        /// What it is for ("monitoring", "HR sync script").
        name: String,
        /// What it may do: admin, editor, reviewer or viewer.
        #[arg(long, value_parser = role())]
        role: Role,
        /// The one connection it may act on (default: all).
        #[arg(long)]
        connection: Option<String>,
        /// When it stops working: 90d, 12h, 30m or an RFC 3339 moment (default: never).
        #[arg(long)]
        expires: Option<String>,
        /// The platform user it acts for: never more than their role, stopped when they are
        /// disabled, and refused the reviews they set in motion (default: none, a token of the
        /// machine's operator).
        #[arg(long = "for", value_name = "USER")]
        maker: Option<String>,
        /// Only reading routes (GET), whatever the role: for dashboards and monitoring.
        #[arg(long)]
        read_only: bool,
        /// On a store with platform users, a token that may do more than read (for no user, or
        /// acting as one with --for) is made there as break-glass: a reason, audited, noticed.
        /// People make their own tokens signed in (the console's account page, the API).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// List tokens with their last use (never their secret).
    List {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke {
        /// The token's id (`tenure token list`; the part after `tenure_`).
        id: String,
    },
}

/// The password: from a file, a prompt on a terminal, or a one-time one (`true`: made here).
fn password(file: Option<&Path>, what: &str) -> Result<(Secret, bool), String> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return Ok((Secret::new(t.trim_end_matches(['\n', '\r']).to_string()), false));
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("{what}: ")).map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the two passwords differ; nothing was changed".into());
        }
        return Ok((Secret::new(a), false));
    }
    Ok((users::one_time_password(), true))
}

pub async fn user(cmd: UserCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    let store = crate::config::open(data_dir, database_url).await?;
    let r = user_with(&store, data_dir, cmd).await;
    store.close().await;
    r
}

async fn user_with(store: &store::Store, data_dir: &Path, cmd: UserCommand) -> Result<u8, String> {
    let by = crate::local::actor();
    match cmd {
        UserCommand::OidcSecret { secret_file } => {
            let secret = super::read_secret(secret_file.as_deref(), "client secret")?;
            let auth = crate::config::auth_settings(store).await?;
            let oidc = auth.oidc.ok_or(
                "no [auth.oidc] in the configuration in force: import it first (the secret is bound to its issuer)",
            )?;
            let key = store::MasterKey::load(data_dir)?;
            service::oidc::save_client_secret(store, &key, &oidc, &secret, &by).await?;
            outln!(
                "client secret set (ending in {}), sent only to {} for client {}",
                secret.hint(),
                oidc.issuer,
                oidc.client_id
            );
        }
        UserCommand::Add { name, role, password_file } => {
            let (p, once) = password(password_file.as_deref(), &format!("password for {name}"))?;
            users::add_audited(store, &name, role, &p, once, &by).await?;
            if once {
                outln!(
                    "user {name:?} added as {}; one-time password (shown once, to change at the first login): {}",
                    role.as_str(),
                    p.expose()
                );
            } else {
                outln!("user {name:?} added as {}", role.as_str());
            }
        }
        UserCommand::List { json } => {
            let all = store.users().await.map_err(|e| e.to_string())?;
            if json {
                let v: Vec<_> = all.iter().map(users::user_view).collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for u in &all {
                    let state = if u.disabled {
                        "disabled"
                    } else if u.must_change {
                        "must change password"
                    } else {
                        "active"
                    };
                    outln!("{:<24} {:<9} {state:<21} since {}", u.name, u.role, u.created_at);
                }
                outln!("users: {}", all.len());
            }
        }
        UserCommand::SetRole { name, role } => {
            users::set_role(store, &name, role, &by).await?;
            outln!("user {name:?} is now {}", role.as_str());
        }
        UserCommand::Disable { name } => {
            users::set_disabled(store, &name, true, &by).await?;
            outln!("user {name:?} disabled: their sessions have ended");
        }
        UserCommand::Enable { name } => {
            users::set_disabled(store, &name, false, &by).await?;
            outln!("user {name:?} enabled");
        }
        UserCommand::Sessions { name, json } => {
            let (u, all) = users::sessions(store, &name).await?;
            if json {
                let v: Vec<_> = all.iter().map(|s| users::session_view(s, None)).collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for s in all.iter().map(|s| users::session_view(s, None)) {
                    outln!(
                        "{}  signed in {}  last active {}  from {}  {}",
                        s["handle"].as_str().unwrap_or_default(),
                        s["signed_in"].as_str().unwrap_or_default(),
                        s["last_active"].as_str().unwrap_or_default(),
                        s["address"].as_str().unwrap_or("(unknown address)"),
                        s["browser"].as_str().unwrap_or("(unknown browser)")
                    );
                }
                outln!("sessions of {:?}: {}", u.name, all.len());
            }
        }
        UserCommand::ResetSecondFactor { name, break_glass } => {
            // It lets a password alone sign someone in: break-glass once people sign in.
            let key = store::MasterKey::load(data_dir).ok();
            let what = format!("remove the second factor of {name}");
            let by = crate::local::decide(store, key.as_ref(), &what, break_glass.as_deref()).await?.actor;
            crate::second_factor::remove(store, &name, &by).await?;
            let n = users::end_sessions(store, &name, &by).await?;
            outln!("the second factor of {name:?} is removed, and their {n} session(s) ended");
        }
        UserCommand::RequireSecondFactor { state, break_glass } => {
            let on = state == "on";
            let mut by = by;
            if !on {
                let key = store::MasterKey::load(data_dir).ok();
                let what = "stop requiring a second factor";
                by = crate::local::decide(store, key.as_ref(), what, break_glass.as_deref()).await?.actor;
            }
            crate::second_factor::set_required(store, on, &by).await?;
            outln!(
                "{}",
                if on {
                    "a second factor is required of every local account: whoever has none sets one up at their next sign-in"
                } else {
                    "a second factor is no longer required (those who have one keep it)"
                }
            );
        }
        UserCommand::EndSessions { name } => {
            let n = users::end_sessions(store, &name, &by).await?;
            outln!("{n} session(s) of {name:?} ended");
        }
        UserCommand::ResetPassword { name, password_file } => {
            let u = store
                .user(&name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user named {name:?} (tenure user list)"))?;
            let (p, once) = password(password_file.as_deref(), &format!("new password for {}", u.name))?;
            users::reset_password(store, &u.name, &p, once, &by).await?;
            if once {
                outln!("one-time password for {:?} (shown once, to change at the first login): {}", u.name, p.expose());
            } else {
                outln!("password of {:?} changed: their sessions have ended", u.name);
            }
        }
    }
    Ok(0)
}

pub async fn token(cmd: TokenCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    let store = crate::config::open(data_dir, database_url).await?;
    let r = token_with(&store, data_dir, cmd).await;
    store.close().await;
    r
}

async fn token_with(store: &store::Store, data_dir: &Path, cmd: TokenCommand) -> Result<u8, String> {
    match cmd {
        TokenCommand::Create { name, role, connection, expires, maker, read_only, break_glass } => {
            let now = jiff::Timestamp::now();
            let expires = expires.as_deref().map(|e| users::parse_expiry(e, now)).transpose()?;
            let maker = match maker {
                Some(m) => Some(
                    store
                        .user(&m)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("no user named {m:?}"))?
                        .name,
                ),
                None => None,
            };
            let mut by = crate::local::actor();
            // A token that may do more than read is an identity (a platform user's, with --for):
            // made from the store itself once people sign in, it is break-glass.
            if !read_only && role != Role::Viewer {
                let key = store::MasterKey::load(data_dir).ok();
                let what = match &maker {
                    Some(m) => format!("make an API token acting as {m}"),
                    None => "make an API token for no platform user".to_string(),
                };
                let what = what.as_str();
                let local = crate::local::decide(store, key.as_ref(), what, break_glass.as_deref()).await?;
                for w in &local.warnings {
                    eprintln!("warning: {w}");
                }
                by = local.actor;
            }
            let spec = users::TokenSpec { connection, expires, read_only, maker, ..users::TokenSpec::new(&name, role) };
            let t = users::create_token_audited(store, spec, &by).await?;
            outln!(
                "API token {} ({:?}, {}) (shown once; send it as Authorization: Bearer ...):",
                t.record.id,
                t.record.name,
                role.as_str()
            );
            outln!("{}", t.secret.expose());
        }
        TokenCommand::List { json } => {
            let all = store.tokens().await.map_err(|e| e.to_string())?;
            if json {
                let v: Vec<_> = all.iter().map(users::token_view).collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for t in &all {
                    let state = match (&t.revoked_at, &t.expires_at) {
                        (Some(r), _) => format!("revoked {r}"),
                        (None, Some(e)) => format!("expires {e}"),
                        (None, None) => "no expiry".into(),
                    };
                    outln!(
                        "{}  {:<24} {:<9} {:<20} last used {}  {state}",
                        t.id,
                        t.name,
                        t.role,
                        t.connection.as_deref().unwrap_or("(all connections)"),
                        t.last_used_at.as_deref().unwrap_or("never")
                    );
                }
                outln!("tokens: {}", all.len());
            }
        }
        TokenCommand::Revoke { id } => {
            users::revoke_token(store, &id, &crate::local::actor()).await?;
            outln!("token {id} revoked");
        }
    }
    Ok(0)
}

/// A platform role on the command line, with its possible values in `--help`.
fn role() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["admin", "editor", "reviewer", "viewer"])
        .map(|s| Role::parse(&s).expect("one of the possible values"))
}
