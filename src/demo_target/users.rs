//! The demo target's users: a bounded in-memory resource to create, list,
//! read, update (`PATCH`) and delete, so `examples/workloads/users-crud.yaml`
//! and `journey-users.yaml` have something real to talk to.
//!
//! A user created with a bearer token (`POST /login`) belongs to that
//! account: reading, changing or deleting it then needs the same account's
//! token (none, or an expired one: 401; another account's: 404, as if it
//! were not there). Users created without a token are anyone's, as before.

use std::collections::VecDeque;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{caller, unauthorized};
use super::{DemoState, json_body};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub age: Option<u32>,
    pub status: String,
    /// The account that created it, if it was created with a token.
    #[serde(skip)]
    pub owner: Option<String>,
}

/// A new user, as `POST /users` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    email: Option<String>,
    age: Option<u32>,
    status: Option<String>,
}

/// The fields a `PATCH /users/{id}` may change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    name: Option<String>,
    email: Option<String>,
    age: Option<u32>,
    status: Option<String>,
}

fn check(name: Option<&str>, email: Option<&str>, age: Option<u32>, status: Option<&str>) -> Result<(), String> {
    let length = |what: &str, value: Option<&str>, max: usize| match value {
        Some(v) if v.is_empty() || v.chars().count() > max => Err(format!("{what} must be 1 to {max} characters")),
        _ => Ok(()),
    };
    length("name", name, 100)?;
    length("email", email, 200)?;
    length("status", status, 32)?;
    if age.is_some_and(|a| a > 150) {
        return Err("age must be from 0 to 150".to_string());
    }
    Ok(())
}

impl NewUser {
    fn validate(&self) -> Result<(), String> {
        check(Some(&self.name), self.email.as_deref(), self.age, self.status.as_deref())
    }
}

impl UserPatch {
    fn validate(&self) -> Result<(), String> {
        check(self.name.as_deref(), self.email.as_deref(), self.age, self.status.as_deref())
    }
}

/// Keeps the last `capacity` users created. Ids only grow, so the deque is
/// sorted by id and a lookup is a binary search.
#[derive(Debug)]
pub struct UserStore {
    users: VecDeque<User>,
    next_id: u64,
    capacity: usize,
}

impl UserStore {
    pub fn new(capacity: usize) -> Self {
        UserStore { users: VecDeque::new(), next_id: 1, capacity: capacity.max(1) }
    }

    pub fn create(&mut self, new: NewUser, owner: Option<String>) -> User {
        let user = User {
            id: self.next_id,
            name: new.name,
            email: new.email,
            age: new.age,
            status: new.status.unwrap_or_else(|| "active".to_string()),
            owner,
        };
        self.next_id += 1;
        if self.users.len() == self.capacity {
            self.users.pop_front();
        }
        self.users.push_back(user.clone());
        user
    }

    pub fn get(&self, id: u64) -> Option<&User> {
        self.users.binary_search_by_key(&id, |u| u.id).ok().map(|i| &self.users[i])
    }

    /// Applies the fields given; `None` if there is no such user.
    pub fn update(&mut self, id: u64, patch: UserPatch) -> Option<User> {
        let i = self.users.binary_search_by_key(&id, |u| u.id).ok()?;
        let user = &mut self.users[i];
        if let Some(name) = patch.name {
            user.name = name;
        }
        if patch.email.is_some() {
            user.email = patch.email;
        }
        if patch.age.is_some() {
            user.age = patch.age;
        }
        if let Some(status) = patch.status {
            user.status = status;
        }
        Some(user.clone())
    }

    /// Removes the user; `None` if there is no such user.
    pub fn delete(&mut self, id: u64) -> Option<User> {
        let i = self.users.binary_search_by_key(&id, |u| u.id).ok()?;
        self.users.remove(i)
    }

