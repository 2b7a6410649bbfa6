//! The command line grammar (clap). Doc comments here are the help text.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

const ABOUT: &str = "Command line of the HSM cluster, modelled on the AWS CloudHSM CLI.";

const LONG_ABOUT: &str = "\
Command line of the HSM cluster, modelled on the AWS CloudHSM CLI.

Every invocation is one command: commands that need a session log in first
as HSM_USER (or --username, given before the command) with the password in
HSM_PASSWORD, or asked for without echo when run in a terminal. No session
is kept between invocations.

Output is JSON ({\"error_code\": 0, \"data\": {...}}) unless --output table.
Exit codes: 0 ok, 1 other failure, 2 usage, 3 authentication, permission or
locked user, 4 not found, conflict or invalid input, 5 cluster unavailable.";

/// `hsm`.
#[derive(Debug, Parser)]
#[command(name = "hsm", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// The cluster's client config file, as `hsm-node init` or
    /// `hsm-node dev` wrote it.
    #[arg(long, global = true, env = "HSM_CLUSTER", value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Output format.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HSM_OUTPUT",
        default_value = "json"
    )]
    pub output: Format,
    /// Time each call to the cluster may take, in seconds, retries on other
    /// nodes included.
    #[arg(
        long,
        global = true,
        env = "HSM_TIMEOUT_SECS",
        default_value_t = 10,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub timeout_secs: u64,
    /// The user to log in as, for commands that need a session. Give it
    /// before the command: `hsm --username alice key list`. The password
    /// comes from HSM_PASSWORD, or a prompt in a terminal.
    #[arg(long, env = "HSM_USER", value_name = "NAME")]
    pub username: Option<String>,
    /// The user's second factor: its Ed25519 private key file (PKCS#8,
    /// `openssl genpkey -algorithm ed25519`), which signs the cluster's
    /// login challenge here; the key never leaves this machine. Needed by
    /// users that set one (`hsm user change-mfa`).
    #[arg(long, global = true, env = "HSM_MFA_KEY", value_name = "FILE")]
    pub mfa_key: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check credentials: log in and print the user and its role.
    Login(LoginArgs),
    /// End every session of the user (HSM_USER) issued so far, on every
    /// node: after a token leaked, or to sign out every service logged in
    /// as that user. (hsm itself keeps no session between invocations.)
    Logout,
    /// Activate the cluster and show its state.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Manage users (crypto officers).
    #[command(subcommand)]
    User(UserCommand),
    /// Create, find, share, change, wrap and delete keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign, verify, encrypt, decrypt, hash and draw random bytes.
    #[command(subcommand)]
    Crypto(CryptoCommand),
    /// Approve or remove member nodes (crypto officers).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Take, list, check and delete sealed backups (crypto officers).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Quorum (M of N) approvals of officer operations: tokens, approvals
    /// and quorum values (crypto officers).
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// The audit trail in the archive beside the backups, read and checked
    /// offline with a recovery key (no cluster needed), and the cluster's
    /// chain head to check it against.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// Where an audit archive is and what opens it.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// The backup destination (`file:///dir` or `s3://bucket/prefix`); the
    /// archive is its `audit/` folder.
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// A recovery private key file of the cluster (`hsm-node
    /// recovery-key`), which opens the sealed segments.
    #[arg(long, value_name = "FILE")]
    pub recovery_key: PathBuf,
}

/// `audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole trail: every segment whole and authentic, event
    /// numbers without gaps, each event linked to the one before it, each
    /// signed by a member as the trail itself says who the members were.
    /// Exit code 4 names every gap, changed, forged or moved event.
    Verify {
        /// The archive.
        #[command(flatten)]
        archive: ArchiveArgs,
        /// The signing key (hex) of the cluster's first member, which the
        /// trail starts from: the anchor of trust. Without it the verdict
        /// names the key the trail starts from, to compare.
        #[arg(long, value_name = "HEX")]
        anchor: Option<String>,
        /// `N:HEX` as `hsm audit head` printed it (`events:head`): the
        /// trail must hold event N with that hash, so its end was not cut
        /// off before it.
        #[arg(long, value_name = "N:HEX")]
        cluster_head: Option<String>,
    },
    /// The cluster's event chain head now (crypto officers): the number
    /// of the last event and its hash, as `events:head` for `verify
    /// --cluster-head`. Keep it apart from the archive.
    Head,
    /// Who did what and when: the events of the trail, oldest first.
    List {
        /// The archive.
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Only events at or after this time (ms since the Unix epoch).
        #[arg(long, value_name = "MS")]
        since: Option<u64>,
        /// Only events before this time (ms since the Unix epoch).
        #[arg(long, value_name = "MS")]
        until: Option<u64>,
        /// Only events by this user, or naming it.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only events naming this key (`key-reference`, 0x...).
        #[arg(long, value_name = "REF")]
        key: Option<String>,
    },
}

