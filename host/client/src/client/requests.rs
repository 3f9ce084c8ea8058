//! The ZooKeeper requests as [`Client`] methods: each builds its request, submits it on the
//! session's connection ([`Client::submit`]) and reads its reply.

use super::*;

impl Client {
    /// `create` (opcode 1; 19 for a container). Returns the created path (with the sequential
    /// suffix). TTL modes need [`Client::create_ttl`].
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<String, ClientError> {
        let req = create_request(path, Some(data), acl, mode, None, false)?;
        match self.submit(Request::Create(req)).await? {
            Response::Create { path } | Response::Create2 { path, .. } => Ok(path),
            r => Err(unexpected("create", r)),
        }
    }

    /// `create2` (opcode 15; 19 for a container): the created path and its Stat.
    pub async fn create2(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat), ClientError> {
        let req = create_request(path, Some(data), acl, mode, None, true)?;
        self.create_with_stat(req).await
    }

    /// `createContainer` (opcode 19).
    pub async fn create_container(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
    ) -> Result<(String, Stat), ClientError> {
        let req = create_request(path, Some(data), acl, CreateMode::Container, None, true)?;
        self.create_with_stat(req).await
    }

    /// `createTTL` (opcode 21). `mode` may be a TTL mode, or `Persistent` /
    /// `PersistentSequential`, which are mapped to their TTL forms.
    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> Result<(String, Stat), ClientError> {
        let mode = match mode {
            CreateMode::Persistent => CreateMode::PersistentWithTtl,
            CreateMode::PersistentSequential => CreateMode::PersistentSequentialWithTtl,
            m => m,
        };
        let req = create_request(path, Some(data), acl, mode, Some(ttl_ms), true)?;
        self.create_with_stat(req).await
    }

    async fn create_with_stat(&self, req: CreateRequest) -> Result<(String, Stat), ClientError> {
        match self.submit(Request::Create(req)).await? {
            Response::Create2 { path, stat } => Ok((path, stat)),
            r => Err(unexpected("create2", r)),
        }
    }

