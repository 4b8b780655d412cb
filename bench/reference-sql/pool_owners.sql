-- dbsync_pool_updates_without_owner: db-tool's PoolOwner query.
SELECT count(*) FROM pool_update pu
WHERE NOT EXISTS (SELECT 1 FROM pool_owner po WHERE po.pool_update_id = pu.id);
