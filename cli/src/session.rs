//! Connecting, credentials and the per-invocation login.
//!
//! The command line keeps nothing between invocations: a command that
//! needs a session logs in, keeps the token in memory, and forgets it when
//! it exits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use hsm_client::{Client, ClientConfig, ClientOptions, Error as SdkError, ErrorKind, Session};
use hsm_client::{Role, Username};
use zeroize::Zeroizing;

use crate::error::{CliError, Result};

/// The environment variable holding the password of the user logging in.
pub const PASSWORD_ENV: &str = "HSM_PASSWORD";

/// What every command gets from the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--cluster` / `HSM_CLUSTER`.
    pub cluster: Option<PathBuf>,
    /// `--timeout-secs`.
    pub timeout: Duration,
    /// `--username` / `HSM_USER`.
    pub username: Option<String>,
    /// `--mfa-key` / `HSM_MFA_KEY`.
    pub mfa_key: Option<PathBuf>,
}

/// A client with a session, and who it is.
pub struct LoggedIn {
    /// The client, carrying the session token.
    pub client: Client,
    /// The user and role.
    pub session: Session,
}

impl LoggedIn {
    /// Converts an SDK error, explaining a refusal by who is logged in.
    pub fn explain(&self, e: SdkError) -> CliError {
        let denied = e.kind() == Some(ErrorKind::PermissionDenied);
        let err = CliError::from(e);
        if denied {
            err.hint(format!(
                "logged in as {} with role {}",
                self.session.username, self.session.role
            ))
        } else {
            err
        }
    }
}

impl Context {
    /// The client config file, read and checked.
    ///
    /// # Errors
    /// `usage` when no file is named, `config` when it is unusable.
    pub fn config(&self) -> Result<ClientConfig> {
        let path = self.cluster.as_ref().ok_or_else(|| {
            CliError::usage(
                "no cluster named: pass --cluster FILE or set HSM_CLUSTER to the client config \
                 file that `hsm-node init` or `hsm-node dev` wrote",
            )
        })?;
        Ok(hsm_client::load_config(path)?)
    }

    /// Client options from the global flags.
    pub fn options(&self) -> ClientOptions {
        ClientOptions::default()
            .deadline(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(2)))
    }

    /// A client of the cluster, once a node has answered.
    ///
    /// # Errors
    /// As [`Context::config`]; `unavailable` with the addresses tried.
    pub async fn connect(&self) -> Result<Client> {
        Ok(Client::connect(self.config()?, self.options()).await?)
    }

    /// The user to log in as: `explicit`, else `--username` / `HSM_USER`.
    ///
    /// # Errors
    /// `usage` when none is given, `invalid-input` for a malformed name.
    pub fn login_user(&self, explicit: Option<&str>) -> Result<Username> {
        let name = explicit.or(self.username.as_deref()).ok_or_else(|| {
            CliError::usage(
                "this command needs a login: set HSM_USER (or pass --username NAME before the \
                 command) and HSM_PASSWORD",
            )
        })?;
        username(name)
    }

    /// Connects and logs in as `explicit` or the configured user, with the
    /// password from `HSM_PASSWORD` or a prompt.
    ///
    /// # Errors
    /// As [`Context::connect`]; `login-failed` or `locked` (exit code 3).
    pub async fn login(&self, explicit: Option<&str>) -> Result<LoggedIn> {
        Ok(self.login_with_password(explicit).await?.0)
    }

    /// [`Context::login`], also giving back the password it logged in
    /// with: the current password that a change of one's own needs.
    ///
    /// # Errors
    /// As [`Context::login`].
    pub async fn login_with_password(
        &self,
        explicit: Option<&str>,
    ) -> Result<(LoggedIn, Zeroizing<String>)> {
        let user = self.login_user(explicit)?;
        let client = self.connect().await?;
        let password = password_for(&user)?;
        let second_factor = self
            .mfa_key
            .as_deref()
            .map(crate::approval::KeyFile::open)
            .transpose()?;
        let session = login(&client, &user, &password, second_factor.as_ref()).await?;
        Ok((LoggedIn { client, session }, password))
    }
}