/// `quorum ...`.
#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Tokens: generate one for an operation, sign it as an approver, hand
    /// the approvals in, list and delete.
    #[command(subcommand)]
    TokenSign(TokenSignCommand),
    /// Set a service's quorum value: how many officers must approve its
    /// operations (1: the officer alone). Itself under the quorum service's
    /// value.
    SetValue {
        /// The service: user, cluster or quorum.
        #[arg(long, value_enum)]
        service: ServiceArg,
        /// Approvals needed, 1 to 16; at most the officers with approval
        /// keys.
        #[arg(long, value_name = "M")]
        value: u8,
    },
    /// Quorum values, officers with approval keys, users with a second
    /// factor, and live tokens.
    Show,
}

/// A quorum service as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceArg {
    /// User management: create, delete, other users' passwords, unlock,
    /// approval keys, second-factor resets.
    User,
    /// Members, the domain key's rotation, trusted keys.
    Cluster,
    /// Quorum values.
    Quorum,
}

/// `quorum token-sign ...`.
#[derive(Debug, Subcommand)]
pub enum TokenSignCommand {
    /// Ask the cluster for a token for one operation, written to --out
    /// with the statement approvers sign. Then approvers sign it (`hsm
    /// quorum token-sign sign`, or openssl), someone hands the signatures
    /// in (`approve`), and you run the operation as usual within 30
    /// minutes: the cluster finds your approved token for it.
    Generate {
        /// The token file to write (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The operation.
        #[command(subcommand)]
        operation: IntentCommand,
    },
    /// Sign a token file as an approver, offline: with your Ed25519
    /// private key, or add a signature made elsewhere (`openssl pkeyutl
    /// -sign -rawin -inkey key.pem -in statement.bin -out sig.bin`, the
    /// statement being the token file's `statement`, base64).
    Sign {
        /// The token file (changed in place).
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// The approving officer.
        #[arg(long, value_name = "NAME")]
        approver: String,
        /// Your Ed25519 private key file.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "signature",
            required_unless_present = "signature"
        )]
        private_key: Option<PathBuf>,
        /// A raw 64-byte Ed25519 signature file instead.
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Hand in every signature of a token file (any crypto officer): the
    /// cluster checks each against its approver's registered key.
    Approve {
        /// The token file.
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
    },
    /// The cluster's tokens and their approvals.
    List,
    /// Delete one of your tokens.
    Delete {
        /// The token id (32 hex digits).
        #[arg(long, value_name = "ID")]
        token: String,
    },
}

