//! Walking a paginated list RPC from its first page to its last.

/// Calls `fetch` with each page token in turn, from the first page (an empty token)
/// until a page comes back without a next token, and hands every item to `each`,
/// which says whether to go on: `false` ends the walk (a `--limit` reached). Returns
/// whether it ended so, with the item `each` turned down and perhaps more left unshown.
pub async fn walk_pages<T>(
    mut fetch: impl AsyncFnMut(String) -> anyhow::Result<(Vec<T>, String)>,
    mut each: impl FnMut(T) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let mut token = String::new();
    loop {
        let (items, next) = fetch(token).await?;
        for item in items {
            if !each(item)? {
                return Ok(true);
            }
        }
        if next.is_empty() {
            return Ok(false);
        }
        token = next;
    }
}
