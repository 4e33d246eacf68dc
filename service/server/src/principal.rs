//! Who is calling and what they may do: a user with roles per project,
//! possibly narrowed by a token to one project or a lower role. Every
//! handler asks the `Principal` for what it needs; an object of a project
//! the caller has no role in reads as not found, so IDs of other tenants'
//! objects reveal nothing.

use std::collections::HashMap;

use tundra_api::ProjectId;
use tundra_api::identity::{ProjectRole, Role, User, Whoami};
use tundra_store::{Actor, Store, Visibility};

use crate::error::{ApiError, CURRENT_REQUEST};

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// `token` or `oidc`.
    pub method: &'static str,
    roles: HashMap<ProjectId, Role>,
    /// A token restricted to one project acts only there…
    scope: Option<ProjectId>,
    /// …and/or with at most this role.
    cap: Option<Role>,
}

impl Principal {
    pub fn new(
        user: User,
        method: &'static str,
        roles: HashMap<ProjectId, Role>,
        scope: Option<ProjectId>,
        cap: Option<Role>,
    ) -> Self {
        Principal { user, method, roles, scope, cap }
    }

    /// A site admin acting as such (not through a restricted token).
    pub fn is_admin(&self) -> bool {
        self.user.admin && self.scope.is_none() && self.cap.is_none_or(|c| c == Role::Admin)
    }

    /// The caller's effective role in a project.
    pub fn role_in(&self, p: ProjectId) -> Option<Role> {
        if self.scope.is_some_and(|s| s != p) {
            return None;
        }
        let r = if self.user.admin { Some(Role::Admin) } else { self.roles.get(&p).copied() }?;
        Some(match self.cap {
            Some(c) => r.min(c),
            None => r,
        })
    }

