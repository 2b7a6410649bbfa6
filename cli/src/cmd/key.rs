//! `key ...`: generate, list, share, change, wrap, import, export and
//! delete keys.

use std::path::Path;

use hsm_client::mechanism::WrapMechanism;
use hsm_client::{KeyAttribute, KeyInfo, KeySpec, Secret};
use serde_json::{json, Value};

use crate::args::{
    BinaryDataArgs, Encoding, KeyCommand, KeyFilterArgs, KeyType, KeyTypeArgs, NewKeyArgs,
    PairCommand, SymmetricType, WrapMech,
};
use crate::error::{CliError, Result};
use crate::filter::Filter;
use crate::io::{b64, binary_data, read_file, write_file};
use crate::keys::{
    aes_spec, ec_spec, flag, generic_secret_spec, key_json, key_table, new_attributes, parse_bool,
    parse_hex, rsa_spec, spec_from_args, spec_text, usages_text, NewKey, FLAGS,
};
use crate::output::{table, Outcome};
use crate::session::{username, Context, LoggedIn};

pub(super) async fn run(ctx: &Context, command: KeyCommand) -> Result<Outcome> {
    match command {
        KeyCommand::GenerateSymmetric {
            key_type,
            key_length_bytes,
            key,
        } => {
            let spec = match key_type {
                SymmetricType::Aes => aes_spec(key_length_bytes)?,
                SymmetricType::GenericSecret => generic_secret_spec(key_length_bytes)?,
            };
            generate(ctx, spec, &key).await
        }
        KeyCommand::GenerateAsymmetricPair(pair) => {
            let (spec, key) = match pair {
                PairCommand::Rsa {
                    modulus_size_bits,
                    key,
                } => (rsa_spec(modulus_size_bits)?, key),
                PairCommand::Ec { curve, key } => (ec_spec(curve), key),
                PairCommand::Ed25519 { key } => (KeySpec::Ed25519, key),
                PairCommand::X25519 { key } => (KeySpec::X25519, key),
            };
            generate(ctx, spec, &key).await
        }
        KeyCommand::List { filter } => list(ctx, &filter).await,
        KeyCommand::Share { key, username } => share(ctx, &key.key_filter, &username, true).await,
        KeyCommand::Unshare { key, username } => {
            share(ctx, &key.key_filter, &username, false).await
        }
        KeyCommand::SetAttribute { key, name, value } => {
            set_attribute(ctx, &key.key_filter, &name, &value).await
        }
        KeyCommand::Delete { key } => {
            let filter = Filter::parse(&key.key_filter)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            me.client
                .delete_key(key.id)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "key-reference": key.id.to_string(),
                "label": key.attributes.label,
                "deleted": true,
            })))
        }
        KeyCommand::Wrap {
            mechanism,
            wrapping_key_filter,
            key_filter,
            path,
        } => {
            wrap(
                ctx,
                mechanism,
                &wrapping_key_filter,
                &key_filter,
                path.as_deref(),
            )
            .await
        }
        KeyCommand::Unwrap {
            mechanism,
            wrapping_key_filter,
            data,
            key_type,
            key,
        } => unwrap(ctx, mechanism, &wrapping_key_filter, &data, &key_type, &key).await,
        KeyCommand::Import {
            key_type,
            path,
            key,
        } => import(ctx, &key_type, &path, &key).await,
        KeyCommand::ImportPublic { path, key } => import_public(ctx, &path, &key).await,
        KeyCommand::Rotate { key } => versions(ctx, &key, Versions::Rotate).await,
        KeyCommand::Versions { key } => versions(ctx, &key, Versions::Show).await,
        KeyCommand::SetMinDecryptionVersion { key, version } => {
            versions(ctx, &key, Versions::MinDecryption(version)).await
        }
        KeyCommand::TrimVersions { key, below } => versions(ctx, &key, Versions::Trim(below)).await,
        KeyCommand::GenerateFile {
            encoding,
            path,
            key,
        } => {
            let filter = Filter::parse(&key.key_filter)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            if !key.spec.is_asymmetric() {
                return Err(CliError::invalid(format!(
                    "key {} is a {} key: only key pairs have a public half to write",
                    key.id,
                    spec_text(key.spec)
                )));
            }
            let (der, pem) = me
                .client
                .export_public_key(key.id)
                .await
                .map_err(|e| me.explain(e))?;
            let (bytes, name) = match encoding {
                Encoding::Pem => (pem.into_bytes(), "pem"),
                Encoding::Der => (der, "der"),
            };
            write_file(&path, &bytes, false)?;
            Ok(Outcome::new(json!({
                "key-reference": key.id.to_string(),
                "encoding": name,
                "path": path.display().to_string(),
            })))
        }
    }
}

pub(super) fn key_outcome(key: &KeyInfo) -> Outcome {
    Outcome::new(json!({ "key": key_json(key) })).with_table(key_table(key))
}

