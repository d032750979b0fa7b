//! The checks of a `cache` service (`[services.cache]`): its engine is one the runtime can
//! open — Redis, or the embedded in-process cache with the same semantics when `REDIS_URL` is
//! unset — its entries live for at least a second, and the entity it caches (named after the
//! service when it declares none) can be a type.

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{CacheBackend, ServiceType};
use crate::resolve::DraftService;

pub(super) fn cache(c: &mut Checker<'_>, service: &DraftService) {
    if service.kind() != ServiceType::Cache {
        return;
    }
    let Some(cache) = &service.raw.cache else {
        return;
    };
    let name = service.name();
    let base = service_path(service).key("cache");
    let why = match cache.backend {
        CacheBackend::Redis => None,
        CacheBackend::Hazelcast => Some("Hazelcast has no maintained Rust client"),
        CacheBackend::Memcached => Some(
            "Memcached has no maintained async Rust client (the `memcache` crate blocks its thread)",
        ),
    };
    if let Some(why) = why {
        c.push(
            Diagnostic::error(
                Code::Unsupported,
                base.key("backend"),
                format!("`{name}` cannot cache in `{}`: {why}", cache.backend),
            )
            .with_help("write `backend = \"redis\"` (the embedded in-process cache serves when REDIS_URL is unset), or remove the key"),
        );
    }
    if cache.ttl_seconds == 0 {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                base.key("ttl_seconds"),
                format!("`{name}` has `ttl_seconds = 0`: an entry would expire as it is written"),
            )
            .with_help(
                "keep entries an hour (`ttl_seconds = 3600`, the default), or remove the key",
            ),
        );
    }
    // Without entities, the cached entity is named after the service: that name must be a type.
    if let Ok(crate::Archetype::Cache(shape)) = &service.archetype
        && service
            .raw
            .domain
            .as_ref()
            .is_none_or(|d| d.entities.is_empty())
        && let Some(why) = crate::names::type_name_conflict(&shape.entity)
    {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                service_path(service).key("name"),
                format!("`{name}` declares no entity, so the entity it caches is named after it, `{}`, which is {why}", shape.entity),
            )
            .with_help("name what it caches in `[services.domain] entities`, e.g. `entities = [\"Product\"]`"),
        );
    }
}