/// The operation a token is for: the command it approves, and its target.
#[derive(Debug, Subcommand)]
pub enum IntentCommand {
    /// `user create --username NAME --role ROLE`.
    UserCreate {
        /// The new user.
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Its role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// `user delete --username NAME`.
    UserDelete {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// `user change-password --username NAME` (another user's).
    UserChangePassword {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// `user unlock --username NAME`.
    UserUnlock {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// `user change-mfa --username NAME --disable` (another user's).
    UserResetMfa {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// `user change-quorum token-sign register|unregister --username
    /// NAME` (any change but an officer's first own key).
    UserChangeQuorum {
        /// The officer.
        #[arg(long, value_name = "NAME")]
        username: String,
        /// The new Ed25519 public key file; without it, clearing the key.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
    /// `node add --request FILE`.
    NodeAdd {
        /// The join request file.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
    },
    /// `node remove --node-id ID`.
    NodeRemove {
        /// The member's node id.
        #[arg(long, value_name = "ID")]
        node_id: u64,
    },
    /// `cluster rotate-domain-key`.
    RotateDomainKey,
    /// `key set-attribute --attribute trusted --value BOOL` on one key.
    KeySetTrusted {
        /// The key (`key-reference` from `hsm key list`, 0x...).
        #[arg(long, value_name = "REF")]
        key_reference: String,
        /// The new value.
        #[arg(long, value_name = "BOOL", value_parser = BoolishValueParser::new())]
        value: bool,
    },
    /// `quorum set-value --service S --value M`.
    SetValue {
        /// The service.
        #[arg(long, value_enum)]
        service: ServiceArg,
        /// The new value.
        #[arg(long, value_name = "M")]
        value: u8,
    },
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user (default: --username before the command, or HSM_USER).
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
}

/// `cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The unactivated `admin` sets its password, which activates the
    /// cluster. Logs in as admin with the one-time password (HSM_PASSWORD
    /// or a prompt).
    Activate {
        /// Read the new admin password from this environment variable
        /// instead of asking twice.
        #[arg(long, value_name = "VAR")]
        new_password_env: Option<String>,
    },
    /// Members, leader, zones, each member's health and the domain key
    /// generation; with a login (HSM_USER), also the key and user counts
    /// and the leader's view: each member's lag and Raft protocol version,
    /// the cluster's version and the leader's last backup.
    Info,
    /// Replace the domain key with a new generation sealed to the current
    /// members only (crypto officer). Every session ends; the leader then
    /// re-wraps every key's material and retires the old generation (`hsm
    /// cluster info` shows the progress). Removing a member does this on
    /// its own.
    RotateDomainKey,
}

/// A role as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A crypto officer: manages users, never uses keys.
    Admin,
    /// A crypto user: creates, manages and uses keys.
    CryptoUser,
}

/// `user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (crypto officer).
    Create {
        /// The new user's name.
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Its role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the new user's password from this environment variable
        /// instead of asking twice.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Delete a user that owns no keys (crypto officer).
    Delete {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// List users (crypto officer).
    List,
    /// Change your own password (the one you log in with is checked as the
    /// current one), or (crypto officer) another user's.
    ChangePassword {
        /// Whose password (default: your own).
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
        /// Read the new password from this environment variable instead of
        /// asking twice.
        #[arg(long, visible_alias = "new-password-env", value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Unlock a user locked after failed logins (crypto officer).
    Unlock {
        /// The user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// Set, change or clear your second factor, an Ed25519 key whose
    /// private half signs every login (`--mfa-key`); the password you log
    /// in with is checked as the current one. A crypto officer may clear
    /// another user's (`--username NAME --disable`; under the user
    /// service's quorum).
    ChangeMfa {
        /// Whose (default: your own).
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
        /// The Ed25519 public key file (`openssl pkey -pubout`).
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "disable",
            required_unless_present = "disable"
        )]
        public_key: Option<PathBuf>,
        /// Clear it instead.
        #[arg(long)]
        disable: bool,
    },
    /// Your quorum approval key (crypto officers).
    #[command(subcommand)]
    ChangeQuorum(ChangeQuorumCommand),
}

/// `user change-quorum ...`.
#[derive(Debug, Subcommand)]
pub enum ChangeQuorumCommand {
    /// Token-signing approval keys.
    #[command(subcommand)]
    TokenSign(ApprovalKeyCommand),
}

/// `user change-quorum token-sign ...`.
#[derive(Debug, Subcommand)]
pub enum ApprovalKeyCommand {
    /// Register an Ed25519 public key that your approvals are signed
    /// with: your first one with your password (the one you log in with),
    /// a change (or another officer's) under the largest quorum value.
    Register {
        /// The Ed25519 public key file (`openssl pkey -pubout`).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Whose (default: your own).
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
    },
    /// Clear an approval key (under the largest quorum value; refused
    /// while it would leave fewer approvers than a quorum value needs).
    Unregister {
        /// Whose (default: your own).
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
    },
}

/// Filter tokens that select keys: `attr.label=L`, `attr.id=HEX`,
/// `attr.key-type=aes|generic-secret|rsa|ec|ed25519|x25519`,
/// `owner=NAME`, `key-reference=0x...`, `attr.<flag>=true|false`.
#[derive(Debug, Clone, Args)]
pub struct KeyFilterArgs {
    /// Selects exactly one key: `attr.label=L`, `attr.id=HEX`,
    /// `attr.key-type=T`, `owner=NAME`, `key-reference=0x...` or
    /// `attr.<flag>=true|false`; all given must match.
    #[arg(
        long = "key-filter",
        visible_alias = "filter",
        num_args = 1..,
        required = true,
        value_name = "FILTER"
    )]
    pub key_filter: Vec<String>,
}

/// Attributes of a key being created.
#[derive(Debug, Clone, Args)]
pub struct NewKeyArgs {
    /// The key's label.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// The key's id attribute (CKA_ID), hex.
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// What the key may do: encrypt, decrypt, sign, verify, wrap, unwrap,
    /// derive (comma or space separated, each optionally `=true|false`).
    /// Without it: encrypt,decrypt for AES; sign,verify for generic
    /// secrets, RSA, EC and Ed25519; derive for X25519.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "ATTR")]
    pub attributes: Vec<String>,
    /// Whether the key may leave the HSM wrapped (default true; may only
    /// ever be turned off later).
    #[arg(long, value_name = "BOOL", value_parser = BoolishValueParser::new())]
    pub extractable: Option<bool>,
    /// Whether the key material may never leave in plaintext (default true,
    /// false for `key import`).
    #[arg(long, value_name = "BOOL", value_parser = BoolishValueParser::new())]
    pub sensitive: Option<bool>,
    /// Whether the key may only be wrapped by a trusted key (default false).
    #[arg(long, value_name = "BOOL", value_parser = BoolishValueParser::new())]
    pub wrap_with_trusted: Option<bool>,
    /// Refuse if you already own a key with this label.
    #[arg(long)]
    pub unique_label: bool,
}

/// A symmetric key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SymmetricType {
    /// AES, 16, 24 or 32 bytes.
    Aes,
    /// A generic secret for HMAC, 1 to 800 bytes.
    GenericSecret,
}

/// An elliptic curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Curve {
    /// NIST P-256.
    #[value(alias = "secp256r1", alias = "p-256")]
    Prime256v1,
    /// NIST P-384.
    #[value(alias = "p-384")]
    Secp384r1,
    /// secp256k1.
    Secp256k1,
}

/// `key generate-asymmetric-pair ...`.
#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// An RSA key pair.
    Rsa {
        /// Modulus size: 2048, 3072 or 4096 (public exponent 65537).
        #[arg(long, value_name = "BITS")]
        modulus_size_bits: u16,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// An elliptic curve key pair.
    Ec {
        /// The curve.
        #[arg(long, value_enum)]
        curve: Curve,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// An Ed25519 signing key pair.
    Ed25519 {
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// An X25519 key agreement pair.
    X25519 {
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
}

/// Any key type, with its size (for import and unwrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// AES.
    Aes,
    /// A generic secret.
    GenericSecret,
    /// RSA.
    Rsa,
    /// Elliptic curve (give --curve).
    Ec,
    /// Ed25519.
    Ed25519,
    /// X25519.
    X25519,
}

/// The type and size of a key that comes in from outside.
#[derive(Debug, Clone, Args)]
pub struct KeyTypeArgs {
    /// The key's type.
    #[arg(long, value_enum)]
    pub key_type: KeyType,
    /// Size of an AES key or generic secret (default for import: the
    /// file's length).
    #[arg(long, value_name = "BYTES")]
    pub key_length_bytes: Option<u16>,
    /// Modulus size of an RSA key.
    #[arg(long, value_name = "BITS")]
    pub modulus_size_bits: Option<u16>,
    /// Curve of an EC key.
    #[arg(long, value_enum)]
    pub curve: Option<Curve>,
}

/// Data given as text or read from a file.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DataArgs {
    /// Read the data from this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub data_path: Option<PathBuf>,
    /// The data, as text (its UTF-8 bytes).
    #[arg(long, value_name = "TEXT")]
    pub data: Option<String>,
}

/// Binary data given as base64 or read from a file.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct BinaryDataArgs {
    /// Read the data from this file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub data_path: Option<PathBuf>,
    /// The data, base64 (as the JSON output of hsm gives it); for `crypto
    /// decrypt` also `hsm:v<N>:...` as `crypto encrypt` gives it.
    #[arg(long, value_name = "BASE64")]
    pub data: Option<String>,
}

/// A wrapping mechanism; the result is in the cluster's wrapped-key
/// format (docs/crypto.md), which carries the key's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WrapMech {
    /// AES key wrap with padding (RFC 5649) under the key's wrapping subkey.
    AesKeyWrapPad,
    /// AES-GCM under the key's wrapping subkey.
    AesGcm,
    /// RSA-OAEP with SHA-256 (symmetric keys only).
    RsaOaep,
}

