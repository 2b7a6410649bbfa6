//! `crypto batch encrypt|decrypt|sign|verify`: many items with one key in
//! one request, a JSON array in and one result per item out.

use hsm_client::hsm_proto::client::ByteBuf;
use hsm_client::{DecryptItem, Secret, VerifyItem, MAX_BATCH};
use serde_json::{json, Map, Value};

use super::crypto::{encrypt_mechanism, sign_mechanism, versioned_or_b64};
use crate::args::BatchCommand;
use crate::error::{CliError, Result};
use crate::filter::Filter;
use crate::io::{b64, from_b64, read_file};
use crate::output::Outcome;
use crate::session::Context;

pub(super) async fn run(ctx: &Context, command: BatchCommand) -> Result<Outcome> {
    let (filter, input) = match &command {
        BatchCommand::Encrypt { key, input, .. }
        | BatchCommand::Decrypt { key, input, .. }
        | BatchCommand::Sign { key, input, .. }
        | BatchCommand::Verify { key, input, .. } => (Filter::parse(&key.key_filter)?, input),
    };
    let items = items(&read_file(input)?)?;
    let me = ctx.login(None).await?;
    let key = filter.one(&me.client, "--key-filter").await?;
    let client = &me.client;
    let (mechanism, results): (&str, Vec<Value>) = match command {
        BatchCommand::Encrypt { mechanism, .. } => {
            let mechanism = encrypt_mechanism(mechanism);
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| Ok((Secret::new(data(item, i)?), aad(item, i)?)))
                .collect::<Result<Vec<_>>>()?;
            let results = client
                .encrypt_batch(key.id, mechanism, items)
                .await
                .map_err(|e| me.explain(e))?;
            let results = results
                .into_iter()
                .map(|r| each(r, |c| json!({ "ciphertext": c.to_text() })))
                .collect();
            (mechanism.name(), results)
        }
        BatchCommand::Decrypt { mechanism, .. } => {
            let mechanism = encrypt_mechanism(mechanism);
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let text = text(item, "ciphertext", i)?;
                    let (version, ciphertext) =
                        versioned_or_b64(text, &format!("item {i}'s ciphertext"))?;
                    Ok(DecryptItem {
                        version,
                        ciphertext: ByteBuf::from(ciphertext),
                        aad: ByteBuf::from(aad(item, i)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let results = client
                .decrypt_batch(key.id, mechanism, items)
                .await
                .map_err(|e| me.explain(e))?;
            let results = results
                .into_iter()
                .map(|r| each(r, |p| json!({ "plaintext-base64": b64(p.expose()) })))
                .collect();
            (mechanism.name(), results)
        }
        BatchCommand::Sign {
            mechanism,
            hash_function,
            ..
        } => {
            let mechanism = sign_mechanism(mechanism, hash_function)?;
            let messages = items
                .iter()
                .enumerate()
                .map(|(i, item)| data(item, i))
                .collect::<Result<Vec<_>>>()?;
            let results = client
                .sign_batch(key.id, mechanism, messages)
                .await
                .map_err(|e| me.explain(e))?;
            let results = results
                .into_iter()
                .map(|r| {
                    each(r, |s| {
                        json!({ "signature": b64(&s.bytes), "versioned-signature": s.to_text() })
                    })
                })
                .collect();
            (mechanism.name(), results)
        }
        BatchCommand::Verify {
            mechanism,
            hash_function,
            ..
        } => {
            let mechanism = sign_mechanism(mechanism, hash_function)?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let text = text(item, "signature", i)?;
                    let (version, signature) =
                        versioned_or_b64(text, &format!("item {i}'s signature"))?;
                    Ok(VerifyItem {
                        version,
                        message: ByteBuf::from(data(item, i)?),
                        signature: ByteBuf::from(signature),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let results = client
                .verify_batch(key.id, mechanism, items)
                .await
                .map_err(|e| me.explain(e))?;
            let results = results
                .into_iter()
                .map(|r| each(r, |ok| json!({ "verified": ok })))
                .collect();
            (mechanism.name(), results)
        }
    };
    let failed = results.iter().filter(|r| r.get("error").is_some()).count();
    Ok(Outcome::new(json!({
        "key-reference": key.id.to_string(),
        "mechanism": mechanism,
        "items": results.len(),
        "failed": failed,
        "results": results,
    })))
}

/// One item's result, or its error (kind and message).
fn each<T>(result: hsm_client::Result<T>, ok: impl FnOnce(&T) -> Value) -> Value {
    match result {
        Ok(value) => ok(&value),
        Err(e) => {
            let e = CliError::from(e);
            json!({ "error": { "kind": e.kind, "message": e.message } })
        }
    }
}

/// The input: a JSON array of objects, at most [`MAX_BATCH`].
fn items(bytes: &[u8]) -> Result<Vec<Map<String, Value>>> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| CliError::invalid(format!("--input is not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(CliError::invalid("--input must be a JSON array of items"));
    };
    if items.len() > MAX_BATCH {
        return Err(CliError::invalid(format!(
            "--input has {} items; one request carries at most {MAX_BATCH}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map),
            _ => Err(CliError::invalid(format!("item {i} is not a JSON object"))),
        })
        .collect()
}

fn text<'a>(item: &'a Map<String, Value>, name: &str, i: usize) -> Result<&'a str> {
    item.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::invalid(format!("item {i} has no \"{name}\" text")))
}

/// An item's data: `data` (text) or `data-base64`.
fn data(item: &Map<String, Value>, i: usize) -> Result<Vec<u8>> {
    match (item.get("data"), item.get("data-base64")) {
        (Some(Value::String(text)), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(Value::String(encoded))) => {
            from_b64(encoded, &format!("item {i}'s data-base64"))
        }
        _ => Err(CliError::invalid(format!(
            "item {i} needs one of \"data\" (text) or \"data-base64\""
        ))),
    }
}

/// An item's associated data or OAEP label, as text (`aad`), if any.
fn aad(item: &Map<String, Value>, i: usize) -> Result<Vec<u8>> {
    match item.get("aad") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text.as_bytes().to_vec()),
        Some(_) => Err(CliError::invalid(format!("item {i}'s \"aad\" is not text"))),
    }
}
