//! `berth user|token|org|team|repo|access`: clap verbs over `access_admin` (`repo rm`
//! is `lifecycle_commands`'; `repo describe` writes for the catalog site).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::bail;
use berth_core::Repository;
use berth_core::access::Name;
use berth_core::store::Store;
use berth_publisher::access_admin as admin;
use berth_publisher::{derived, site};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin.
    Add(PasswordArgs),
    /// Remove a user, their tokens and team memberships.
    Remove { name: String },
    /// Change a user's password (read from stdin).
    Passwd(PasswordArgs),
}

#[derive(Args)]
pub struct PasswordArgs {
    name: String,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an access token (usable as the `docker login` password); printed once.
    Create {
        user: String,
        /// A label, unique per user, to list and revoke it by.
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. 30d, 12h; never expires by default.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List a user's tokens (labels and expiry, never the tokens).
    List { user: String },
    /// Revoke a token: it stops working within the registry's cache time.
    Revoke { user: String, label: String },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Add an organisation: a namespace (first path segment) for teams.
    Add { org: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team (ORG/TEAM) or add members to it.
    Add {
        team: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Let a team pull repositories matching PATTERN (e.g. acme/*, acme/web).
    Grant {
        team: String,
        pattern: String,
        action: String,
    },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Let anyone pull the repository, without logging in.
    Public { repository: String },
    /// Require a login with pull access again.
    Private { repository: String },
    /// Remove the repository: tags, manifests, blobs (asks first unless --yes).
    Rm(crate::lifecycle_commands::RepoRmArgs),
    /// Set what the repository's page on the catalog site shows.
    Describe {
        repository: String,
        /// One line shown on the home page and under the page's title.
        #[arg(long)]
        summary: Option<String>,
        /// A Markdown file shown as the page's README (rendered and sanitized).
        #[arg(long)]
        readme: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// What exists: users, token labels, organisations, teams, public repositories.
    Show,
}

fn read_password(args: &PasswordArgs) -> anyhow::Result<String> {
    if !args.password_stdin {
        bail!("pass the password on stdin with --password-stdin (never on the command line)");
    }
    read_stdin_line()
}

/// The first line of stdin, without its line ending: how secrets reach the CLI.
pub fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn user(store: &dyn Store, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => {
            let name: Name = args.name.parse()?;
            admin::add_user(store, &name, &read_password(&args)?).await?;
            eprintln!("added user {name}");
        }
        UserCommand::Remove { name } => {
            admin::remove_user(store, &name.parse()?).await?;
            eprintln!("removed user {name}");
        }
        UserCommand::Passwd(args) => {
            let name: Name = args.name.parse()?;
            admin::set_password(store, &name, &read_password(&args)?).await?;
            eprintln!("changed the password of {name}");
        }
    }
    Ok(())
}

pub async fn token(store: &dyn Store, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            name,
            expires,
        } => {
            let expires = expires.as_deref().map(admin::parse_duration).transpose()?;
            let token = admin::create_token(store, &user.parse()?, &name, expires).await?;
            eprintln!("created token {name} for {user}; it is shown only now:");
            println!("{token}");
        }
        TokenCommand::List { user } => {
            let user: Name = user.parse()?;
            let config = berth_core::access::AccessConfig::load(store).await?;
            for (label, token) in config.tokens.get(&user).into_iter().flatten() {
                let expiry = token.expires_at.map_or("never".to_owned(), admin::rfc3339);
                println!(
                    "{label}\tcreated {}\texpires {expiry}",
                    admin::rfc3339(token.created_at)
                );
            }
        }
        TokenCommand::Revoke { user, label } => {
            admin::revoke_token(store, &user.parse()?, &label).await?;
            eprintln!("revoked token {label} of {user}");
        }
    }
    Ok(())
}

pub async fn org(store: &dyn Store, command: OrgCommand) -> anyhow::Result<()> {
    let OrgCommand::Add { org } = command;
    admin::add_org(store, &org.parse()?).await?;
    eprintln!("added organisation {org}");
    Ok(())
}

pub async fn team(store: &dyn Store, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Add { team, members } => {
            let (org, name) = admin::parse_team(&team)?;
            let members = members
                .iter()
                .map(|m| m.parse())
                .collect::<Result<Vec<Name>, _>>()?;
            admin::add_team(store, &org, &name, &members).await?;
            eprintln!("team {team} now includes {} new member(s)", members.len());
        }
        TeamCommand::Grant {
            team,
            pattern,
            action,
        } => {
            let (org, name) = admin::parse_team(&team)?;
            admin::grant(store, &org, &name, &pattern, &action).await?;
            eprintln!("team {team} may {action} {pattern}");
        }
    }
    Ok(())
}

pub async fn repo(store: &dyn Store, command: RepoCommand) -> anyhow::Result<()> {
    let (repository, public) = match command {
        RepoCommand::Public { repository } => (repository, true),
        RepoCommand::Private { repository } => (repository, false),
        RepoCommand::Rm(args) => return crate::lifecycle_commands::repo_rm(store, args).await,
        RepoCommand::Describe {
            repository,
            summary,
            readme,
        } => return describe(store, &repository, summary, readme).await,
    };
    let repository: Repository = repository.parse()?;
    admin::set_public(store, &repository, public).await?;
    eprintln!(
        "{repository} is now {}",
        if public { "public" } else { "private" }
    );
    Ok(())
}

async fn describe(
    store: &dyn Store,
    repository: &str,
    summary: Option<String>,
    readme: Option<PathBuf>,
) -> anyhow::Result<()> {
    let repository: Repository = repository.parse()?;
    if summary.is_none() && readme.is_none() {
        bail!("nothing to describe: pass --summary TEXT and/or --readme FILE");
    }
    if summary.as_deref().is_some_and(|s| s.contains('\n')) {
        bail!("the summary is one line: put longer text in the README (--readme FILE)");
    }
    let readme = match readme {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read the README {}: {e}", path.display()))?,
        ),
        None => None,
    };
    site::set_description(store, &repository, summary, readme).await?;
    let public = derived::public_repositories(store).await?;
    if public.contains(&repository) {
        derived::refresh_public(store, site::Change::Repository(&repository)).await?;
        eprintln!("described {repository}; its page is updated");
    } else {
        eprintln!("described {repository}; it shows on the site once it is published and public");
    }
    Ok(())
}

pub async fn access(store: &dyn Store, command: AccessCommand) -> anyhow::Result<()> {
    let AccessCommand::Show = command;
    print!("{}", admin::describe(store).await?);
    Ok(())
}
