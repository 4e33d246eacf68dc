//! Identity: API tokens (shown once, hashed, scoped, capped, expiring,
//! revocable), the bootstrap admin, OIDC federation with group → role
//! mappings, and secrets sealed at rest with key rotation.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::json;
use tundra_api::SecretId;
use tundrad::config::{GroupMapping, IdentityProvider};
use tundrad::secrets::Plaintext;

use crate::harness::{Backend, Env};

pub async fn tokens_scopes_expiry_revocation(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let t = env.admin.clone();
    // Bootstrap: the admin token file is private.
    let mode = std::fs::metadata(env.config.admin_token_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let a = env.project("a").await;
    let bp = env.project("b").await;
    let alice = env.user_with_role("alice", "a", "admin").await;
    env.call("PUT", "/v1/projects/b/roles/alice", &t, Some(json!({"role": "member"}))).await;

    // The secret is shown once; listing never shows it, the store keeps only a hash.
    let r = env
        .call("POST", "/v1/tokens", &alice, Some(json!({"description": "ci", "project_id": a, "role": "reader"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let scoped = r.body["secret"].as_str().unwrap().to_string();
    let tid = r.body["token"]["id"].as_str().unwrap().to_string();
    let list = env.call("GET", "/v1/tokens", &alice, None).await;
    assert!(!list.body.to_string().contains(&scoped));
    assert!(!list.body.to_string().contains("secret"));
    // Scoped to A with role reader: reads A, cannot write A, cannot see B.
    let who = env.call("GET", "/v1/whoami", &scoped, None).await;
    assert_eq!(who.body["roles"], json!([{"project_id": a, "role": "reader"}]));
    assert_eq!(env.call("GET", "/v1/projects/a", &scoped, None).await.status, 200);
    env.call("GET", "/v1/projects/b", &scoped, None).await.problem(404);
    env.call("PATCH", "/v1/projects/a", &scoped, Some(json!({"description": "x"}))).await.problem(403);
    // A token cannot carry more than its creator has.
    env.call("POST", "/v1/tokens", &alice, Some(json!({"project_id": bp, "role": "admin"}))).await.problem(403);
    // Lifetimes are bounded.
    let d = env.call("POST", "/v1/tokens", &alice, Some(json!({"expires_in": 999999999}))).await.problem(400);
    assert!(d.contains("expires_in"), "{d}");
    // A revoked role is gone at once, for a token used a moment ago too
    // (tundrad keeps recent tokens' principals for a moment).
    let roles = |r: &serde_json::Value| {
        r["roles"].as_array().unwrap().iter().map(|x| x["project_id"].clone()).collect::<Vec<_>>()
    };
    assert!(roles(&env.call("GET", "/v1/whoami", &alice, None).await.body).contains(&json!(bp)));
    assert_eq!(env.call("DELETE", "/v1/projects/b/roles/alice", &t, None).await.status, 204);
    assert!(!roles(&env.call("GET", "/v1/whoami", &alice, None).await.body).contains(&json!(bp)));
    env.call("GET", "/v1/projects/b", &alice, None).await.problem(404);
    // Revocation is immediate.
    assert_eq!(env.call("DELETE", &format!("/v1/tokens/{tid}"), &alice, None).await.status, 204);
    assert!(env.call("GET", "/v1/whoami", &scoped, None).await.problem(401).contains("revoked"));
    // Expiry.
    let short = env.call("POST", "/v1/tokens", &alice, Some(json!({"expires_in": 1}))).await.body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.call("GET", "/v1/whoami", &short, None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(env.call("GET", "/v1/whoami", &short, None).await.problem(401).contains("expired"));
    // Deleting a user revokes their tokens; you cannot delete yourself.
    assert_eq!(env.call("DELETE", "/v1/users/alice", &t, None).await.status, 204);
    env.call("GET", "/v1/whoami", &alice, None).await.problem(401);
    env.call("DELETE", "/v1/users/admin", &t, None).await.problem(409);
    // A restart does not bootstrap again.
    let mut env = env;
    let before = std::fs::read_to_string(env.config.admin_token_file()).unwrap();
    env.restart(|_| {}).await;
    assert_eq!(std::fs::read_to_string(env.config.admin_token_file()).unwrap(), before);
    assert_eq!(env.call("GET", "/v1/whoami", &t, None).await.status, 200);
    env.stop().await;
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub async fn oidc_groups_map_to_roles(b: Backend) {
    oidc(b, false).await
}

/// The same, with the key set fetched from the identity provider's URL.
pub async fn oidc_jwks_from_url(b: Backend) {
    oidc(b, true).await
}

async fn oidc(b: Backend, from_url: bool) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let served = crate::harness::FileServer::start(jwks.to_string().into_bytes(), Duration::ZERO).await;
    let issuer = "https://idp.example.org/realms/astro".to_string();
    // (The second variant maps user names as they are, no prefix.)
    let prefix = if from_url { "" } else { "sso:" };
    let idp = IdentityProvider {
        issuer: issuer.clone(),
        audience: "tundra".into(),
        jwks_file: (!from_url).then_some(jwks_file),
        jwks_url: from_url.then(|| served.url("jwks.json")),
        username_claim: "preferred_username".into(),
        groups_claim: "groups".into(),
        user_prefix: prefix.into(),
        admin_groups: vec!["hpc-admins".into()],
        mappings: vec![GroupMapping {
            group: "astro-ops".into(),
            project: "astro".into(),
            role: tundra_api::identity::Role::Member,
        }],
    };
    let env = Env::start(b, |c| c.identity_providers = vec![idp]).await;
    let astro = env.project("astro").await;
    env.project("other").await;
    let enc = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let jwt = |claims: serde_json::Value| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &claims, &enc).unwrap()
    };
    let good = jwt(
        json!({"iss": issuer, "aud": "tundra", "sub": "u-1", "preferred_username": "carol", "groups": ["astro-ops"], "exp": now + 600}),
    );
    let who = env.call("GET", "/v1/whoami", &good, None).await;
    assert_eq!(who.status, 200, "{}", who.body);
    assert_eq!(who.body["name"], format!("{prefix}carol"));
    assert_eq!(who.body["method"], "oidc");
    assert_eq!(who.body["roles"], json!([{"project_id": astro, "role": "member"}]));
    // The member can work in astro and not elsewhere.
    let k = env
        .call("POST", "/v1/flavors", &good, Some(json!({"project_id": astro, "name": "f", "resource_class": "rc"})))
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    env.call("GET", "/v1/projects/other", &good, None).await.problem(404);
    // Their changes are attributed to them.
    let ev = env.call("GET", "/v1/events?object_type=flavor", &good, None).await;
    assert_eq!(ev.body["items"][0]["actor"], format!("{prefix}carol"));
    // Somebody whose user name at the identity provider is carol's ID here
    // is not carol: names are matched as names.
    let carol = who.body["user_id"].as_str().unwrap().to_string();
    let imp = jwt(
        json!({"iss": issuer, "aud": "tundra", "sub": "u-9", "preferred_username": carol, "groups": [], "exp": now + 600}),
    );
    let r = env.call("GET", "/v1/whoami", &imp, None).await;
    assert!(r.status != 200 || r.body["user_id"] != carol.as_str(), "logged in as carol: {}", r.body);
    // Admin group.
    let admin = jwt(
        json!({"iss": issuer, "aud": "tundra", "sub": "u-2", "preferred_username": "dan", "groups": ["hpc-admins"], "exp": now + 600}),
    );
    assert_eq!(env.call("GET", "/v1/whoami", &admin, None).await.body["admin"], true);
    // Rejections: expired, wrong audience, unknown issuer, forged signature.
    let expired = jwt(json!({"iss": issuer, "aud": "tundra", "sub": "u-1", "groups": [], "exp": now - 3600}));
    assert!(env.call("GET", "/v1/whoami", &expired, None).await.problem(401).contains("Expired"));
    let aud = jwt(json!({"iss": issuer, "aud": "other", "sub": "u-1", "exp": now + 600}));
    env.call("GET", "/v1/whoami", &aud, None).await.problem(401);
    let iss = jwt(json!({"iss": "https://evil", "aud": "tundra", "sub": "u-1", "exp": now + 600}));
    assert!(env.call("GET", "/v1/whoami", &iss, None).await.problem(401).contains("no identity provider"));
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    let forged = jsonwebtoken::encode(
        &h,
        &json!({"iss": issuer, "aud": "tundra", "sub": "u-1", "groups": ["hpc-admins"], "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    env.call("GET", "/v1/whoami", &forged, None).await.problem(401);
    env.stop().await;
}

pub async fn secrets_sealed_and_rotated(b: Backend) {
    let mut env = Env::start(b, |_| {}).await;
    let id = SecretId::generate();
    let plain = Plaintext(b"bmc-password-hunter2".to_vec());
    let st = env.state().clone();
    st.conductor.keyring().put(st.store(), id, &plain).await.unwrap();
    let first_key = st.conductor.keyring().primary_id().to_string();
    assert_eq!(st.store().secret(id).await.unwrap().key_id, first_key);
    assert_eq!(st.conductor.keyring().get(st.store(), id).await.unwrap(), plain);
    // Not in the database file in clear (SQLite: the file; PostgreSQL: the row).
    if b == Backend::Sqlite {
        let db = std::fs::read(env.config.data_dir.join("tundra.db")).unwrap_or_default();
        let wal = std::fs::read(env.config.data_dir.join("tundra.db-wal")).unwrap_or_default();
        for f in [db, wal] {
            assert!(!f.windows(plain.0.len()).any(|w| w == plain.0.as_slice()), "plaintext on disk");
        }
    }
    assert!(!st.store().secret(id).await.unwrap().ciphertext.contains("hunter2"));
    // Rotate: a new first key; restart re-seals; then the old key can go.
    let key_file = env.config.secrets_key_file();
    let old = std::fs::read_to_string(&key_file).unwrap();
    let new_line = tundrad::secrets::new_key_line();
    tundrad::secrets::write_private(&key_file, &format!("{new_line}\n{old}")).unwrap();
    env.restart(|_| {}).await;
    let st = env.state().clone();
    let new_key = new_line.split(':').next().unwrap();
    assert_eq!(st.store().secret(id).await.unwrap().key_id, new_key);
    tundrad::secrets::write_private(&key_file, &format!("{new_line}\n")).unwrap();
    env.restart(|_| {}).await;
    let st = env.state().clone();
    assert_eq!(st.conductor.keyring().get(st.store(), id).await.unwrap(), plain);
    // Without the sealing key, opening says which key is missing.
    tundrad::secrets::write_private(&key_file, &format!("{}\n", tundrad::secrets::new_key_line())).unwrap();
    let ring = tundrad::secrets::Keyring::load_or_create(&key_file).unwrap();
    let e = ring.get(st.store(), id).await.unwrap_err().to_string();
    assert!(e.contains(new_key), "{e}");
    env.stop().await;
}
