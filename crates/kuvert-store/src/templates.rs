//! Templates and their versions. A version is saved compiled (`kuvert_template::Compiled`,
//! sealed as JSON); at most one version of a template is active, which the partial unique
//! index `template_versions_active` keeps true under concurrent requests too.

use kuvert_core::Timestamp;
use kuvert_core::id::{AccountId, TemplateId};
use kuvert_template::{Compiled, Engine};
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

/// How many templates an account may keep, and versions a template (Mailgun: 100 and 40).
pub const MAX_TEMPLATES: i64 = 1000;
pub const MAX_VERSIONS: i64 = 40;

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: TemplateId,
    pub name: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Newest first.
    pub versions: Vec<VersionInfo>,
}

impl Template {
    pub fn active(&self) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.active)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VersionInfo {
    pub tag: String,
    pub engine: Engine,
    pub active: bool,
    pub comment: Option<String>,
    pub created_at: Timestamp,
}

/// A version with its content.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub template: String,
    pub template_id: TemplateId,
    pub info: VersionInfo,
    pub compiled: Compiled,
}

/// A version to add: its tag (the next `vN` when `None`), whether it becomes the active one.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub tag: Option<String>,
    pub comment: Option<String>,
    pub active: bool,
    pub compiled: Compiled,
}

#[derive(FromRow)]
struct TemplateRow {
    id: String,
    name: String,
    description: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct VersionRow {
    template_id: String,
    tag: String,
    engine: String,
    active: i64,
    comment: Option<String>,
    created_at: i64,
}

impl VersionRow {
    fn parse(self) -> Result<VersionInfo> {
        Ok(VersionInfo {
            engine: Engine::parse(&self.engine)
                .ok_or_else(|| StoreError::Sealing(format!("engine {:?}", self.engine)))?,
            tag: self.tag,
            active: self.active != 0,
            comment: self.comment,
            created_at: Timestamp(self.created_at),
        })
    }
}

const VERSION_COLUMNS: &str = "template_id, tag, engine, active, comment, created_at";

impl Store {
    /// Creates a template with its first version, which is active.
    pub async fn create_template(
        &self,
        account: &AccountId,
        name: &str,
        description: Option<&str>,
        first: NewVersion,
    ) -> Result<Template> {
        let now = self.now();
        let id = TemplateId::generate(Timestamp(now));
        let key = self.account_key(account).await?;
        let body = key.seal(&serde_json::to_vec(&first.compiled).expect("a version serialises"));
        let tag = first.tag.unwrap_or_else(|| "v1".into());
        let mut tx = self.writer().begin().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM templates WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_TEMPLATES {
            return Err(StoreError::Limit("an account keeps at most 1000 templates"));
        }
        sqlx::query(
            "INSERT INTO templates (id, account_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict("template"))?;
        insert_version(
            &mut tx,
            &id,
            account,
            &tag,
            first.comment.as_deref(),
            first.compiled.source.engine,
            true,
            &body,
            now,
        )
        .await?;
        tx.commit().await?;
        self.template(account, name).await
    }

    /// Every template of the account, by name, with its versions.
    pub async fn templates(&self, account: &AccountId) -> Result<Vec<Template>> {
        let rows = sqlx::query_as::<_, TemplateRow>(
            "SELECT id, name, description, created_at, updated_at FROM templates WHERE account_id = $1 ORDER BY name",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        let versions = sqlx::query_as::<_, VersionRow>(&format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions WHERE account_id = $1 ORDER BY created_at DESC, tag DESC"
        ))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut by_template: std::collections::HashMap<String, Vec<VersionInfo>> =
            std::collections::HashMap::new();
        for v in versions {
            let t = v.template_id.clone();
            by_template.entry(t).or_default().push(v.parse()?);
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let versions = by_template.remove(&r.id).unwrap_or_default();
                template(r, versions)
            })
            .collect())
    }

    pub async fn template(&self, account: &AccountId, name: &str) -> Result<Template> {
        let row = self.template_row(account, name).await?;
        let versions = sqlx::query_as::<_, VersionRow>(&format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions WHERE template_id = $1 ORDER BY created_at DESC, tag DESC"
        ))
        .bind(&row.id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(VersionRow::parse)
        .collect::<Result<Vec<_>>>()?;
        Ok(template(row, versions))
    }

