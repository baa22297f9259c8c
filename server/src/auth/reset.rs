//! `vigil admin reset-password [USER]`: the way back into the console when a password is lost. It works on the
//! database directly (a shell on the server is the proof of authority), sets a new password — generated, or
//! read from standard input — and ends the user's sessions.

use super::users;
use crate::config::ResetPasswordArgs;
use anyhow::{bail, Context};

pub async fn reset_password(args: ResetPasswordArgs) -> anyhow::Result<()> {
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (users::generate_password(), true)
    };
    users::validate_password(&args.user, &password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = crate::db::Db::connect(&args.database_url).await?;
    let mut conn = db.pool.acquire().await?;
    let Some((user, _)) = users::find_with_hash(&mut conn, &args.user).await? else {
        let names: Vec<String> = users::list(&mut conn).await?.into_iter().map(|u| u.name).collect();
        bail!(
            "there is no console user {:?} in {} (users: {})",
            args.user,
            crate::db::redact(&args.database_url),
            if names.is_empty() { "none yet; `vigil serve` creates `admin` at its first start".into() } else { names.join(", ") }
        );
    };
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&pw)).await??;
    users::set_password_hash(&mut conn, &user.id, &hash).await?;
    let ended = users::end_sessions(&mut conn, &user.id).await?;
    if generated {
        println!("The console user `{}` has a new password: {password}", user.name);
    } else {
        println!("The console user `{}` has the new password read from standard input.", user.name);
    }
    println!("Their {ended} open session(s) ended; sign in again at /signin.");
    Ok(())
}