/// `key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an AES key or generic secret in the HSM.
    GenerateSymmetric {
        /// The key type.
        #[arg(value_enum)]
        key_type: SymmetricType,
        /// Key size in bytes.
        #[arg(long, value_name = "BYTES")]
        key_length_bytes: u16,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// Generate a key pair in the HSM (one key reference for both halves).
    #[command(subcommand)]
    GenerateAsymmetricPair(PairCommand),
    /// List the keys you can see, optionally filtered.
    List {
        /// Only keys matching all of these: `attr.label=L`, `attr.id=HEX`,
        /// `attr.key-type=T`, `owner=NAME`, `key-reference=0x...`,
        /// `attr.<flag>=true|false`.
        #[arg(
            long,
            visible_alias = "key-filter",
            num_args = 1..,
            value_name = "FILTER"
        )]
        filter: Vec<String>,
    },
    /// Share a key you own with a crypto user.
    Share {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The crypto user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// Stop sharing a key you own with a crypto user.
    Unshare {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The crypto user.
        #[arg(long, value_name = "NAME")]
        username: String,
    },
    /// Change one attribute of a key.
    SetAttribute {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// label, id, encrypt, decrypt, sign, verify, wrap, unwrap, derive,
        /// extractable, sensitive, trusted or wrap-with-trusted.
        #[arg(long, value_name = "ATTR")]
        name: String,
        /// The new value: text for label, hex for id, true|false otherwise.
        #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
        value: String,
    },
    /// Delete a key you own.
    Delete {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
    },
    /// Export a key you own wrapped under another key in the HSM.
    Wrap {
        /// How to wrap.
        #[arg(value_enum)]
        mechanism: WrapMech,
        /// The wrapping key (needs the wrap attribute).
        #[arg(
            long,
            visible_alias = "wrapping-filter",
            num_args = 1..,
            required = true,
            value_name = "FILTER"
        )]
        wrapping_key_filter: Vec<String>,
        /// The key to wrap (extractable).
        #[arg(
            long,
            visible_alias = "payload-filter",
            num_args = 1..,
            required = true,
            value_name = "FILTER"
        )]
        key_filter: Vec<String>,
        /// Write the wrapped key to this file instead of base64 in the
        /// output.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Import a wrapped key, unwrapping it under a key in the HSM.
    Unwrap {
        /// How it was wrapped.
        #[arg(value_enum)]
        mechanism: WrapMech,
        /// The unwrapping key (needs the unwrap attribute).
        #[arg(
            long,
            visible_alias = "wrapping-filter",
            num_args = 1..,
            required = true,
            value_name = "FILTER"
        )]
        wrapping_key_filter: Vec<String>,
        /// The wrapped key.
        #[command(flatten)]
        data: BinaryDataArgs,
        /// Type and size of the wrapped key.
        #[command(flatten)]
        key_type: KeyTypeArgs,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// Import plaintext key material: raw bytes for AES and generic
    /// secrets, PKCS#8 (DER or PEM) for private keys. The key is marked as
    /// known outside the cluster (not local).
    Import {
        /// Type and size of the key.
        #[command(flatten)]
        key_type: KeyTypeArgs,
        /// The key file (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// Import a public key alone (PEM `PUBLIC KEY` or DER
    /// SubjectPublicKeyInfo), to verify signatures, encrypt (RSA-OAEP) or
    /// wrap keys to an outside party. Its type comes from the file; it can
    /// never sign, decrypt, unwrap or derive (the cluster holds no private
    /// half). Default usages: verify, and for RSA also encrypt and wrap.
    ImportPublic {
        /// The public key file (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        /// Attributes of the new key.
        #[command(flatten)]
        key: NewKeyArgs,
    },
    /// Give a key you own a new version: new material, generated in the
    /// HSM, signs and encrypts from now on; older versions still decrypt
    /// and verify (what they made says its version) down to the minimum
    /// decryption version. A key pair's certificate is cleared.
    Rotate {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
    },
    /// Show a key's versions: the latest, the minimum decryption version
    /// and the versions kept.
    Versions {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
    },
    /// Set the oldest version of a key you own that may still decrypt and
    /// verify.
    SetMinDecryptionVersion {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The version, from the oldest kept to the latest.
        #[arg(long, value_name = "N")]
        version: u32,
    },
    /// Delete the versions of a key you own older than --below, for good
    /// (--below may not be above the minimum decryption version).
    TrimVersions {
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The oldest version to keep.
        #[arg(long, value_name = "N")]
        below: u32,
    },
    /// Write the public half of a key pair to a file.
    GenerateFile {
        /// PEM (`-----BEGIN PUBLIC KEY-----`) or DER SubjectPublicKeyInfo.
        #[arg(long, value_enum, default_value = "pem")]
        encoding: Encoding,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        /// The key pair.
        #[command(flatten)]
        key: KeyFilterArgs,
    },
}