async fn generate(ctx: &Context, spec: KeySpec, args: &NewKeyArgs) -> Result<Outcome> {
    let attributes = new_attributes(args, NewKey::Generate(spec))?;
    let me = ctx.login(None).await?;
    let key = me
        .client
        .generate_key(spec, attributes, args.unique_label)
        .await
        .map_err(|e| me.explain(e))?;
    Ok(key_outcome(&key))
}

async fn list(ctx: &Context, tokens: &[String]) -> Result<Outcome> {
    let filter = Filter::parse(tokens)?;
    let me = ctx.login(None).await?;
    let keys = filter.find(&me.client).await?;
    let header: Vec<String> = [
        "key-reference",
        "key-type",
        "label",
        "owner",
        "shared-users",
        "usages",
        "extractable",
        "sensitive",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let shared: Vec<&str> = k.shared_with.iter().map(|u| u.as_str()).collect();
            vec![
                k.id.to_string(),
                spec_text(k.spec),
                k.attributes.label.clone(),
                k.owner.to_string(),
                if shared.is_empty() {
                    "-".into()
                } else {
                    shared.join(",")
                },
                usages_text(&k.attributes),
                k.attributes.extractable.to_string(),
                k.attributes.sensitive.to_string(),
            ]
        })
        .collect();
    let text = format!("{}{} keys\n", table(&header, &rows), keys.len());
    let matched: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(Outcome::new(json!({
        "matched_keys": matched,
        "total_key_count": keys.len(),
    }))
    .with_table(text))
}

async fn share(ctx: &Context, tokens: &[String], user: &str, share: bool) -> Result<Outcome> {
    let filter = Filter::parse(tokens)?;
    let with = username(user)?;
    let me = ctx.login(None).await?;
    let key = filter.one(&me.client, "--key-filter").await?;
    let result = if share {
        me.client.share_key(key.id, with.clone()).await
    } else {
        me.client.unshare_key(key.id, with.clone()).await
    };
    result.map_err(|e| me.explain(e))?;
    Ok(Outcome::new(json!({
        "key-reference": key.id.to_string(),
        "username": with.as_str(),
        "shared": share,
    })))
}

