//! Calls the CLI makes, on JSON views: any noun of the table, by ID or name.

use serde_json::Value;
use tundra_api::ListQuery;
use tundra_client::Client;

use crate::failure::Failure;
use crate::nouns::Noun;

/// The client's noun for a CLI noun, with JSON views.
pub fn typed(noun: &Noun) -> tundra_client::Noun<Value> {
    tundra_client::Noun::new(noun.collection, noun.item, noun.word)
}

pub async fn get(client: &Client, noun: &Noun, id: &str) -> Result<Value, Failure> {
    Ok(client.get(&typed(noun), id).await?)
}

pub async fn find(client: &Client, noun: &Noun, id: &str) -> Result<Option<Value>, Failure> {
    Ok(client.find(&typed(noun), id).await?)
}

/// Every object of a list (all pages), up to `max`.
pub async fn list(client: &Client, noun: &Noun, q: ListQuery, max: Option<usize>) -> Result<Vec<Value>, Failure> {
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("name", q.name), ("project", q.project)] {
        if let Some(v) = v {
            filters.push((k, v));
        }
    }
    pages(client, noun.collection, &filters, max).await
}

/// Machines the service picks by its filters (`provision_state`, `rack`,
/// `bmc`, … as `GET /v1/machines` takes them), all pages, up to `max`.
pub async fn machines(client: &Client, filters: &[(&str, String)], max: Option<usize>) -> Result<Vec<Value>, Failure> {
    pages(client, tundra_api::paths::MACHINES, filters, max).await
}

/// Every page of `collection` with these query parameters, up to `max` objects.
async fn pages(
    client: &Client,
    collection: &str,
    filters: &[(&str, String)],
    max: Option<usize>,
) -> Result<Vec<Value>, Failure> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters {
            q.append_pair(k, v);
        }
        q.append_pair("limit", "500");
        if let Some(a) = &after {
            q.append_pair("after", a);
        }
        let page: tundra_api::Page<Value> = client.get_path(&format!("{collection}?{}", q.finish())).await?;
        items.extend(page.items);
        if let Some(m) = max
            && items.len() >= m
        {
            items.truncate(m);
            return Ok(items);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(items),
        }
    }
}

/// The object `arg` names: an ID, or a name (unique among what the caller sees).
pub async fn resolve(client: &Client, noun: &Noun, arg: &str, project: Option<&str>) -> Result<Value, Failure> {
    if arg.parse::<uuid::Uuid>().is_ok() || noun.word == "project" {
        return get(client, noun, arg).await;
    }
    let q = ListQuery {
        name: Some(arg.to_string()),
        project: if noun.project_owned { project.map(String::from) } else { None },
        ..Default::default()
    };
    let mut found = list(client, noun, q, Some(3)).await?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Failure::not_found(format!(
            "no {} with ID or name {arg:?}; `tundra {} list` shows them",
            noun.word, noun.word
        ))),
        _ => {
            let ids: Vec<String> = found.iter().map(|v| v["id"].as_str().unwrap_or_default().to_string()).collect();
            Err(Failure::usage(format!(
                "several {}s are named {arg:?} ({}…); name one by its ID",
                noun.word,
                ids.join(", ")
            )))
        }
    }
}

/// The ID of project `p` (a name or an ID).
pub async fn project_id(client: &Client, p: &str) -> Result<String, Failure> {
    let v = resolve(client, crate::nouns::find("project"), p, None).await?;
    Ok(v["id"].as_str().unwrap_or_default().to_string())
}