    /// `delete`; `version` -1 matches any.
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), ClientError> {
        self.submit(Request::Delete {
            path: path.to_string(),
            version,
        })
        .await
        .map(|_| ())
    }

    /// `exists`: `None` when the node does not exist (with `watch`, an exist-watch is set either
    /// way).
    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, ClientError> {
        match self
            .submit(Request::Exists {
                path: path.to_string(),
                watch,
            })
            .await
        {
            // The Java client treats a Stat with czxid -1 as "no node" too.
            Ok(Response::Stat(s)) if s.czxid == -1 => Ok(None),
            Ok(Response::Stat(s)) => Ok(Some(s)),
            Ok(r) => Err(unexpected("exists", r)),
            Err(ClientError::Server(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `getData`; null data reads as empty (see [`Client::get_data_opt`]).
    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), ClientError> {
        let (data, stat) = self.get_data_opt(path, watch).await?;
        Ok((data.unwrap_or_default(), stat))
    }

    /// `getData`, keeping the difference between null (`None`) and empty data.
    pub async fn get_data_opt(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Vec<u8>>, Stat), ClientError> {
        match self
            .submit(Request::GetData {
                path: path.to_string(),
                watch,
            })
            .await?
        {
            Response::GetData { data, stat } => Ok((data, stat)),
            r => Err(unexpected("getData", r)),
        }
    }

    /// `setData`; `version` -1 matches any.
    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<Stat, ClientError> {
        match self
            .submit(Request::SetData {
                path: path.to_string(),
                data: Some(data.to_vec()),
                version,
            })
            .await?
        {
            Response::Stat(s) => Ok(s),
            r => Err(unexpected("setData", r)),
        }
    }

    /// `getACL`.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), ClientError> {
        match self
            .submit(Request::GetAcl {
                path: path.to_string(),
            })
            .await?
        {
            Response::GetAcl { acl, stat } => Ok((acl, stat)),
            r => Err(unexpected("getACL", r)),
        }
    }

    /// `setACL`; `version` is the expected aclVersion (-1 matches any).
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Stat, ClientError> {
        match self
            .submit(Request::SetAcl {
                path: path.to_string(),
                acl: acl.to_vec(),
                version,
            })
            .await?
        {
            Response::Stat(s) => Ok(s),
            r => Err(unexpected("setACL", r)),
        }
    }

    /// `getChildren` (opcode 8), in the server's order.
    pub async fn get_children(&self, path: &str, watch: bool) -> Result<Vec<String>, ClientError> {
        match self
            .submit(Request::GetChildren {
                path: path.to_string(),
                watch,
            })
            .await?
        {
            Response::Children(c) => Ok(c),
            r => Err(unexpected("getChildren", r)),
        }
    }

    /// `getChildren2` (opcode 12): children and the parent's Stat.
    pub async fn get_children2(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ClientError> {
        match self
            .submit(Request::GetChildren2 {
                path: path.to_string(),
                watch,
            })
            .await?
        {
            Response::Children2 { children, stat } => Ok((children, stat)),
            r => Err(unexpected("getChildren2", r)),
        }
    }

    /// `sync`.
    pub async fn sync(&self, path: &str) -> Result<(), ClientError> {
        self.submit(Request::Sync {
            path: path.to_string(),
        })
        .await
        .map(|_| ())
    }

    /// `multi` (opcode 14). The results are returned even when a sub-op failed (then every
    /// result is an `OpResult::Error`: 0 before the failure, the code, -2 after; see
    /// [`first_error`]). Only a whole-request failure (header err) is an `Err`.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<OpResult>, ClientError> {
        match self.submit(Request::Multi(ops)).await? {
            Response::Multi(r) => Ok(r),
            r => Err(unexpected("multi", r)),
        }
    }

    /// `multiRead` (opcode 22): each read succeeds or fails on its own.
    pub async fn multi_read(&self, ops: Vec<ReadOp>) -> Result<Vec<OpResult>, ClientError> {
        match self.submit(Request::MultiRead(ops)).await? {
            Response::Multi(r) => Ok(r),
            r => Err(unexpected("multiRead", r)),
        }
    }

    /// `auth` (xid -4), e.g. `add_auth("digest", b"user:password")`. On `AuthFailed` the server
    /// also closes the connection.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), ClientError> {
        self.submit(Request::Auth {
            auth_type: 0,
            scheme: scheme.to_string(),
            auth: auth.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// `addWatch` (opcode 106); `mode` is [`wazoo_proto::add_watch_mode`].
    pub async fn add_watch(&self, path: &str, mode: i32) -> Result<(), ClientError> {
        match self
            .submit(Request::AddWatch {
                path: path.to_string(),
                mode,
            })
            .await?
        {
            Response::ErrorBody(0) => Ok(()),
            Response::ErrorBody(code) => Err(ClientError::from_code(code)),
            r => Err(unexpected("addWatch", r)),
        }
    }

    /// `removeWatches` (opcode 18); `watcher_type` is [`wazoo_proto::watcher_type`]. No local
    /// watch bookkeeping: the server decides (`NoWatcher` if there is none).
    pub async fn remove_watches(&self, path: &str, watcher_type: i32) -> Result<(), ClientError> {
        self.submit(Request::RemoveWatches {
            path: path.to_string(),
            watch_type: watcher_type,
        })
        .await
        .map(|_| ())
    }

    /// `checkWatches` (opcode 17).
    pub async fn check_watches(&self, path: &str, watcher_type: i32) -> Result<(), ClientError> {
        self.submit(Request::CheckWatches {
            path: path.to_string(),
            watch_type: watcher_type,
        })
        .await
        .map(|_| ())
    }

    /// `getEphemerals` (opcode 103): this session's ephemerals whose path starts with `prefix`
    /// (`"/"` for all).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, ClientError> {
        match self
            .submit(Request::GetEphemerals {
                prefix: prefix.to_string(),
            })
            .await?
        {
            Response::Ephemerals(v) => Ok(v),
            r => Err(unexpected("getEphemerals", r)),
        }
    }

    /// `getAllChildrenNumber` (opcode 104): the number of descendants.
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32, ClientError> {
        match self
            .submit(Request::GetAllChildrenNumber {
                path: path.to_string(),
            })
            .await?
        {
            Response::AllChildrenNumber(n) => Ok(n),
            r => Err(unexpected("getAllChildrenNumber", r)),
        }
    }

    /// `whoAmI` (opcode 107): the connection's authenticated ids.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>, ClientError> {
        match self.submit(Request::WhoAmI).await? {
            Response::WhoAmI(v) => Ok(v),
            r => Err(unexpected("whoAmI", r)),
        }
    }

    /// wazoo's `recipeCall` (opcode 1000, docs/recipes.md): runs `recipe`'s `op` with `args`
    /// on the server. `Ok(Ok(output))` when it committed, `Ok(Err(error))` when the recipe
    /// aborted; NORECIPE, RECIPEFAILED, RECIPECONFLICT and ZooKeeper's codes as
    /// [`ClientError::Server`]. A ZooKeeper server answers UNIMPLEMENTED and closes the
    /// connection.
    pub async fn recipe_call(
        &self,
        recipe: &str,
        op: &str,
        args: &[u8],
        request_id: &str,
    ) -> Result<Result<Vec<u8>, Vec<u8>>, ClientError> {
        let req = Request::RecipeCall(wazoo_proto::RecipeCall {
            recipe: recipe.to_owned(),
            op: op.to_owned(),
            args: args.to_vec(),
            request_id: request_id.to_owned(),
        });
        match self.submit(req).await? {
            Response::RecipeCall {
                aborted: false,
                output,
            } => Ok(Ok(output)),
            Response::RecipeCall {
                aborted: true,
                output,
            } => Ok(Err(output)),
            r => Err(unexpected("recipeCall", r)),
        }
    }
}
