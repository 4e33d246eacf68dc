//! Projects, users, role assignments and API tokens.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::identity::{ApiToken, Project, Role, RoleAssignment, User};
use tundra_api::{Page, ProjectId, TokenId, UserId};

use crate::sql::{Sql, paginate};
use crate::{Actor, ListParams, Result, Store, StoreError, check_revision, event, get, now, parse_id, unique};

fn project(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: parse_id("projects", &get::<String>(row, "id")?)?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: parse_id("users", &get::<String>(row, "id")?)?,
        name: get(row, "name")?,
        admin: get::<i64>(row, "admin")? != 0,
        source: get(row, "source")?,
        created_at: get(row, "created_at")?,
    })
}

fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt { table: "role_assignments", what: format!("role {s:?}") })
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A token to store: only the hash of its secret.
#[derive(Debug)]
pub struct NewToken {
    pub user_id: UserId,
    pub secret_hash: String,
    pub description: String,
    pub project_id: Option<ProjectId>,
    pub role: Option<Role>,
    pub expires_at: String,
}

/// A stored token, as authentication needs it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token: ApiToken,
    pub user: User,
}

fn api_token(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: parse_id("api_tokens", &get::<String>(row, "id")?)?,
        user_id: parse_id("api_tokens", &get::<String>(row, "user_id")?)?,
        description: get(row, "description")?,
        project_id: get::<Option<String>>(row, "project_id")?.map(|p| parse_id("api_tokens", &p)).transpose()?,
        role: get::<Option<String>>(row, "role")?.map(|r| role(&r)).transpose()?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
    })
}

impl Store {
    pub async fn create_project(&self, actor: &Actor, name: &str, description: &str) -> Result<Project> {
        let mut w = self.write().await?;
        let id = ProjectId::generate();
        let t = now();
        sqlx::query(
            "INSERT INTO projects (id, name, description, created_at, updated_at, revision) VALUES ($1, $2, $3, $4, $4, 1)",
        )
        .bind(id.to_string())
        .bind(name.to_string())
        .bind(description.to_string())
        .bind(t)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a project named {name:?} already exists; pick another name")))?;
        event(&mut w, actor, Some(id), "project", &id.to_string(), "created", json!({"name": name})).await?;
        let p = self.project_in(&mut w, id).await?;
        w.commit().await?;
        Ok(p)
    }

    async fn project_in(&self, w: &mut crate::Write, id: ProjectId) -> Result<Project> {
        crate::fetch_in(w, "projects", "project", id.to_string(), project).await
    }