    /// Up to `limit` users, newest first.
    pub fn recent(&self, limit: usize) -> Vec<User> {
        self.users.iter().rev().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn not_found(id: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": format!("user {id} not found")}))
}

/// The user `id` as `caller` may see it: a user of another account is not
/// found; one of an account, asked for without a token, needs one.
fn visible(state: &DemoState, id: &str, caller: Option<&str>) -> Result<u64, Box<HttpResponse>> {
    let n = id.parse::<u64>().map_err(|_| Box::new(not_found(id)))?;
    let owner = state.users.lock().get(n).map(|u| u.owner.clone()).ok_or_else(|| Box::new(not_found(id)))?;
    match (owner.as_deref(), caller) {
        (None, _) => Ok(n),
        (Some(owner), Some(caller)) if owner == caller => Ok(n),
        (Some(_), None) => {
            Err(Box::new(unauthorized("this user belongs to an account: send its `Authorization: Bearer <token>`")))
        }
        (Some(_), Some(_)) => Err(Box::new(not_found(id))),
    }
}

pub(super) async fn create_user(state: web::Data<DemoState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    const ROUTE: &str = "create_user";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let owner = match caller(&state, &req) {
        Ok(owner) => owner,
        Err(response) => return state.counted(ROUTE, *response),
    };
    let response = match json_body::<NewUser>(&body, r#"{"name": "…", "email": "…", "age": N, "status": "…"}"#) {
        Err(response) => *response,
        Ok(new) => match new.validate() {
            Err(e) => HttpResponse::UnprocessableEntity().json(json!({"error": e})),
            Ok(()) => {
                let user = state.users.lock().create(new, owner);
                HttpResponse::Created().insert_header(("Location", format!("/users/{}", user.id))).json(user)
            }
        },
    };
    state.counted(ROUTE, response)
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    limit: Option<usize>,
}

pub(super) async fn list_users(
    state: web::Data<DemoState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    const ROUTE: &str = "list_users";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let limit = query.limit.unwrap_or(20).min(100);
    let users = state.users.lock().recent(limit);
    state.counted(ROUTE, HttpResponse::Ok().json(users))
}

pub(super) async fn get_user(state: web::Data<DemoState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    const ROUTE: &str = "get_user";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let response = match caller(&state, &req).and_then(|who| visible(&state, &id, who.as_deref())) {
        Err(response) => *response,
        Ok(n) => match state.users.lock().get(n).cloned() {
            Some(user) => HttpResponse::Ok().json(user),
            None => not_found(&id),
        },
    };
    state.counted(ROUTE, response)
}

pub(super) async fn delete_user(state: web::Data<DemoState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    const ROUTE: &str = "delete_user";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let response = match caller(&state, &req).and_then(|who| visible(&state, &id, who.as_deref())) {
        Err(response) => *response,
        Ok(n) => match state.users.lock().delete(n) {
            Some(_) => HttpResponse::NoContent().finish(),
            None => not_found(&id),
        },
    };
    state.counted(ROUTE, response)
}

pub(super) async fn update_user(
    state: web::Data<DemoState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    const ROUTE: &str = "update_user";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let visible = caller(&state, &req).and_then(|who| visible(&state, &id, who.as_deref()));
    let response = match (visible, json_body::<UserPatch>(&body, r#"any of {"name", "email", "age", "status"}"#)) {
        (Err(response), _) => *response,
        (_, Err(response)) => *response,
        (Ok(n), Ok(patch)) => match patch.validate() {
            Err(e) => HttpResponse::UnprocessableEntity().json(json!({"error": e})),
            Ok(()) => match state.users.lock().update(n, patch) {
                Some(user) => HttpResponse::Ok().json(user),
                None => not_found(&id),
            },
        },
    };
    state.counted(ROUTE, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewUser {
        NewUser { name: name.to_string(), email: None, age: None, status: None }
    }

    #[test]
    fn keeps_the_newest_users_and_updates_in_place() {
        let mut store = UserStore::new(2);
        for name in ["a", "b", "c"] {
            store.create(new(name), None);
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.get(1), None);
        let updated = store.update(2, UserPatch { age: Some(40), ..UserPatch::default() }).unwrap();
        assert_eq!((updated.name.as_str(), updated.age, updated.status.as_str()), ("b", Some(40), "active"));
        assert_eq!(store.get(2), Some(&updated));
        assert_eq!(store.update(9, UserPatch::default()), None);
        let ids: Vec<u64> = store.recent(5).iter().map(|u| u.id).collect();
        assert_eq!(ids, [3, 2]);
        assert_eq!(store.delete(2).map(|u| u.id), Some(2));
        assert_eq!((store.delete(2), store.get(2), store.len()), (None, None, 1));
    }

    #[test]
    fn fields_are_bounded() {
        assert!(new("x").validate().is_ok());
        assert!(new("").validate().is_err());
        assert!(new(&"x".repeat(101)).validate().is_err());
        assert!(UserPatch { age: Some(151), ..UserPatch::default() }.validate().is_err());
        assert!(UserPatch { status: Some(String::new()), ..UserPatch::default() }.validate().is_err());
    }
}
