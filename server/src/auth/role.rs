//! Who may do what: roles, the authenticated principal, and tenant visibility.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A token's role. Stored as its lowercase name (`customer`, `support`, `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uploads dumps and reads its own tenant's dumps only.
    Customer,
    /// Support engineers: read every tenant's dumps (the dashboard across customers).
    Support,
    /// Everything support can do, plus token management.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }

    /// Whether this role reads dumps of every tenant.
    pub fn sees_all_tenants(self) -> bool {
        matches!(self, Role::Support | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?} (expected customer, support or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "customer" => Ok(Role::Customer),
            "support" => Ok(Role::Support),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// The caller of a request, as established by a bearer token or a session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub tenant: String,
    pub role: Role,
    /// The session's CSRF secret when the request was authenticated by the session cookie; `None`
    /// for a bearer token (a browser never attaches an `Authorization` header on its own, so a
    /// bearer request cannot be forged cross-site and needs no CSRF token).
    pub csrf: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The tenant filter for listing dumps: `Some(tenant)` for a customer, `None` (all tenants) for
    /// support and admin. List queries take this so a customer's list can never include another
    /// tenant's dump.
    pub fn tenant_filter(&self) -> Option<&str> {
        if self.role.sees_all_tenants() {
            None
        } else {
            Some(&self.tenant)
        }
    }
}

/// Whether `principal` may see a dump that belongs to `dump_tenant`.
///
/// Callers answer **404, not 403**, when this is false (see [`super::AuthError::NotFound`]), so a
/// customer cannot learn that another tenant's dump id exists.
#[allow(dead_code)] // for handlers that load a row before checking (pages); the API filters in SQL
pub fn can_see(principal: &Principal, dump_tenant: &str) -> bool {
    principal.role.sees_all_tenants() || principal.tenant == dump_tenant
}

/// A tenant name: 1..=64 characters of `A-Z a-z 0-9 . _ -`. Tenants appear in URLs, file names
/// and filters, so anything else is refused when a token is created.
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tenant: &str, role: Role) -> Principal {
        Principal {
            token_id: "t".into(),
            tenant: tenant.into(),
            role,
            csrf: None,
        }
    }

    #[test]
    fn customers_see_only_their_tenant() {
        assert!(can_see(&p("acme", Role::Customer), "acme"));
        assert!(!can_see(&p("acme", Role::Customer), "globex"));
        // Tenant names are compared exactly: no case folding, no prefix match.
        assert!(!can_see(&p("acme", Role::Customer), "ACME"));
        assert!(!can_see(&p("acme", Role::Customer), "acme2"));
        assert_eq!(p("acme", Role::Customer).tenant_filter(), Some("acme"));
    }

    #[test]
    fn support_and_admin_see_every_tenant() {
        for role in [Role::Support, Role::Admin] {
            assert!(can_see(&p("internal", role), "acme"));
            assert!(can_see(&p("internal", role), "globex"));
            assert_eq!(p("internal", role).tenant_filter(), None);
        }
        assert!(p("x", Role::Admin).is_admin());
        assert!(!p("x", Role::Support).is_admin());
        assert!(!p("x", Role::Customer).is_admin());
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::Customer, Role::Support, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!("Admin".parse::<Role>(), Err(UnknownRole("Admin".into())));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(valid_tenant("acme-corp_2.eu"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant(&"a".repeat(65)));
        assert!(!valid_tenant("acme/../x"));
        assert!(!valid_tenant("a b"));
        assert!(!valid_tenant("é"));
    }
}