    /// A project by ID or by name.
    pub async fn project(&self, id_or_name: &str) -> Result<Project> {
        let row = sqlx::query(&format!("SELECT * FROM projects WHERE {} = $1", crate::id_or_name(id_or_name)))
            .bind(id_or_name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "project", id: id_or_name.to_string() })?;
        project(&row)
    }

    /// Projects; `only` limits them to these IDs (what a non-admin may see).
    pub async fn list_projects(&self, p: &ListParams, only: Option<&[ProjectId]>) -> Result<Page<Project>> {
        let mut q = Sql::new("SELECT * FROM projects WHERE 1 = 1");
        if let Some(n) = &p.name {
            q.push(" AND name = ").bind(n.clone());
        }
        if let Some(ids) = only {
            q.push(" AND id IN (''");
            for id in ids {
                q.push(", ").bind(id.to_string());
            }
            q.push(")");
        }
        q.page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(project).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, |x| x.id.to_string()))
    }

    pub async fn update_project(
        &self,
        actor: &Actor,
        id: ProjectId,
        patch: ProjectPatch,
        if_match: Option<i64>,
    ) -> Result<Project> {
        let mut w = self.write().await?;
        let cur = self.project_in(&mut w, id).await?;
        check_revision("project", &cur.id.to_string(), cur.revision, if_match)?;
        let name = patch.name.clone().unwrap_or(cur.name.clone());
        let description = patch.description.clone().unwrap_or(cur.description.clone());
        sqlx::query(
            "UPDATE projects SET name = $1, description = $2, updated_at = $3, revision = revision + 1 \
             WHERE id = $4 AND revision = $5",
        )
        .bind(name.clone())
        .bind(description)
        .bind(now())
        .bind(id.to_string())
        .bind(cur.revision)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a project named {name:?} already exists; pick another name")))?;
        event(
            &mut w,
            actor,
            Some(id),
            "project",
            &id.to_string(),
            "updated",
            json!({"name": patch.name, "description": patch.description}),
        )
        .await?;
        let p = self.project_in(&mut w, id).await?;
        w.commit().await?;
        Ok(p)
    }

    /// Delete an empty project. Refuses while it owns anything.
    pub async fn delete_project(&self, actor: &Actor, id: ProjectId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = self.project_in(&mut w, id).await?;
        for (table, noun) in [
            ("appliances", "appliances"),
            ("appliance_templates", "appliance templates"),
            ("clusters", "clusters"),
            ("cluster_templates", "cluster templates"),
            ("keypairs", "keypairs"),
            ("flavors", "flavors"),
            ("images", "images"),
            ("nodes", "nodes"),
            ("shares", "shares"),
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE project_id = $1"))
                .bind(id.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
            if n > 0 {
                return Err(StoreError::Conflict(format!(
                    "project {:?} still owns {n} {noun}; delete them first",
                    cur.name
                )));
            }
        }
        sqlx::query("DELETE FROM projects WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, Some(id), "project", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        let _changed = self.identity_changing();
        w.commit().await
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }

    pub async fn create_user(&self, actor: &Actor, name: &str, admin: bool, source: &str) -> Result<User> {
        let mut w = self.write().await?;
        let id = UserId::generate();
        sqlx::query("INSERT INTO users (id, name, admin, source, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.to_string())
            .bind(name.to_string())
            .bind(i64::from(admin))
            .bind(source.to_string())
            .bind(now())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| unique(e, || format!("a user named {name:?} already exists")))?;
        event(
            &mut w,
            actor,
            None,
            "user",
            &id.to_string(),
            "created",
            json!({"name": name, "admin": admin, "source": source}),
        )
        .await?;
        w.commit().await?;
        self.user(&id.to_string()).await
    }

    /// A user by ID or name.
    pub async fn user(&self, id_or_name: &str) -> Result<User> {
        let row = sqlx::query(&format!("SELECT * FROM users WHERE {} = $1", crate::id_or_name(id_or_name)))
            .bind(id_or_name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "user", id: id_or_name.to_string() })?;
        user(&row)
    }

    /// A user by name only.
    async fn user_named(&self, name: &str) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "user", id: name.to_string() })?;
        user(&row)
    }

    /// The federated user for a subject of an identity provider, created on
    /// first sight — matched by name alone (a name that is another user's ID
    /// is just a name).
    pub async fn federated_user(&self, name: &str, issuer: &str) -> Result<User> {
        match self.user_named(name).await {
            Ok(u) if u.source == issuer => Ok(u),
            Ok(_) => Err(StoreError::Conflict(format!(
                "user name {name:?} already belongs to another identity source; map the identity provider's subjects to a distinct prefix"
            ))),
            Err(StoreError::NotFound { .. }) => match self.create_user(&Actor::service(), name, false, issuer).await {
                // Two first requests of one user can race; the loser reads the winner's row.
                Err(StoreError::Conflict(_)) => self.user_named(name).await,
                r => r,
            },
            Err(e) => Err(e),
        }
    }

    pub async fn list_users(&self, p: &ListParams) -> Result<Page<User>> {
        let mut q = Sql::new("SELECT * FROM users WHERE 1 = 1");
        if let Some(n) = &p.name {
            q.push(" AND name = ").bind(n.clone());
        }
        q.page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(user).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, |x| x.id.to_string()))
    }

    pub async fn delete_user(&self, actor: &Actor, id: UserId) -> Result<()> {
        let mut w = self.write().await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound { noun: "user", id: id.to_string() });
        }
        event(&mut w, actor, None, "user", &id.to_string(), "deleted", json!({})).await?;
        let _changed = self.identity_changing();
        w.commit().await
    }

    /// The project roles of a user.
    pub async fn roles_of(&self, user: UserId) -> Result<Vec<(ProjectId, Role)>> {
        let rows = sqlx::query("SELECT project_id, role FROM role_assignments WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((parse_id("role_assignments", &get::<String>(r, "project_id")?)?, role(&get::<String>(r, "role")?)?))
            })
            .collect()
    }

    pub async fn project_roles(&self, project: ProjectId) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query(
            "SELECT r.project_id, r.user_id, u.name, r.role FROM role_assignments r JOIN users u ON u.id = r.user_id \
             WHERE r.project_id = $1 ORDER BY u.name",
        )
        .bind(project.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RoleAssignment {
                    project_id: parse_id("role_assignments", &get::<String>(r, "project_id")?)?,
                    user_id: parse_id("role_assignments", &get::<String>(r, "user_id")?)?,
                    user_name: get(r, "name")?,
                    role: role(&get::<String>(r, "role")?)?,
                })
            })
            .collect()
    }

    /// Give a user a role in a project (replacing any role they had there).
    pub async fn grant_role(&self, actor: &Actor, project: ProjectId, user: UserId, r: Role) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM role_assignments WHERE project_id = $1 AND user_id = $2")
            .bind(project.to_string())
            .bind(user.to_string())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("INSERT INTO role_assignments (project_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(project.to_string())
            .bind(user.to_string())
            .bind(r.as_str().to_string())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| unique(e, || "role already granted".into()))?;
        event(&mut w, actor, Some(project), "role_assignment", &user.to_string(), "granted", json!({"role": r}))
            .await?;
        let _changed = self.identity_changing();
        w.commit().await
    }

    pub async fn revoke_role(&self, actor: &Actor, project: ProjectId, user: UserId) -> Result<()> {
        let mut w = self.write().await?;
        let n = sqlx::query("DELETE FROM role_assignments WHERE project_id = $1 AND user_id = $2")
            .bind(project.to_string())
            .bind(user.to_string())
            .execute(&mut *w.tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound { noun: "role assignment", id: user.to_string() });
        }
        event(&mut w, actor, Some(project), "role_assignment", &user.to_string(), "revoked", json!({})).await?;
        let _changed = self.identity_changing();
        w.commit().await
    }

    pub async fn create_token(&self, actor: &Actor, t: NewToken) -> Result<ApiToken> {
        let mut w = self.write().await?;
        let id = TokenId::generate();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, secret_hash, description, project_id, role, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(t.user_id.to_string())
        .bind(t.secret_hash)
        .bind(t.description.clone())
        .bind(t.project_id.map(|p| p.to_string()))
        .bind(t.role.map(|r| r.as_str().to_string()))
        .bind(t.expires_at.clone())
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || "token collision; try again".into()))?;
        event(
            &mut w,
            actor,
            t.project_id,
            "token",
            &id.to_string(),
            "created",
            json!({"user_id": t.user_id, "expires_at": t.expires_at, "role": t.role}),
        )
        .await?;
        let tok = crate::fetch_in(&mut w, "api_tokens", "token", id.to_string(), api_token).await?;
        w.commit().await?;
        Ok(tok)
    }

    /// How many writes have changed tokens, users, roles or projects since
    /// this store was opened: a cache of principals made at one value is
    /// stale at any other.
    pub fn identity_generation(&self) -> u64 {
        self.identity.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Taken before committing a write that changes who a token is: the
    /// generation moves when it drops, after the commit, and also when the
    /// caller gives up while the commit is in flight (it may still land).
    fn identity_changing(&self) -> IdentityChanging {
        IdentityChanging(self.identity.clone())
    }

    /// The token whose secret hashes to `hash`, with its user (expiry is the caller's check).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let Some(row) = sqlx::query("SELECT * FROM api_tokens WHERE secret_hash = $1")
            .bind(hash.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let token = api_token(&row)?;
        let user = self.user(&token.user_id.to_string()).await?;
        Ok(Some(TokenRecord { token, user }))
    }

    pub async fn list_tokens(&self, user: UserId, p: &ListParams) -> Result<Page<ApiToken>> {
        let mut q = Sql::new("SELECT * FROM api_tokens WHERE user_id = ");
        q.bind(user.to_string());
        q.page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(api_token).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, |x| x.id.to_string()))
    }

    pub async fn token(&self, id: TokenId) -> Result<ApiToken> {
        self.fetch("api_tokens", "token", id.to_string(), api_token).await
    }

    pub async fn delete_token(&self, actor: &Actor, id: TokenId) -> Result<()> {
        let mut w = self.write().await?;
        let n = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound { noun: "token", id: id.to_string() });
        }
        event(&mut w, actor, None, "token", &id.to_string(), "deleted", json!({})).await?;
        let _changed = self.identity_changing();
        w.commit().await
    }
}

/// See [`Store::identity_changing`].
struct IdentityChanging(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Drop for IdentityChanging {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}
