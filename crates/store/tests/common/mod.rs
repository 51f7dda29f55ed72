//! Shared by the store's tests: a PostgreSQL store in a schema of its own.

/// A store on the PostgreSQL of TENURE_TEST_DATABASE_URL, in a fresh schema named after `tag`
/// and this process (runs never see each other's rows), and the schema's remover; None, said
/// loudly, when the variable is unset.
pub async fn postgres(tag: &str) -> Option<(store::Store, Dropper)> {
    let Ok(url) = std::env::var("TENURE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: {tag}: TENURE_TEST_DATABASE_URL is not set (.ci/run sets it)");
        return None;
    };
    let schema = format!("tenure_test_{tag}_{}", std::process::id());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = store::Store::open(&format!("{url}{sep}options=-c%20search_path%3D{schema}")).await.unwrap();
    assert_eq!(store.backend(), store::Backend::Postgres);
    Some((store, Dropper { admin, schema, url: std::env::var("TENURE_TEST_DATABASE_URL").unwrap_or_default() }))
}

/// Removes a test's schema.
pub struct Dropper {
    admin: sqlx::AnyPool,
    schema: String,
    url: String,
}

impl Dropper {
    /// The schema's URL, for more handles on the same store (another node's).
    #[allow(dead_code)] // not every test binary opens a second handle
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.schema)
    }

    pub async fn drop_schema(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema)).execute(&self.admin).await.unwrap();
    }
}