/// A user name from the command line.
///
/// # Errors
/// `invalid-input` naming the rule the name breaks.
pub fn username(name: &str) -> Result<Username> {
    Username::new(name).map_err(CliError::invalid)
}

/// Logs `client` in, with messages that say what to do.
///
/// # Errors
/// The login's refusal, explained.
pub async fn login(
    client: &Client,
    user: &Username,
    password: &str,
    second_factor: Option<&crate::approval::KeyFile>,
) -> Result<Session> {
    let logged_in = match second_factor {
        Some(key) => {
            client
                .login_mfa(user.clone(), password, |s| key.sign(s))
                .await
        }
        None => client.login(user.clone(), password).await,
    };
    logged_in.map_err(|e| match e.kind() {
        Some(ErrorKind::LoginFailed) => {
            CliError::from(e).context(format!("cannot log in as {user}"))
        }
        Some(ErrorKind::Locked) => CliError::from(e).hint(format!(
            "after too many failed logins; a crypto officer can unlock it with \
                 `hsm user unlock --username {user}`; with no officer left, an operator on a \
                 member's host can: `hsm-node unlock-user --config node.toml --username {user}`"
        )),
        _ => CliError::from(e).context(format!("cannot log in as {user}")),
    })
}

/// The CLI name of a role.
pub fn role_name(role: Role) -> &'static str {
    role.as_str()
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| CliError::usage(format!("cannot read a password from the terminal: {e}")))
}

/// The password of `user`: `HSM_PASSWORD`, or asked for without echo when
/// run in a terminal.
///
/// # Errors
/// `usage` when neither is possible.
pub fn password_for(user: &Username) -> Result<Zeroizing<String>> {
    password_prompted(user, &format!("Password for {user}: "))
}

/// As [`password_for`], with the prompt `text`.
///
/// # Errors
/// As [`password_for`].
pub fn password_prompted(user: &Username, text: &str) -> Result<Zeroizing<String>> {
    if let Some(p) = std::env::var_os(PASSWORD_ENV) {
        return p
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| CliError::invalid(format!("{PASSWORD_ENV} is not valid UTF-8")));
    }
    if !interactive() {
        return Err(CliError::usage(format!(
            "no password for {user}: set {PASSWORD_ENV}, or run hsm in a terminal to be asked"
        )));
    }
    prompt(text)
}

/// A new password for `whose`: from the environment variable `env` when
/// given (by the option `flag`), else asked for twice without echo.
///
/// # Errors
/// `usage` when the variable is unset or no terminal can be asked;
/// `invalid-input` when the two entries differ or are empty.
pub fn new_password(env: Option<&str>, flag: &str, whose: &str) -> Result<Zeroizing<String>> {
    let password = match env {
        Some(var) => match std::env::var_os(var) {
            Some(p) => p
                .into_string()
                .map(Zeroizing::new)
                .map_err(|_| CliError::invalid(format!("{var} is not valid UTF-8")))?,
            None => {
                return Err(CliError::usage(format!(
                    "the environment variable {var} that should hold the new password for \
                     {whose} is not set"
                )))
            }
        },
        None => {
            if !interactive() {
                return Err(CliError::usage(format!(
                    "no new password for {whose}: pass {flag} VAR naming an environment variable \
                     that holds it, or run hsm in a terminal to be asked"
                )));
            }
            let first = prompt(&format!("New password for {whose}: "))?;
            let second = prompt(&format!("Repeat the new password for {whose}: "))?;
            if first != second {
                return Err(CliError::invalid(
                    "the two passwords differ; nothing changed",
                ));
            }
            first
        }
    };
    if password.is_empty() {
        return Err(CliError::invalid("the new password is empty"));
    }
    Ok(password)
}
