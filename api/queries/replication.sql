-- The server's role and how far its replay is behind (0 on a primary, and 0 on a replica that
-- has replayed everything it received: an idle primary is not lag).
select
    pg_is_in_recovery() as is_replica,
    case
        when not pg_is_in_recovery() then 0
        when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
        else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0)
    end::float8 as replay_lag_seconds