fn attribute(name: &str, value: &str) -> Result<KeyAttribute> {
    let bare = name.strip_prefix("attr.").unwrap_or(name);
    match bare {
        "label" => Ok(KeyAttribute::Label(value.to_string())),
        "id" => Ok(KeyAttribute::Id(parse_hex(value, "--value for id")?)),
        other => match flag(other) {
            Some(f) => Ok(KeyAttribute::Flag(f, parse_bool(value, "--value")?)),
            None => Err(CliError::invalid(format!(
                "unknown attribute {name:?}: expected label, id, {}",
                FLAGS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

async fn set_attribute(
    ctx: &Context,
    tokens: &[String],
    name: &str,
    value: &str,
) -> Result<Outcome> {
    let filter = Filter::parse(tokens)?;
    let change = attribute(name, value)?;
    let me = ctx.login(None).await?;
    let key = filter.one(&me.client, "--key-filter").await?;
    me.client
        .set_key_attribute(key.id, change)
        .await
        .map_err(|e| me.explain(e))?;
    Ok(Outcome::new(json!({
        "key-reference": key.id.to_string(),
        "name": name.strip_prefix("attr.").unwrap_or(name),
        "value": value,
    })))
}

fn wrap_mechanism(m: WrapMech) -> WrapMechanism {
    match m {
        WrapMech::AesKeyWrapPad => WrapMechanism::AesKeyWrapPad,
        WrapMech::AesGcm => WrapMechanism::AesGcm,
        WrapMech::RsaOaep => WrapMechanism::RsaOaepSha256,
    }
}

async fn wrap(
    ctx: &Context,
    mechanism: WrapMech,
    wrapping_tokens: &[String],
    key_tokens: &[String],
    path: Option<&Path>,
) -> Result<Outcome> {
    let wrapping_filter = Filter::parse(wrapping_tokens)?;
    let key_filter = Filter::parse(key_tokens)?;
    let me = ctx.login(None).await?;
    let wrapping = wrapping_filter
        .one(&me.client, "--wrapping-key-filter")
        .await?;
    let key = key_filter.one(&me.client, "--key-filter").await?;
    let mechanism = wrap_mechanism(mechanism);
    let wrapped = me
        .client
        .wrap_key(wrapping.id, key.id, mechanism)
        .await
        .map_err(|e| me.explain(e))?;
    let mut data = json!({
        "key-reference": key.id.to_string(),
        "wrapping-key-reference": wrapping.id.to_string(),
        "mechanism": mechanism.name(),
    });
    insert_binary(&mut data, "wrapped-key", &wrapped, path, true)?;
    Ok(Outcome::new(data))
}

/// Writes `bytes` to `path` and records the path, or puts them in the
/// output as base64 under `name`.
pub(super) fn insert_binary(
    data: &mut Value,
    name: &str,
    bytes: &[u8],
    path: Option<&Path>,
    private: bool,
) -> Result<()> {
    let Some(map) = data.as_object_mut() else {
        return Ok(());
    };
    match path {
        Some(p) => {
            write_file(p, bytes, private)?;
            map.insert("path".into(), json!(p.display().to_string()));
            map.insert("bytes".into(), json!(bytes.len()));
        }
        None => {
            map.insert(name.into(), json!(b64(bytes)));
        }
    }
    Ok(())
}

async fn unwrap(
    ctx: &Context,
    mechanism: WrapMech,
    wrapping_tokens: &[String],
    data: &BinaryDataArgs,
    key_type: &KeyTypeArgs,
    args: &NewKeyArgs,
) -> Result<Outcome> {
    let wrapping_filter = Filter::parse(wrapping_tokens)?;
    let wrapped = binary_data(data)?;
    let spec = spec_from_args(key_type, None)?;
    let attributes = new_attributes(args, NewKey::Unwrap)?;
    let me = ctx.login(None).await?;
    let wrapping = wrapping_filter
        .one(&me.client, "--wrapping-key-filter")
        .await?;
    let key = me
        .client
        .unwrap_key(
            wrapping.id,
            wrap_mechanism(mechanism),
            wrapped.to_vec(),
            spec,
            attributes,
            args.unique_label,
        )
        .await
        .map_err(|e| me.explain(e))?;
    Ok(key_outcome(&key))
}

async fn import(
    ctx: &Context,
    key_type: &KeyTypeArgs,
    path: &Path,
    args: &NewKeyArgs,
) -> Result<Outcome> {
    let file = read_file(path)?;
    let symmetric = matches!(key_type.key_type, KeyType::Aes | KeyType::GenericSecret);
    let (spec, material) = if symmetric {
        (spec_from_args(key_type, Some(file.len()))?, file)
    } else {
        (
            spec_from_args(key_type, None)?,
            hsm_cli::pem::pkcs8_der(&file).map_err(CliError::invalid)?,
        )
    };
    if symmetric && material.len() != symmetric_len(spec) {
        return Err(CliError::invalid(format!(
            "{} holds {} bytes but --key-length-bytes says {}: give raw key bytes",
            path.display(),
            material.len(),
            symmetric_len(spec)
        )));
    }
    let attributes = new_attributes(args, NewKey::Import(spec))?;
    let me: LoggedIn = ctx.login(None).await?;
    let key = me
        .client
        .import_key(
            spec,
            attributes,
            Secret::new(material.to_vec()),
            args.unique_label,
        )
        .await
        .map_err(|e| me.explain(e))?;
    Ok(key_outcome(&key))
}

async fn import_public(ctx: &Context, path: &Path, args: &NewKeyArgs) -> Result<Outcome> {
    let der = hsm_cli::pem::spki_der(&read_file(path)?).map_err(CliError::invalid)?;
    let algorithm = hsm_cli::pem::public_algorithm(&der).map_err(CliError::invalid)?;
    let attributes = new_attributes(args, NewKey::PublicImport(algorithm))?;
    let me: LoggedIn = ctx.login(None).await?;
    let key = me
        .client
        .import_public_key(der, attributes, args.unique_label)
        .await
        .map_err(|e| me.explain(e))?;
    Ok(key_outcome(&key))
}

/// What `key rotate|versions|set-min-decryption-version|trim-versions`
/// does.
enum Versions {
    Rotate,
    Show,
    MinDecryption(u32),
    Trim(u32),
}

async fn versions(ctx: &Context, key: &KeyFilterArgs, what: Versions) -> Result<Outcome> {
    let filter = Filter::parse(&key.key_filter)?;
    let me = ctx.login(None).await?;
    let key = filter.one(&me.client, "--key-filter").await?;
    let client = &me.client;
    let info = match what {
        Versions::Rotate => client.rotate_key(key.id).await,
        Versions::Show => client.key_versions(key.id).await,
        Versions::MinDecryption(v) => client.set_min_decryption_version(key.id, v).await,
        Versions::Trim(below) => client.trim_key_versions(key.id, below).await,
    }
    .map_err(|e| me.explain(e))?;
    Ok(Outcome::new(json!({
        "key-reference": key.id.to_string(),
        "latest-version": info.latest,
        "min-decryption-version": info.min_decryption,
        "versions": info
            .versions
            .iter()
            .map(|(v, at)| json!({ "version": v, "created-ms": at }))
            .collect::<Vec<_>>(),
    })))
}

fn symmetric_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::Aes { bits } => usize::from(bits / 8),
        KeySpec::GenericSecret { bytes } => usize::from(bytes),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_client::KeyFlag;

    #[test]
    fn attribute_changes_parse_by_name() {
        assert_eq!(
            attribute("label", "new").expect("label"),
            KeyAttribute::Label("new".into())
        );
        assert_eq!(
            attribute("attr.id", "0x0102").expect("id"),
            KeyAttribute::Id(vec![1, 2])
        );
        assert_eq!(
            attribute("extractable", "false").expect("flag"),
            KeyAttribute::Flag(KeyFlag::Extractable, false)
        );
        let e = attribute("colour", "red").expect_err("unknown");
        assert!(e.message.contains("wrap-with-trusted"), "{}", e.message);
    }
}