    /// The name of the account's template with this id (Mailjet's API names templates by
    /// id).
    pub async fn template_name(&self, account: &AccountId, id: &str) -> Result<String> {
        sqlx::query_scalar("SELECT name FROM templates WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("template"))
    }

    async fn template_row(&self, account: &AccountId, name: &str) -> Result<TemplateRow> {
        sqlx::query_as::<_, TemplateRow>(
            "SELECT id, name, description, created_at, updated_at FROM templates WHERE account_id = $1 AND name = $2",
        )
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("template"))
    }

    /// A version with its content: the one tagged `tag`, or the active one.
    pub async fn template_version(
        &self,
        account: &AccountId,
        name: &str,
        tag: Option<&str>,
    ) -> Result<Version> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            info: VersionRow,
            body: Vec<u8>,
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS}, body FROM template_versions v WHERE v.account_id = $1 \
             AND v.template_id = (SELECT id FROM templates WHERE account_id = $1 AND name = $2) AND {}",
            if tag.is_some() {
                "v.tag = $3"
            } else {
                "v.active = 1"
            }
        );
        let mut q = sqlx::query_as::<_, Row>(&sql)
            .bind(account.as_str())
            .bind(name);
        if let Some(t) = tag {
            q = q.bind(t);
        }
        let row = q
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("template version"))?;
        let key = self.account_key(account).await?;
        let compiled: Compiled = serde_json::from_slice(&key.open(&row.body)?)
            .map_err(|e| StoreError::Sealing(format!("template version: {e}")))?;
        Ok(Version {
            template: name.to_owned(),
            template_id: TemplateId::from_string(row.info.template_id.clone()),
            info: row.info.parse()?,
            compiled,
        })
    }

    /// Adds a version; the template's first active one, or any asked to be, becomes active.
    pub async fn add_template_version(
        &self,
        account: &AccountId,
        name: &str,
        version: NewVersion,
    ) -> Result<Template> {
        let now = self.now();
        let key = self.account_key(account).await?;
        let body = key.seal(&serde_json::to_vec(&version.compiled).expect("a version serialises"));
        let mut tx = self.writer().begin().await?;
        let id = lock_template(&mut tx, account, name, now).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM template_versions WHERE template_id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if count >= MAX_VERSIONS {
            return Err(StoreError::Limit("a template keeps at most 40 versions"));
        }
        let tag = match version.tag {
            Some(t) => t,
            None => {
                let tags: Vec<String> =
                    sqlx::query_scalar("SELECT tag FROM template_versions WHERE template_id = $1")
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                (count + 1..)
                    .map(|n| format!("v{n}"))
                    .find(|t| !tags.contains(t))
                    .expect("an unused tag")
            }
        };
        if version.active {
            deactivate(&mut tx, &id).await?;
        }
        insert_version(
            &mut tx,
            &id,
            account,
            &tag,
            version.comment.as_deref(),
            version.compiled.source.engine,
            version.active,
            &body,
            now,
        )
        .await?;
        if !version.active {
            // A template whose versions were all inactive gets this one.
            sqlx::query(
                "UPDATE template_versions SET active = 1 WHERE template_id = $1 AND tag = $2 \
                 AND NOT EXISTS (SELECT 1 FROM template_versions WHERE template_id = $1 AND active = 1)",
            )
            .bind(id.as_str())
            .bind(&tag)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.template(account, name).await
    }

    /// Changes a template's description.
    pub async fn update_template(
        &self,
        account: &AccountId,
        name: &str,
        description: Option<&str>,
    ) -> Result<Template> {
        let done = sqlx::query(
            "UPDATE templates SET description = $3, updated_at = $4 WHERE account_id = $1 AND name = $2",
        )
        .bind(account.as_str())
        .bind(name)
        .bind(description)
        .bind(self.now())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("template"));
        }
        self.template(account, name).await
    }

    /// Makes a version the active one (and none other), or changes its comment.
    pub async fn update_template_version(
        &self,
        account: &AccountId,
        name: &str,
        tag: &str,
        activate: bool,
        comment: Option<Option<&str>>,
    ) -> Result<Template> {
        let mut tx = self.writer().begin().await?;
        let id = lock_template(&mut tx, account, name, self.now()).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT active FROM template_versions WHERE template_id = $1 AND tag = $2",
        )
        .bind(id.as_str())
        .bind(tag)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("template version"));
        }
        if activate {
            deactivate(&mut tx, &id).await?;
            sqlx::query(
                "UPDATE template_versions SET active = 1 WHERE template_id = $1 AND tag = $2",
            )
            .bind(id.as_str())
            .bind(tag)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::conflict("an active version"))?;
        }
        if let Some(comment) = comment {
            sqlx::query(
                "UPDATE template_versions SET comment = $3 WHERE template_id = $1 AND tag = $2",
            )
            .bind(id.as_str())
            .bind(tag)
            .bind(comment)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.template(account, name).await
    }

    /// Deletes a version; the active one goes only with its template.
    pub async fn delete_template_version(
        &self,
        account: &AccountId,
        name: &str,
        tag: &str,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let id = lock_template(&mut tx, account, name, self.now()).await?;
        let active: Option<i64> = sqlx::query_scalar(
            "SELECT active FROM template_versions WHERE template_id = $1 AND tag = $2",
        )
        .bind(id.as_str())
        .bind(tag)
        .fetch_optional(&mut *tx)
        .await?;
        match active {
            None => return Err(StoreError::NotFound("template version")),
            Some(1) => {
                return Err(StoreError::InUse(
                    "the active version cannot be deleted: activate another first, or delete the template",
                ));
            }
            Some(_) => {}
        }
        sqlx::query("DELETE FROM template_versions WHERE template_id = $1 AND tag = $2")
            .bind(id.as_str())
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_template(&self, account: &AccountId, name: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        // The template's row first: a version added at the same moment waits for it, then
        // finds no template.
        let id: String = sqlx::query_scalar(
            "DELETE FROM templates WHERE account_id = $1 AND name = $2 RETURNING id",
        )
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("template"))?;
        sqlx::query("DELETE FROM template_versions WHERE template_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every version of the account with its content, for its export.
    pub async fn template_versions_for_export(&self, account: &AccountId) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        for t in self.templates(account).await? {
            for v in &t.versions {
                out.push(
                    self.template_version(account, &t.name, Some(&v.tag))
                        .await?,
                );
            }
        }
        Ok(out)
    }
}