    /// Require at least `min` in `p`. No role at all reads as "not found".
    pub fn require(&self, p: ProjectId, min: Role, noun: &'static str, id: &str) -> Result<Role, ApiError> {
        match self.role_in(p) {
            None => Err(ApiError::NotFound { noun, id: id.to_string() }),
            Some(r) if r < min => Err(ApiError::Forbidden(format!(
                "your role in this project is {}; this needs {} — ask a project admin",
                r.as_str(),
                min.as_str()
            ))),
            Some(r) => Ok(r),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("only site admins may do this; ask one".into())) }
    }

    /// Objects of a public-capable noun (flavors, images): public ones are
    /// readable by all; writing them is for site admins.
    pub fn require_scope(
        &self,
        project: Option<ProjectId>,
        min: Role,
        noun: &'static str,
        id: &str,
    ) -> Result<(), ApiError> {
        match project {
            Some(p) => self.require(p, min, noun, id).map(|_| ()),
            None if min == Role::Reader => Ok(()),
            None => self.require_admin(),
        }
    }

    /// What a token the caller makes for themselves may carry: never more
    /// than the caller's own token — its project (a scoped token makes only
    /// tokens scoped alike) and its role (a capped one, none above the cap),
    /// the defaults being the caller's own limits.
    pub fn token_limits(
        &self,
        project: Option<ProjectId>,
        role: Option<Role>,
    ) -> Result<(Option<ProjectId>, Option<Role>), ApiError> {
        let project = match (self.scope, project) {
            (Some(s), Some(p)) if s != p => {
                return Err(ApiError::Forbidden(format!(
                    "this token works in project {s} only; the tokens it makes cannot reach another project"
                )));
            }
            (Some(s), _) => Some(s),
            (None, p) => p,
        };
        let role = match (self.cap, role) {
            (Some(c), Some(r)) if r > c => {
                return Err(ApiError::Forbidden(format!(
                    "this token is capped at {}; the tokens it makes cannot have {}",
                    c.as_str(),
                    r.as_str()
                )));
            }
            (Some(c), None) => Some(c),
            (_, r) => r,
        };
        if let Some(p) = project {
            self.require(p, role.unwrap_or(Role::Reader), "project", &p.to_string())?;
        }
        Ok((project, role))
    }

    /// Which projects' objects the caller may list.
    pub fn visibility(&self) -> Visibility {
        if self.is_admin() {
            return Visibility::All;
        }
        let mut ps: Vec<ProjectId> = self.roles.keys().copied().filter(|p| self.role_in(*p).is_some()).collect();
        if self.user.admin
            && let Some(s) = self.scope
        {
            ps = vec![s];
        }
        ps.sort();
        Visibility::Projects(ps)
    }

    /// Visibility narrowed by a `?project=` filter (`public`, a name or an ID).
    pub async fn list_filter(&self, store: &Store, project: Option<&str>) -> Result<Visibility, ApiError> {
        match project {
            None => Ok(self.visibility()),
            Some("public") => Ok(Visibility::PublicOnly),
            Some(p) => {
                let proj = store.project(p).await.map_err(|_| ApiError::NotFound { noun: "project", id: p.into() })?;
                self.require(proj.id, Role::Reader, "project", p)?;
                Ok(Visibility::Project(proj.id))
            }
        }
    }

    pub fn actor(&self) -> Actor {
        Actor { name: self.user.name.clone(), request_id: CURRENT_REQUEST.try_with(|r| r.0.clone()).ok() }
    }

    pub fn whoami(&self) -> Whoami {
        let mut roles: Vec<ProjectRole> = self
            .roles
            .keys()
            .filter_map(|p| self.role_in(*p).map(|role| ProjectRole { project_id: *p, role }))
            .collect();
        roles.sort_by_key(|r| r.project_id);
        Whoami {
            user_id: self.user.id,
            name: self.user.name.clone(),
            admin: self.is_admin(),
            method: self.method.into(),
            roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(admin: bool, roles: &[(ProjectId, Role)], scope: Option<ProjectId>, cap: Option<Role>) -> Principal {
        let user = User {
            id: tundra_api::UserId::generate(),
            name: "u".into(),
            admin,
            source: "local".into(),
            created_at: String::new(),
        };
        Principal::new(user, "token", roles.iter().copied().collect(), scope, cap)
    }

    #[test]
    fn roles_scopes_and_caps() {
        let (a, b) = (ProjectId::generate(), ProjectId::generate());
        let m = principal(false, &[(a, Role::Member)], None, None);
        assert_eq!(m.role_in(a), Some(Role::Member));
        assert_eq!(m.role_in(b), None);
        assert!(matches!(m.require(b, Role::Reader, "x", "1"), Err(ApiError::NotFound { .. })));
        assert!(matches!(m.require(a, Role::Admin, "x", "1"), Err(ApiError::Forbidden(_))));
        let capped = principal(false, &[(a, Role::Admin)], None, Some(Role::Reader));
        assert_eq!(capped.role_in(a), Some(Role::Reader));
        let admin_scoped = principal(true, &[], Some(a), None);
        assert!(!admin_scoped.is_admin());
        assert_eq!(admin_scoped.role_in(a), Some(Role::Admin));
        assert_eq!(admin_scoped.role_in(b), None);
        assert!(principal(true, &[], None, None).is_admin());
    }

    #[test]
    fn tokens_never_carry_more_than_their_maker() {
        let (a, b) = (ProjectId::generate(), ProjectId::generate());
        let reader_of_a = principal(false, &[(a, Role::Admin), (b, Role::Admin)], Some(a), Some(Role::Reader));
        // Nothing asked: the maker's own limits.
        assert_eq!(reader_of_a.token_limits(None, None).unwrap(), (Some(a), Some(Role::Reader)));
        assert!(matches!(reader_of_a.token_limits(Some(b), None), Err(ApiError::Forbidden(_))));
        assert!(matches!(reader_of_a.token_limits(None, Some(Role::Admin)), Err(ApiError::Forbidden(_))));
        // An unrestricted member makes what it asks for, within its roles.
        let member = principal(false, &[(a, Role::Member)], None, None);
        assert_eq!(member.token_limits(None, None).unwrap(), (None, None));
        assert_eq!(member.token_limits(Some(a), Some(Role::Reader)).unwrap(), (Some(a), Some(Role::Reader)));
        assert!(matches!(member.token_limits(Some(a), Some(Role::Admin)), Err(ApiError::Forbidden(_))));
        assert!(matches!(member.token_limits(Some(b), None), Err(ApiError::NotFound { .. })));
    }
}