/// A public key file encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// PEM text.
    Pem,
    /// DER bytes.
    Der,
}

/// A signature mechanism family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignMech {
    /// RSASSA-PKCS1-v1_5 (RSA keys).
    RsaPkcs,
    /// RSASSA-PSS, salt as long as the hash (RSA keys).
    RsaPss,
    /// ECDSA, DER signature (EC keys; sha256 or sha384).
    Ecdsa,
    /// Pure Ed25519 (no --hash-function).
    Ed25519,
    /// HMAC (generic secrets).
    Hmac,
}

/// A hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashFunction {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// An encryption mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncryptMech {
    /// AES-GCM; the HSM picks the IV; output iv || ciphertext || tag.
    AesGcm,
    /// RSA-OAEP with SHA-256; --aad is the OAEP label.
    RsaOaep,
}

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DigestArg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// BLAKE3.
    Blake3,
}

/// The signature for `crypto verify`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct SignatureArgs {
    /// Read the signature from this file: raw bytes (checked with the
    /// key's latest version) or `hsm:v<N>:...` text.
    #[arg(long, value_name = "FILE")]
    pub signature_path: Option<PathBuf>,
    /// The signature: `hsm:v<N>:...` as `crypto sign` gives it
    /// (`versioned-signature`), or base64 (checked with the key's latest
    /// version).
    #[arg(long, value_name = "SIGNATURE")]
    pub signature: Option<String>,
}