fn template(r: TemplateRow, versions: Vec<VersionInfo>) -> Template {
    Template {
        id: TemplateId::from_string(r.id),
        name: r.name,
        description: r.description,
        created_at: Timestamp(r.created_at),
        updated_at: Timestamp(r.updated_at),
        versions,
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

#[allow(clippy::too_many_arguments)]
async fn insert_version(
    tx: &mut Tx<'_>,
    id: &TemplateId,
    account: &AccountId,
    tag: &str,
    comment: Option<&str>,
    engine: Engine,
    active: bool,
    body: &[u8],
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO template_versions (template_id, account_id, tag, engine, active, comment, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(account.as_str())
    .bind(tag)
    .bind(engine.as_str())
    .bind(i64::from(active))
    .bind(comment)
    .bind(body)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::conflict("template version"))?;
    Ok(())
}

async fn deactivate(tx: &mut Tx<'_>, id: &TemplateId) -> Result<()> {
    sqlx::query("UPDATE template_versions SET active = 0 WHERE template_id = $1 AND active = 1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Finds a template by name inside a transaction that changes its versions, and marks it
/// changed: the row's update holds it (PostgreSQL: a row lock) until the commit, so that
/// changes of one template's versions, its limits and its deletion happen one after another.
async fn lock_template(
    tx: &mut Tx<'_>,
    account: &AccountId,
    name: &str,
    now: i64,
) -> Result<TemplateId> {
    let id: String = sqlx::query_scalar(
        "UPDATE templates SET updated_at = $3 WHERE account_id = $1 AND name = $2 RETURNING id",
    )
    .bind(account.as_str())
    .bind(name)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("template"))?;
    Ok(TemplateId::from_string(id))
}
