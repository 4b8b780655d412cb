-- The least-privilege PostgreSQL role for dbsync-exporter: it can log in (at most 5
-- sessions), read the db-sync database, and nothing else.
--
-- Run as a superuser (or the database owner) on the db-sync database, e.g.
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -d cexplorer -f reader-role.sql
--   sudo -u postgres psql -d cexplorer -c '\password dbsync_exporter'
-- then allow it in pg_hba.conf (before any broader line) and reload PostgreSQL:
--   host  cexplorer  dbsync_exporter  127.0.0.1/32  scram-sha-256
-- and give the exporter postgres://dbsync_exporter:PASSWORD@127.0.0.1:5432/cexplorer
-- (/etc/dbsync-exporter/database_url for the systemd unit).
--
-- Grants: on PostgreSQL 14 and later the role joins pg_read_all_data (every table, also
-- those db-sync and Koios add on upgrade). Before 14, or with -v grants=schemas, it gets
-- USAGE and SELECT on the public and grest schemas instead, plus default privileges so the
-- tables their owners create later are readable too. It also joins pg_read_all_stats, so
-- dbsync_database_connections can tell the state of other roles' sessions.
-- The script can be run again (after a db-sync upgrade, or on another database).
--
-- Before PostgreSQL 15 every role may CREATE in the public schema unless that was revoked
-- (REVOKE CREATE ON SCHEMA public FROM PUBLIC, the default since 15); this script does not
-- change what other roles may do.

\if :{?grants}
\else
\set grants auto
\endif
SELECT set_config('dbsync_exporter.grants', :'grants', false);

DO $role$
DECLARE
    mode text := current_setting('dbsync_exporter.grants');
    schema_name text;
    owner_name text;
BEGIN
    IF mode NOT IN ('auto', 'schemas') THEN
        RAISE EXCEPTION 'grants must be auto or schemas, not %', mode;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbsync_exporter') THEN
        CREATE ROLE dbsync_exporter LOGIN;
    END IF;
    -- Whatever the role was before: no superuser, no role or database creation, no
    -- replication, no row-level-security bypass, and a bounded number of sessions (INHERIT:
    -- it reads through its pg_read_all_data / pg_read_all_stats membership).
    ALTER ROLE dbsync_exporter LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        NOBYPASSRLS INHERIT CONNECTION LIMIT 5;
    -- A second line of defence: sessions start read-only (the exporter also asks for it).
    ALTER ROLE dbsync_exporter SET default_transaction_read_only = on;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dbsync_exporter', current_database());
    -- Granted only when missing: a repeated GRANT is harmless but noisy.
    IF NOT pg_has_role('dbsync_exporter', 'pg_read_all_stats', 'MEMBER') THEN
        GRANT pg_read_all_stats TO dbsync_exporter;
    END IF;

    IF mode = 'auto' AND current_setting('server_version_num')::int >= 140000 THEN
        IF NOT pg_has_role('dbsync_exporter', 'pg_read_all_data', 'MEMBER') THEN
            EXECUTE 'GRANT pg_read_all_data TO dbsync_exporter';
        END IF;
        RAISE NOTICE 'dbsync_exporter: pg_read_all_data (PostgreSQL %)', current_setting('server_version');
        RETURN;
    END IF;
    -- The narrow grants replace a membership an earlier run may have given.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pg_read_all_data')
            AND pg_has_role('dbsync_exporter', 'pg_read_all_data', 'MEMBER') THEN
        EXECUTE 'REVOKE pg_read_all_data FROM dbsync_exporter';
    END IF;
    FOREACH schema_name IN ARRAY ARRAY['public', 'grest'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = schema_name);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO dbsync_exporter', schema_name);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO dbsync_exporter', schema_name);
        EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO dbsync_exporter', schema_name);
        -- Tables added later (db-sync upgrades, Koios caches) are created by the roles that
        -- own the schema's tables now, and by the schema's owner.
        FOR owner_name IN
            SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = schema_name AND c.relkind IN ('r', 'v', 'm', 'p')
            UNION
            SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = schema_name
        LOOP
            EXECUTE format(
                'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO dbsync_exporter',
                owner_name, schema_name);
        END LOOP;
    END LOOP;
    RAISE NOTICE 'dbsync_exporter: USAGE and SELECT on public and grest';
END
$role$;