/// `crypto ...`.
#[derive(Debug, Subcommand)]
pub enum CryptoCommand {
    /// Sign data (or compute an HMAC) with a key in the HSM.
    Sign {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: SignMech,
        /// The hash function (not for ed25519).
        #[arg(long, value_enum)]
        hash_function: Option<HashFunction>,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The data (unhashed).
        #[command(flatten)]
        data: DataArgs,
        /// Also write the signature (raw bytes) to this file.
        #[arg(long, value_name = "FILE")]
        signature_path: Option<PathBuf>,
    },
    /// Verify a signature (or an HMAC); exit code 4 if it does not verify.
    Verify {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: SignMech,
        /// The hash function (not for ed25519).
        #[arg(long, value_enum)]
        hash_function: Option<HashFunction>,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The data (unhashed).
        #[command(flatten)]
        data: DataArgs,
        /// The signature.
        #[command(flatten)]
        signature: SignatureArgs,
    },
    /// Encrypt data with a key in the HSM.
    Encrypt {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: EncryptMech,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The plaintext.
        #[command(flatten)]
        data: DataArgs,
        /// Associated data (AES-GCM) or OAEP label (RSA), as text.
        #[arg(long, value_name = "TEXT")]
        aad: Option<String>,
        /// Write the ciphertext, as `hsm:v<N>:...` text, to this file
        /// instead of into the output.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Decrypt data with a key in the HSM.
    Decrypt {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: EncryptMech,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The ciphertext, as `crypto encrypt` produced it.
        #[command(flatten)]
        data: BinaryDataArgs,
        /// The same associated data or label as for encryption.
        #[arg(long, value_name = "TEXT")]
        aad: Option<String>,
        /// Write the plaintext to this file (mode 0600) instead of base64
        /// in the output.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Hash data in the HSM.
    Digest {
        /// The algorithm.
        #[arg(value_enum)]
        algorithm: DigestArg,
        /// The data.
        #[command(flatten)]
        data: DataArgs,
    },
    /// A new AES data key for envelope encryption, encrypted in the HSM
    /// under an AES key (AES-GCM, its latest version): the encrypted form
    /// (`hsm:v<N>:...`, for `crypto decrypt aes-gcm`) and, unless
    /// --wrapped-only, the data key itself.
    GenerateDataKey {
        /// The AES key that encrypts the data key (needs encrypt).
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The data key's size.
        #[arg(long, value_name = "BITS", default_value_t = 256)]
        bits: u16,
        /// Associated data bound into its encryption, as text.
        #[arg(long, value_name = "TEXT")]
        aad: Option<String>,
        /// Return only the encrypted data key.
        #[arg(long)]
        wrapped_only: bool,
        /// Write the data key itself to this file (mode 0600) instead of
        /// base64 in the output.
        #[arg(long, value_name = "FILE", conflicts_with = "wrapped_only")]
        path: Option<PathBuf>,
    },
    /// Encrypt, decrypt, sign or verify many items with one key in one
    /// request, each item with its own result (a JSON array in, one out).
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Agree a secret with a peer's public key (ECDH with an X25519, P-256
    /// or P-384 key that has derive) and keep a new AES key or generic
    /// secret derived from it in the HSM.
    Derive {
        /// The key derivation: ecdh-hkdf-sha256, ecdh-blake3,
        /// ecdh-x963-sha256 or ecdh-raw.
        #[arg(value_name = "MECHANISM")]
        mechanism: String,
        /// Our private key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The peer's public key (PEM `PUBLIC KEY` or DER
        /// SubjectPublicKeyInfo).
        #[arg(long, value_name = "FILE")]
        peer_public_key: PathBuf,
        /// Context for the key derivation (HKDF info, X9.63 SharedInfo),
        /// as text.
        #[arg(long, value_name = "TEXT")]
        context: Option<String>,
        /// The new key's type: aes or generic-secret.
        #[arg(long, value_enum)]
        key_type: SymmetricType,
        /// The new key's size in bytes.
        #[arg(long, value_name = "BYTES")]
        key_length_bytes: u16,
        /// Attributes of the new key.
        #[command(flatten)]
        new_key: NewKeyArgs,
    },
    /// Random bytes from the HSM's generator.
    Random {
        /// How many bytes, 1 to 65536.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=65536))]
        length: u32,
        /// Write them to this file instead of base64 in the output.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
}

/// `crypto batch ...`: the input is a JSON array (`--input FILE`, `-`:
/// standard input) of up to 1024 items (64 for RSA signing and
/// decryption); the output `{items, failed, results}`, one result per
/// item in order, each the item's result or its `error` (`failed` counts
/// those; a signature that does not verify is a result, `"verified":
/// false`). The command fails only when the request as a whole does.
#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Items `{"data": TEXT}` or `{"data-base64": B64}`, with `"aad":
    /// TEXT` if wanted; results `{"ciphertext": "hsm:v<N>:..."}`.
    Encrypt {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: EncryptMech,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The items.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Items `{"ciphertext": "hsm:v<N>:..." or base64 (the latest
    /// version)}`, with `"aad"`; results `{"plaintext-base64": B64}`.
    Decrypt {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: EncryptMech,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The items.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Items `{"data": TEXT}` or `{"data-base64": B64}`; results
    /// `{"signature": B64, "versioned-signature": "hsm:v<N>:..."}`.
    Sign {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: SignMech,
        /// The hash function (not for ed25519).
        #[arg(long, value_enum)]
        hash_function: Option<HashFunction>,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The items.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Items `{"data": TEXT or "data-base64": B64, "signature":
    /// "hsm:v<N>:..." or base64 (the latest version)}`; results
    /// `{"verified": true|false}`.
    Verify {
        /// The mechanism.
        #[arg(value_enum)]
        mechanism: SignMech,
        /// The hash function (not for ed25519).
        #[arg(long, value_enum)]
        hash_function: Option<HashFunction>,
        /// The key.
        #[command(flatten)]
        key: KeyFilterArgs,
        /// The items.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
}

/// `node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Approve a prepared node (its join-request.toml from
    /// `hsm-node prepare`) as a new member (crypto officer).
    Add {
        /// The join request file.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
    },
    /// Remove a member (crypto officer). Removing the leader moves
    /// leadership to another voter first.
    Remove {
        /// The member's node id.
        #[arg(long, value_name = "ID")]
        node_id: u64,
    },
    /// Move leadership to another voter without stopping the leader
    /// (crypto officer): to --to, or to any voter that has every entry.
    /// Writes wait a moment meanwhile; none fails.
    TransferLeader {
        /// The member to lead next.
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
    },
}

/// `backup ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now, on the leader, to the cluster's backup
    /// destination. It holds every write acknowledged before the command.
    /// Waits until it is written (at least 30 minutes, or --timeout-secs).
    Create,
    /// List the backups at the destination, newest first.
    List,
    /// Show one backup's manifest.
    Describe {
        /// The backup id (32 hex digits, from `hsm backup list`).
        #[arg(long, value_name = "ID")]
        backup_id: String,
    },
    /// Check a backup without restoring it: the manifest's signature and
    /// every chunk's size and hash. Exit code 4 names the first damaged
    /// object.
    Verify {
        /// The backup id.
        #[arg(long, value_name = "ID")]
        backup_id: String,
    },
    /// Delete a backup (refused while it is marked keep-forever).
    Delete {
        /// The backup id.
        #[arg(long, value_name = "ID")]
        backup_id: String,
    },
    /// Mark a backup keep-forever, so retention never deletes it, or clear
    /// the mark with --clear.
    Keep {
        /// The backup id.
        #[arg(long, value_name = "ID")]
        backup_id: String,
        /// Clear the mark instead.
        #[arg(long)]
        clear: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_login_user_goes_before_the_command_and_targets_after() {
        let cli = Cli::try_parse_from([
            "hsm",
            "--username",
            "admin",
            "user",
            "create",
            "--username",
            "bob",
            "--role",
            "crypto-user",
        ])
        .expect("parses");
        assert_eq!(cli.username.as_deref(), Some("admin"));
        match cli.command {
            Command::User(UserCommand::Create { username, role, .. }) => {
                assert_eq!(username, "bob");
                assert_eq!(role, RoleArg::CryptoUser);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn filters_take_several_tokens_and_data_is_one_of_two() {
        let cli = Cli::try_parse_from([
            "hsm",
            "crypto",
            "sign",
            "ecdsa",
            "--hash-function",
            "sha256",
            "--key-filter",
            "attr.label=k",
            "attr.sign=true",
            "--data",
            "hello",
            "--output",
            "table",
        ])
        .expect("parses");
        assert_eq!(cli.output, Format::Table);
        match cli.command {
            Command::Crypto(CryptoCommand::Sign { key, data, .. }) => {
                assert_eq!(key.key_filter, ["attr.label=k", "attr.sign=true"]);
                assert_eq!(data.data.as_deref(), Some("hello"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let both = Cli::try_parse_from([
            "hsm",
            "crypto",
            "digest",
            "sha256",
            "--data",
            "x",
            "--data-path",
            "f",
        ]);
        assert!(both.is_err());
        let none = Cli::try_parse_from(["hsm", "crypto", "digest", "sha256"]);
        assert!(none.is_err());
    }
}
