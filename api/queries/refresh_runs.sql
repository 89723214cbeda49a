-- The refresh's last outcome for /metrics: the last run that did work or found there was none
-- to do (published, noop, failed, aborted; 'running' and 'skipped' runs are left out), and the
-- row counts the last published run recorded (mart_rows, jsonb as text). One row, NULLs when
-- there is no such run.
with

last_run as (
    select
        r.status,
        r.finished_at,
        r.duration_seconds
    from catalog_ops.refresh_runs as r
    where r.status in ('published', 'noop', 'failed', 'aborted')
    order by r.started_at desc
    limit 1
),

last_published as (
    select
        r.generation,
        r.mart_rows
    from catalog_ops.refresh_runs as r
    where r.status = 'published'
    order by r.started_at desc
    limit 1
)

select
    (select lr.status from last_run as lr) as status,
    (select extract(epoch from lr.finished_at)::float8 from last_run as lr) as finished_at_epoch,
    (select lr.duration_seconds::float8 from last_run as lr) as duration_seconds,
    (select lp.generation from last_published as lp) as published_generation,
    (select lp.mart_rows::text from last_published as lp) as published_mart_rows
